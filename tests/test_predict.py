"""predict.py: blended tiling, georeferenced outputs, evaluation, export and errors."""

import json

import numpy as np
import pytest
from PIL import Image

import predict
from inference.evaluation import evaluation_report, scene_scores
from inference.tiling import (
    axis_layout,
    blend_ramp,
    cpu_flags,
    cpu_has_amx,
    make_logit_fn,
    predict_probabilities,
    predict_whole,
    tile_starts,
)


def smooth_scene(height, width, seed=0):
    """A blurry random RGB scene: structure at several scales, like aerial texture."""
    coarse = np.random.RandomState(seed).randint(0, 256, (height // 16 + 1, width // 16 + 1, 3)).astype("uint8")
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))


@pytest.fixture(scope="module")
def model():
    import keras

    from models import create_model

    keras.utils.set_random_seed(0)
    return create_model("fcn8", "resnet18", input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def logit_fn(model):
    return make_logit_fn(model)


@pytest.fixture(scope="module")
def everywhere_model_file(tmp_path_factory):
    """A saved model whose every score is positive: it predicts 'building' on every pixel."""
    from models import create_model

    model = create_model("fcn8", "resnet18", input_shape=(None, None, 3))
    for layer in model.layers:
        if layer.name.startswith("fcn8_score"):
            kernel, bias = layer.get_weights()
            layer.set_weights([np.zeros_like(kernel), np.full_like(bias, 3.0)])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


def test_tile_layout_covers_the_scene_evenly_and_stays_inside():
    assert tile_starts(1000, 256, 192) == [0, 186, 372, 558, 744]  # 5 windows, 70 px overlaps
    assert tile_starts(200, 256, 192) == [0]
    assert tile_starts(256, 256, 192) == [0]
    assert axis_layout(1479, 512, 64) == (448, [0, 344, 687, 1031])  # 4 windows shrunk from 512 to 448
    assert axis_layout(2149, 512, 64) == (512, [0, 409, 818, 1228, 1637])
    assert axis_layout(200, 512, 64) == (224, [0])  # one window: the scene rounded up to the stride


def test_blend_ramps_of_neighbouring_tiles_sum_to_one():
    ramp = blend_ramp(256, 64)
    assert ramp.min() > 0 and ramp[64:192].min() == 1.0
    np.testing.assert_allclose(ramp[-64:] + ramp[:64], 1.0, atol=1e-6)


def test_one_tile_scene_equals_whole_image(logit_fn):
    scene = smooth_scene(200, 250)
    tiled = predict_probabilities(logit_fn, scene, tile=256, overlap=64)
    whole = predict_whole(logit_fn, scene)
    assert tiled.shape == (200, 250)
    assert whole.std() > 0.01  # the model's output varies, so equality means something
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def local_cnn(seed=0):
    """A small seeded zero-padded CNN (receptive field 13 px): tile borders change its output.

    Used for the seam check because random-init zoo models (fcn8/unet on resnet18, 4 seeds
    tried) give outputs so high-frequency that a seam measure on them was not stable.
    """
    import keras

    def init(i):
        return keras.initializers.GlorotUniform(seed=seed * 10 + i)

    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Rescaling(1 / 64.0, offset=-2.0),
            keras.layers.Conv2D(8, 5, padding="same", activation="tanh", kernel_initializer=init(0)),
            keras.layers.Conv2D(8, 5, padding="same", activation="tanh", kernel_initializer=init(1)),
            keras.layers.Conv2D(1, 5, padding="same", kernel_initializer=init(2)),
        ]
    )


def test_blended_tiles_leave_no_seam():
    import tensorflow as tf

    logit_fn = make_logit_fn(local_cnn())
    scene = smooth_scene(384, 512)
    whole = predict_whole(logit_fn, scene)
    blended = predict_probabilities(logit_fn, scene, tile=128, overlap=32, batch_size=3)
    hard = np.zeros_like(whole)  # abutting 128x128 tiles, each predicted on its own
    for y in range(0, 384, 128):
        for x in range(0, 512, 128):
            tile = tf.constant(scene[None, y : y + 128, x : x + 128].astype("float32"))
            hard[y : y + 128, x : x + 128] = tf.sigmoid(logit_fn(tile)).numpy()[0]
    inside = np.s_[16:-16, 16:-16]  # the scene's own border is padded differently by the two
    hard_error, blended_error = (hard - whole)[inside], (blended - whole)[inside]
    # where hard tiles meet, their difference from the whole-image prediction steps ...
    columns, rows = np.abs(np.diff(hard - whole, axis=1)).mean(0), np.abs(np.diff(hard - whole, axis=0)).mean(1)
    hard_step = np.mean([columns[x - 1] for x in (128, 256, 384)] + [rows[y - 1] for y in (128, 256)])
    assert hard_step > 0.02 and np.abs(hard_error).max() > 0.1
    # ... blended tiles follow the whole-image prediction and never step
    blended_step = max(np.abs(np.diff(blended_error, axis=axis)).mean(1 - axis).max() for axis in (0, 1))
    assert blended_step < 0.1 * hard_step
    assert np.abs(blended_error).max() < 0.01


def test_strips_equal_a_whole_canvas_blend(logit_fn):
    """The row-by-row buffers give the same result as blending on one full-size canvas."""
    import tensorflow as tf

    scene, tile, overlap = smooth_scene(300, 460, seed=1), 128, 32
    window = np.outer(blend_ramp(tile, overlap), blend_ramp(tile, overlap))
    total, weight = np.zeros(scene.shape[:2]), np.zeros(scene.shape[:2])
    assert axis_layout(300, tile, overlap)[0] == axis_layout(460, tile, overlap)[0] == tile
    for y in axis_layout(300, tile, overlap)[1]:
        for x in axis_layout(460, tile, overlap)[1]:
            logits = logit_fn(tf.constant(scene[None, y : y + tile, x : x + tile].astype("float32"))).numpy()[0]
            total[y : y + tile, x : x + tile] += logits * window
            weight[y : y + tile, x : x + tile] += window
    expected = 1 / (1 + np.exp(-total / weight))
    got = predict_probabilities(logit_fn, scene, tile=tile, overlap=overlap, batch_size=3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_scene_smaller_than_the_output_stride(logit_fn):
    scene = smooth_scene(20, 45)
    probabilities = predict_probabilities(logit_fn, scene, tile=256, overlap=64)
    assert probabilities.shape == (20, 45)
    np.testing.assert_allclose(probabilities, predict_whole(logit_fn, scene), atol=1e-4)


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_tta_average_is_exactly_flip_and_rotation_equivariant(model):
    """Averaging g^-1 f(g x) over all 8 flips/rotations commutes with each of them, if every
    inverse is right, even though the network itself is not equivariant."""
    tta, plain = make_logit_fn(model, tta=True), make_logit_fn(model)
    x = smooth_scene(64, 64, seed=5)[None].astype("float32")
    base = tta(x).numpy()[0]
    rotated = tta(np.rot90(x, 1, axes=(1, 2)).copy()).numpy()[0]
    flipped = tta(x[:, :, ::-1].copy()).numpy()[0]
    np.testing.assert_allclose(rotated, np.rot90(base, 1), atol=1e-4)
    np.testing.assert_allclose(flipped, base[:, ::-1], atol=1e-4)
    # the plain network is not: the check above could fail
    assert np.abs(plain(np.rot90(x, 1, axes=(1, 2)).copy()).numpy()[0] - np.rot90(plain(x).numpy()[0], 1)).max() > 1e-3


def test_scene_scores_equal_hand_computation():
    truth = np.array([[1, 1, 0], [0, 1, 0]], bool)
    predicted = np.array([[1, 0, 0], [1, 1, 0]], bool)
    row = scene_scores("a", truth, predicted)  # tp 2, fp 1, fn 1
    assert (row["tp"], row["fp"], row["fn"], row["pixels"]) == (2, 1, 1, 6)
    assert row["iou"] == pytest.approx(0.5) and row["f1"] == pytest.approx(2 / 3)
    assert row["precision"] == pytest.approx(2 / 3) and row["recall"] == pytest.approx(2 / 3)
    other = scene_scores("b", np.ones((2, 2), bool), np.zeros((2, 2), bool))  # fn 4
    overall = evaluation_report([row, other])["overall"]
    assert overall["iou"] == pytest.approx(2 / 8) and overall["recall"] == pytest.approx(2 / 7)  # tp 2, fp 1, fn 5
    assert overall["precision"] == pytest.approx(2 / 3) and overall["pixels"] == 10


def test_cli_evaluates_against_labels(everywhere_model_file, tmp_path):
    images, labels = tmp_path / "src", tmp_path / "label"
    images.mkdir(), labels.mkdir()
    truth = np.zeros((70, 90), "uint8")
    truth[10:30, 20:60] = 255  # 800 of 6300 pixels
    Image.fromarray(smooth_scene(70, 90)).save(images / "scene.jpg")
    Image.fromarray(truth).save(labels / "scene.png")
    out = predict.main(
        [
            *(
                "--model",
                str(everywhere_model_file),
                str(images),
                "--labels",
                str(labels),
                "--out",
                str(tmp_path / "o"),
            ),
            *("--precision", "float32"),
        ]
    )
    report = json.loads((out / "metrics.json").read_text())
    auto = predict.main(  # the default --precision auto: bfloat16 only where the CPU has AMX
        ["--model", str(everywhere_model_file), str(images), "--labels", "auto", "--out", str(tmp_path / "a")]
    )
    auto_report = json.loads((auto / "metrics.json").read_text())
    assert auto_report["overall"] == report["overall"]
    assert (report["precision"], auto_report["precision"]) == ("float32", "bfloat16" if cpu_has_amx() else "float32")
    # predicting building everywhere: IoU = precision = 800/6300, recall 1
    assert report["overall"]["iou"] == pytest.approx(800 / 6300)
    assert report["scenes"][0]["precision"] == pytest.approx(800 / 6300) and report["scenes"][0]["recall"] == 1.0
    mask = np.asarray(Image.open(out / "scene_mask.png"))
    assert mask.shape == (70, 90) and set(np.unique(mask)) == {255}
    assert np.asarray(Image.open(out / "scene_overlay.jpg")).shape == (70, 90, 3)


def test_geotiff_keeps_georeferencing_and_polygons_lie_inside(sample_dir, everywhere_model_file, tmp_path):
    import rasterio

    scene = sample_dir / "building_data" / "test" / "src" / "rio_3band_013022223130_Public_img53.tiff"
    out = predict.main(["--model", str(everywhere_model_file), str(scene), "--out", str(tmp_path), "--tile", "256"])
    with rasterio.open(scene) as source, rasterio.open(out / f"{scene.stem}_mask.tif") as mask:
        assert mask.crs == source.crs and mask.transform == source.transform
        assert (mask.width, mask.height) == (source.width, source.height)
        bounds = source.bounds
        assert mask.read(1).min() == 255
    collection = json.loads((out / f"{scene.stem}.geojson").read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:OGC:1.3:CRS84"  # WGS84 lon/lat, as the input
    [feature] = collection["features"]  # one building covering the scene
    xs, ys = np.asarray(feature["geometry"]["coordinates"][0]).T
    assert feature["properties"]["area_pixels"] == 438 * 406
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max(), ys.max()], list(bounds), rtol=0, atol=1e-9)


def test_label_polygons_cover_the_mask_inside_the_bounds(sample_dir):
    import rasterio

    from common.rasters import open_scene
    from inference.footprints import trace
    from inference.scenes import read_label

    test = sample_dir / "building_data" / "test"
    scene = open_scene(test / "src" / "rio_3band_013022223130_Public_img55.tiff")
    scene.close()
    truth = read_label(test / "label", scene.path.stem, (scene.height, scene.width))
    polygons = [b["polygon"] for b in trace(truth, transform=scene.transform, min_area=0)]
    pixel_area = abs(scene.transform.a * scene.transform.e)
    assert len(polygons) > 3
    assert sum(p.area for p in polygons) / pixel_area == pytest.approx(truth.sum(), rel=1e-6)
    with rasterio.open(scene.path) as source:
        left, bottom, right, top = source.bounds
    for polygon in polygons:
        x0, y0, x1, y1 = polygon.bounds
        assert left - 1e-9 <= x0 and x1 <= right + 1e-9 and bottom - 1e-9 <= y0 and y1 <= top + 1e-9
    big = trace(truth, transform=scene.transform, min_area=200)
    assert 0 < len(big) < len(polygons) and min(b["pixels"] for b in big) >= 200
    assert all(b["polygon"].area / pixel_area == pytest.approx(b["pixels"], rel=1e-6) for b in big)


def test_one_open_trace_serves_every_window_shape(model):
    import tensorflow as tf

    logit_fn = make_logit_fn(model)
    for height, width in ((64, 64), (96, 160), (160, 96)):
        images = tf.constant(smooth_scene(height, width, seed=height)[None].astype("float32"))
        assert logit_fn(images).shape == (1, height, width)
    assert list(logit_fn.traced) == [(None, None)]  # traced and frozen once
    square = tf.constant(smooth_scene(64, 64, seed=7)[None].astype("float32"))
    static = make_logit_fn(model, fixed_size=64)  # the graph traced for 64 x 64 only
    np.testing.assert_allclose(logit_fn(square).numpy(), static(square).numpy(), atol=1e-5)
    assert list(static.traced) == [(64, 64)]


def test_bfloat16_calls_stay_close_and_leave_float32_calls_exact(model):
    import tensorflow as tf

    from inference.tiling import BF16_REWRITE

    images = tf.constant(smooth_scene(128, 160, seed=5)[None].astype("float32"))
    exact_fn, low_fn = make_logit_fn(model), make_logit_fn(model, precision="bfloat16")
    exact = exact_fn(images).numpy()
    low = low_fn(images).numpy()
    assert tf.config.optimizer.get_experimental_options().get(BF16_REWRITE, False) is False  # put back
    np.testing.assert_array_equal(exact_fn(images).numpy(), exact)  # float32 calls untouched afterwards
    probability_gap = np.abs(tf.sigmoid(exact).numpy() - tf.sigmoid(low).numpy())
    assert probability_gap.max() < 0.02  # measured 0.0068 (random-init FCN-8 / ResNet-18, AMX Xeon)
    if cpu_flags() & {"avx512_bf16", "amx_bf16"}:  # the rewrite ran: bfloat16 rounding shows
        assert probability_gap.max() > 1e-4
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        make_logit_fn(model, precision="float16")


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_saved_model_and_tflite_match_keras(model, tmp_path):
    import tensorflow as tf

    from inference.export import export_saved_model, export_tflite, run_tflite

    images = smooth_scene(64, 64, seed=3)[None]
    expected = tf.sigmoid(model(images.astype("float32"), training=False)).numpy()
    serving = tf.saved_model.load(str(export_saved_model(model, tmp_path / "saved_model")))
    odd = smooth_scene(50, 70, seed=4)[None]  # not a multiple of 32: padded and cropped inside
    got = serving.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    odd_expected = predict_whole(make_logit_fn(model), odd[0])
    odd_got = serving.signatures["serving_default"](images=tf.constant(odd))["probabilities"].numpy()[0, ..., 0]
    np.testing.assert_allclose(odd_got, odd_expected, atol=1e-5)
    float_out = run_tflite(export_tflite(model, tmp_path / "f.tflite", tile=64), images)
    np.testing.assert_allclose(float_out, expected, atol=1e-4)
    int8_path = export_tflite(model, tmp_path / "q.tflite", tile=64, kind="int8")
    int8_out = run_tflite(int8_path, images)
    # dynamic-range int8 weights: stated tolerance 0.05 in probability, 0.01 on average
    assert np.abs(int8_out - expected).max() < 0.05 and np.abs(int8_out - expected).mean() < 0.01
    assert int8_path.stat().st_size < 0.4 * (tmp_path / "f.tflite").stat().st_size


def test_clear_errors(everywhere_model_file, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(smooth_scene(40, 40)).save(good)
    model = str(everywhere_model_file)
    with pytest.raises(SystemExit, match="multiple of the model's output stride 32"):
        predict.main(["--model", model, str(good), "--tile", "16", "--out", str(tmp_path / "o1")])
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(SystemExit, match="cannot write to --out"):
        predict.main(["--model", model, str(good), "--out", str(blocker / "sub")])
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("not a zip")
    with pytest.raises(SystemExit, match="notes.keras is not a Keras archive"):
        predict.main(["--model", str(not_a_model), str(good), "--out", str(tmp_path / "o2")])
    broken_zip = tmp_path / "broken.keras"
    with __import__("zipfile").ZipFile(broken_zip, "w") as archive:
        archive.writestr("config.json", "{not json")
    with pytest.raises(SystemExit, match="broken.keras could not be loaded as a Keras model"):
        predict.main(["--model", str(broken_zip), str(good), "--out", str(tmp_path / "o3")])
    import keras

    classifier = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    classifier.save(tmp_path / "classifier.keras")
    with pytest.raises(SystemExit, match="not one of this project's building models"):
        predict.main(["--model", str(tmp_path / "classifier.keras"), str(good), "--out", str(tmp_path / "o3")])
    # an unreadable scene is named and skipped; the readable one still gets its outputs
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(SystemExit, match="1 of 2 input"):
        predict.main(["--model", model, str(broken), str(good), "--out", str(tmp_path / "o4")])
    assert "broken.png" in capsys.readouterr().err
    assert (tmp_path / "o4" / "good_mask.png").exists()


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
@pytest.mark.parametrize("arch", ["fpn", "deeplabv3plus"])
def test_bilinear_upsampling_archs_predict_any_window_shape(arch):
    """FPN and DeepLabV3+ resize bilinearly; their windows trace with static sizes (and TTA keeps them: FPN)."""
    import keras

    from inference.tiling import make_logit_fn, predict_probabilities, predict_whole
    from models import create_model

    keras.utils.set_random_seed(1)  # an init whose outputs are not saturated (std 0.46 / 0.32 here)
    model = create_model(arch, "resnet18", input_shape=(None, None, 3))
    image = np.random.default_rng(3).integers(0, 255, (200, 300, 3)).astype("uint8")
    for tta in (False, True) if arch == "fpn" else (False,):  # TTA's rotations do not depend on the arch
        logit_fn = make_logit_fn(model, tta=tta)
        tiled = predict_probabilities(logit_fn, image, tile=512, overlap=64)  # one window: equals the whole scene
        np.testing.assert_allclose(tiled, predict_whole(logit_fn, image), atol=1e-5)
        assert tiled.shape == (200, 300) and (tta or tiled.std() > 0.05)  # a real map, not a constant
        assert predict_probabilities(logit_fn, image, tile=128, overlap=32).shape == (200, 300)
        assert (None, None) not in logit_fn.traced and len(logit_fn.traced) == 2  # one trace per window shape
