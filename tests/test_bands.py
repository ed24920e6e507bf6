"""More than three bands: the first convolution's ImageNet kernels kept for RGB and extended to the other bands,
training from the polygons config's every band, and predict.py reading the bands the model recorded."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _stem_kernel(encoder):
    return next(w.numpy() for w in encoder.weights if w.path.endswith("stem_conv/kernel"))


def test_a_4_band_encoder_keeps_the_imagenet_rgb_kernels_and_gives_the_new_band_their_mean_times_3_over_4():
    from models.encoders import create_encoder

    rgb = create_encoder("effnet-lite0", input_shape=(64, 64, 3), weights="imagenet")
    four = create_encoder("effnet-lite0", input_shape=(64, 64, 4), weights="imagenet")
    k3, k4 = _stem_kernel(rgb), _stem_kernel(four)
    assert k3.shape == (3, 3, 3, 32) and k4.shape == (3, 3, 4, 32)
    np.testing.assert_array_equal(k4[:, :, :3], k3)
    np.testing.assert_allclose(k4[:, :, 3], k3.mean(axis=2) * 3 / 4, rtol=1e-6)
    for a, b in zip(rgb.weights, four.weights):  # every other weight copied as it is
        if "stem_conv/kernel" not in a.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the same image in the RGB bands and grey in the fourth: the RGB encoder's features plus the grey band's share
    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    with_grey = np.concatenate([image, image.mean(-1, keepdims=True)], -1)
    assert np.isfinite(four(with_grey)["P5"].numpy()).all()


def test_an_imagenet_normalisation_gives_further_bands_the_mean_of_the_rgb_statistics():
    from models.encoders import create_encoder
    from models.encoders.preprocess import IMAGENET_MEAN, IMAGENET_STD

    encoder = create_encoder("effnet-b0", input_shape=(None, None, 5), weights=None)
    norm = next(layer for layer in encoder.layers if layer.name == "preprocess_norm")
    mean = np.mean(IMAGENET_MEAN)
    np.testing.assert_allclose(norm.mean.numpy().ravel(), [*IMAGENET_MEAN, mean, mean], rtol=1e-6)
    variance = np.square(IMAGENET_STD)
    np.testing.assert_allclose(norm.variance.numpy().ravel(), [*variance, variance.mean(), variance.mean()], rtol=1e-6)


def test_fewer_than_three_bands_are_refused_by_name():
    from models.encoders import create_encoder

    with pytest.raises(ValueError, match="must end in 3 or more"):
        create_encoder("resnet18", input_shape=(64, 64, 2))


def _four_band_scenes(folder):
    """Two 16-bit 4-band UTM scenes of 96 x 96 pixels, nine bright 16 x 16 roofs each, and their polygons."""
    import rasterio
    import shapely
    from pyogrio.raw import write
    from rasterio.transform import from_origin

    from common.polygons import reproject

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    roofs = []
    for k, name in enumerate(["north", "south"]):
        image = rng.integers(60, 90, (4, 96, 96)).astype(np.uint16) * 40
        for top in (8, 38, 68):
            for left in (8, 38, 68):
                image[:, top : top + 16, left : left + 16] = np.array([200, 180, 170, 250])[:, None, None] * 40
                x0, y0 = 452_000 + left * 0.5, 35_000 - k * 100 - top * 0.5
                roofs.append(shapely.box(x0, y0 - 8, x0 + 8, y0))
        grid = from_origin(452_000, 35_000 - k * 100, 0.5, 0.5)
        with rasterio.open(folder / f"{name}.tif", "w", driver="GTiff", width=96, height=96, count=4, dtype="uint16",
                           crs="EPSG:32636", transform=grid) as scene:  # fmt: skip
            scene.write(image)
    lonlat = reproject(np.array(roofs, dtype=object), "EPSG:32636", "EPSG:4326")
    write(str(folder / "roofs.geojson"), geometry=shapely.to_wkb(lonlat), field_data=[], fields=[],
          geometry_type="Polygon", crs="EPSG:4326", driver="GeoJSON")  # fmt: skip


def test_the_polygons_config_keeps_every_band_scaled_as_predict_reads_it(tmp_path):
    from common.rasters import RasterSource
    from data.buildings.polygon_sources import scene_examples

    _four_band_scenes(tmp_path / "scenes")
    windows = {name: (image, mask) for name, image, mask, _ in scene_examples(tmp_path / "scenes", window=48)}
    assert len(windows) == 8
    image, mask = windows["north__r0_c0.png"]
    assert image.shape == (48, 48, 4) and image.dtype == np.uint8
    source = RasterSource(tmp_path / "scenes" / "north.tif", bands=[1, 2, 3, 4], channels=4)
    np.testing.assert_array_equal(image, source.read(0, 48, 0, 48))  # the same 2-98% scale as predict.py
    # one whole roof, two cut by the window's right or bottom edge (10 of 16 lines inside), one by both
    assert int(mask[..., 0].sum()) == 16 * 16 + 2 * 10 * 16 + 10 * 10


def _run(args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.slow
def test_train_on_4_bands_then_predict_reads_them_and_refuses_other_counts(tmp_path):
    _four_band_scenes(tmp_path / "scenes")
    base = ["train.py", "--dataset", "buildings/polygons", "--manual-dir", str(tmp_path / "scenes"),
            "--data-dir", str(tmp_path / "tfds"), "--image-size", "64", "--epochs", "1", "--steps-per-epoch", "2",
            "--warmup-steps", "0", "--batch-size", "2", "--tracker", "local"]  # fmt: skip
    refused = _run([*base, "--bands", "1,2,3,5", "--run-dir", str(tmp_path / "bad")])
    assert refused.returncode != 0
    assert "--bands 1,2,3,5 asks for band 5, but the images of buildings/polygons have 4 band(s)" in refused.stderr
    done = _run([*base, "--bands", "1,2,3,4", "--run-dir", str(tmp_path / "run")])
    assert done.returncode == 0, done.stderr[-2000:]
    from models.metadata import read_metadata

    assert read_metadata(tmp_path / "run" / "model.keras")["bands"] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["bands"] == "1,2,3,4"
    predicted = _run(["predict.py", "--model", str(tmp_path / "run"), str(tmp_path / "scenes" / "north.tif"),
                      "--out", str(tmp_path / "o1"), "--precision", "float32"])  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    import rasterio

    with rasterio.open(tmp_path / "o1" / "north_prob.tif") as probabilities:
        assert probabilities.shape == (96, 96)
    wrong = _run(["predict.py", "--model", str(tmp_path / "run"), str(tmp_path / "scenes" / "north.tif"),
                  "--bands", "1,2,3", "--out", str(tmp_path / "o2")])  # fmt: skip
    assert wrong.returncode != 0
    assert "--bands 1,2,3 names 3 band(s), but" in wrong.stderr and "reads 4: bands 1,2,3,4" in wrong.stderr
    assert not (tmp_path / "o2").exists()  # refused before any write


def test_a_model_of_four_bands_refuses_rgb_inputs_naming_both(tmp_path):
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    from common.rasters import SceneReadError, open_scene

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "chip.png")
    with pytest.raises(SceneReadError, match=r"chip.png is decoded as RGB, but the model takes 4 bands"):
        open_scene(tmp_path / "chip.png", channels=4)
    with rasterio.open(tmp_path / "rgb.tif", "w", driver="GTiff", width=32, height=32, count=3, dtype="uint8",
                       crs="EPSG:32636", transform=from_origin(0, 32, 1, 1)) as scene:  # fmt: skip
        scene.write(np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(SceneReadError, match=r"rgb.tif has 3 band\(s\), but the model takes 4"):
        open_scene(tmp_path / "rgb.tif", channels=4)
    with pytest.raises(SceneReadError, match=r"--bands 1,2,3,4 does not fit .*rgb.tif, which has 3 band\(s\): give 4"):
        open_scene(tmp_path / "rgb.tif", bands=(1, 2, 3, 4), channels=4)
    four = open_scene(tmp_path / "rgb.tif", bands=(1, 2, 3, 3), channels=4)  # a band twice is allowed, as for RGB
    assert four.read(0, 8, 0, 8).shape == (8, 8, 4)
