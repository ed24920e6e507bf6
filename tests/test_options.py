"""User-facing options of the three CLIs, run from their command lines: each does what its help says."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.tiny import TINY_TRAIN


# --- train.py ----------------------------------------------------------------------------------
def test_dataset_auto_is_kaggle_where_its_download_or_build_is_else_synthetic(tmp_path, sample_dir, sample_tfds):
    import train

    def resolved(*args):
        return train.resolve_dataset(train.parse_args(list(args)))

    assert resolved("--data-dir", str(tmp_path / "empty")) == "buildings/synthetic"
    assert resolved("--data-dir", str(tmp_path / "empty"), "--manual-dir", str(sample_dir)) == "buildings/kaggle"
    assert resolved("--data-dir", sample_tfds[0]) == "buildings/kaggle"  # built before: no manual dir needed
    assert not (tmp_path / "empty").exists()  # deciding builds nothing


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_folds_best_epoch_and_every_selection_scored(sample_dir, sample_tfds, tmp_path, capsys):
    """--folds 8 --fold K holds out fold K's groups (here Rio), --select best keeps the epoch with the best
    validation IoU, --score-selections scores the other two weight choices on the same places."""
    import train
    from data.groups import group_folds, group_names
    from experiments.same_outputs import _h5_arrays
    from training.checkpoints import MONITOR, read_history

    data = sample_dir / "building_data"
    names = [p.name for folder in (data / "src", data / "test" / "src") for p in folder.iterdir()]
    folds = group_folds(group_names(names), 8)
    rio = folds.index(["rio"])
    run_dir = train.main(
        [*TINY_TRAIN, "--epochs", "2", "--dataset", "auto", "--manual-dir", str(sample_dir),
         "--data-dir", sample_tfds[0], "--folds", "8", "--fold", str(rio), "--select", "best",
         "--score-selections", "--augment", "aerial", "--calibrate", "none", "--run-dir", str(tmp_path / "run")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "dataset: buildings/kaggle" in printed  # auto found the download
    results = json.loads((run_dir / "results.json").read_text())
    assert results["heldout_groups"] == ["rio"] and results["heldout_scenes"] == 12
    assert results["heldout_pixels"] == 2_135_560  # the 12 Rio tiles, nothing else
    history = read_history(run_dir)
    assert results["best_epoch"] == max(history, key=lambda row: row[MONITOR])["epoch"]
    assert results["selection"] == "best" and set(results["selections"]) == {"best", "ema", "last"}
    assert results["heldout_iou"] == results["selections"]["best"]["iou"]
    for scores in results["selections"].values():  # each weight set scored (at 0.5: calibration is tested elsewhere)
        assert set(scores) == {"iou", "f1", "precision", "recall", "threshold"} and scores["threshold"] == 0.5
    # model.keras holds the best epoch's weights
    import io
    import zipfile

    kept = _h5_arrays(io.BytesIO(zipfile.ZipFile(run_dir / "model.keras").read("model.weights.h5")))
    best = _h5_arrays(run_dir / "best.weights.h5")
    last = _h5_arrays(run_dir / "last.weights.h5")
    digest = lambda arrays: {(a.shape, a.tobytes()) for a in arrays.values()}  # noqa: E731  (the files name weights apart)
    assert digest(kept) <= digest(best)  # (checkpoints hold optimizer state too)
    assert (digest(kept) <= digest(last)) == (results["best_epoch"] == 2)  # the last epoch's only when it was best
    assert json.loads((run_dir / "config.json").read_text())["augment"] == "aerial"


# --- predict.py --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_model_file(tmp_path_factory):
    import keras

    from models import create_model

    keras.utils.set_random_seed(3)
    model = create_model("fcn8", "resnet18", input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.mark.slow  # ~20 s; the TTA average itself is tested exactly in test_predict (default suite)
def test_predict_tta_from_the_command_line(random_model_file, tmp_path):
    import keras

    import predict
    from inference.tiling import make_logit_fn, predict_whole
    from tests.test_predict import smooth_scene

    scene = smooth_scene(96, 128, seed=7)
    Image.fromarray(scene).save(tmp_path / "scene.png")
    outputs = {}
    for name, flags in (("plain", []), ("tta", ["--tta"])):
        out = predict.main(["--model", str(random_model_file), str(tmp_path / "scene.png"), "--out",
                            str(tmp_path / name), "--precision", "float32", "--min-area", "0", *flags])  # fmt: skip
        outputs[name] = np.asarray(Image.open(out / "scene_mask.png")) > 0
    model = keras.models.load_model(random_model_file)
    expected = predict_whole(make_logit_fn(model, tta=True), scene) > 0.5
    assert (outputs["tta"] == expected).mean() > 0.999  # the 8-view average, as the library computes it
    assert (outputs["tta"] != outputs["plain"]).mean() > 0.01  # and not the plain prediction


def test_predict_tta_auto_follows_the_models_run(random_model_file, tmp_path):
    """By default predict.py averages the 8 flips and turns only for a model whose run was scored so (train.py
    --tta, recorded in the archive's metadata); --tta always, --no-tta never."""
    import shutil

    import predict
    from models.metadata import add_metadata

    scored = tmp_path / "scored" / "model.keras"
    scored.parent.mkdir()
    shutil.copy(random_model_file, scored)
    add_metadata(scored, {"targets": ["building"], "tta": True})
    averaged = {}
    for name, path in (("plain", random_model_file), ("scored", scored)):
        for flags in ([], ["--tta"], ["--no-tta"]):
            args = predict.parse_args(["--model", str(path), *flags, str(tmp_path / "in.png")])
            predict.load_model(args, has_inputs=True)
            averaged[name, " ".join(flags)] = args.tta
    assert averaged == {("plain", ""): False, ("plain", "--tta"): True, ("plain", "--no-tta"): False,
                        ("scored", ""): True, ("scored", "--tta"): True, ("scored", "--no-tta"): False}  # fmt: skip


@pytest.mark.slow  # ~18 s; the exports themselves are tested in test_predict (default suite)
def test_predict_export_from_the_command_line(random_model_file, tmp_path):
    import keras
    import tensorflow as tf

    import predict
    from inference.export import run_tflite
    from tests.test_predict import smooth_scene

    out = predict.main(["--model", str(random_model_file), "--export", "saved_model,tflite", "--tile", "64",
                        "--out", str(tmp_path / "export")])  # fmt: skip
    images = smooth_scene(64, 64, seed=2)[None]
    model = keras.models.load_model(random_model_file)
    expected = tf.sigmoid(model(images.astype("float32"), training=False)).numpy()
    serving = tf.saved_model.load(str(out / "saved_model"))
    got = serving.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sorted(p for p in os.listdir(out) if p.endswith(".tflite")) == ["model_float32.tflite", "model_int8.tflite"]
    np.testing.assert_allclose(run_tflite(out / "model_float32.tflite", images), expected, atol=1e-4)
    assert np.abs(run_tflite(out / "model_int8.tflite", images) - expected).max() < 0.05


# --- compare.py --------------------------------------------------------------------------------
def test_compare_static_entries_from_the_command_line(capsys):
    import compare
    from experiments.report import static_table

    rows = compare.main(["--static", "--size", "64", "--entries", "fcn32/effnet-b0,unet/resnet18"])
    assert [(r["arch"], r["encoder"]) for r in rows] == [("fcn32", "effnet-b0"), ("unet", "resnet18")]
    assert rows[0] == static_table(64, archs=["fcn32"], encoders=["effnet-b0"])[0]
    assert rows[0]["params_m"] == pytest.approx(4_054_948 / 1e6)  # tests/test_compare.py counts it by hand
    printed = capsys.readouterr().out
    assert printed.startswith("| arch | encoder | params (M) | GMACs @64 |") and printed.count("\n|") == 3
    with pytest.raises(SystemExit):
        compare.main(["--static", "--entries", "unet/effnet-b9"])
    assert "--entries unet/effnet-b9: write each entry as arch/encoder" in capsys.readouterr().err
