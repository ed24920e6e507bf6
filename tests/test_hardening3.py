"""Hardening, round three: options checked for meaning and weights loaded before the run folder exists."""

import json

import pytest

import train
from models import create_model
from models.encoders import create_encoder
from tests.tiny import TINY_TRAIN


def assert_train_refuses(run_dir, args, message):
    """train.main(ARGS --run-dir RUN_DIR) stops with ``message`` before writing anything (in this process: the
    checks run before TensorFlow trains; tests/test_finetune.py runs the same refusal as a subprocess)."""
    with pytest.raises(SystemExit) as stopped:
        train.main([*args, "--run-dir", str(run_dir)])
    assert message in str(stopped.value), str(stopped.value)
    assert not run_dir.exists()


def _synthetic(synthetic_dir):
    return [*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--epochs", "1"]


@pytest.mark.parametrize(
    "weights, message",
    [("1,-5", "--target-weights '1,-5': each weight must be a finite number of at least 0"),
     ("1,nan", "--target-weights '1,nan': each weight must be a finite number"),
     ("0,0", "and one above 0")],
)  # fmt: skip
def test_target_weights_are_checked_for_meaning(synthetic_dir, tmp_path, weights, message):
    args = [*_synthetic(synthetic_dir), "--targets", "building,border", "--target-weights", weights]
    assert_train_refuses(tmp_path / "run", args, message)


def test_encoder_weights_file_is_loaded_before_the_run_folder(synthetic_dir, tmp_path):
    args = _synthetic(synthetic_dir)
    missing = tmp_path / "no_such.weights.h5"
    assert_train_refuses(tmp_path / "a", [*args, "--encoder-weights", str(missing)], f"{missing}: no such file")
    text = tmp_path / "text.weights.h5"
    text.write_text("not weights")
    assert_train_refuses(tmp_path / "b", [*args, "--encoder-weights", str(text)], f"{text} is not an HDF5 file")
    other = tmp_path / "resnet34.weights.h5"  # HDF5, but another encoder's
    create_encoder("resnet34").save_weights(other)
    assert_train_refuses(
        tmp_path / "c", [*args, "--encoder-weights", str(other)], f"{other} does not load into a resnet18 encoder"
    )


def test_init_is_loaded_and_compared_before_the_run_folder(synthetic_dir, tmp_path):
    args = _synthetic(synthetic_dir)
    base = tmp_path / "base"
    base.mkdir()
    create_model("fcn32", "resnet18", input_shape=(None, None, 3)).save(base / "model.keras")
    (base / "config.json").write_text(json.dumps({"arch": "fcn32", "encoder": "resnet18", "standardize": "none",
                                                  "targets": "building", "fine_skip": False, "zoom": 1}))  # fmt: skip
    assert_train_refuses(
        tmp_path / "a", [*args, "--init", str(base), "--standardize", "image"],
        "--init " + str(base) + " was trained with --standardize 'none' (this run: 'image')",
    )  # fmt: skip
    (base / "config.json").unlink()  # a model.keras alone: its metadata and weights decide
    assert_train_refuses(
        tmp_path / "b", [*args, "--init", str(base), "--targets", "building,border"],
        "was trained with --targets 'building' (this run: 'building,border')",
    )  # fmt: skip
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    data = (base / "model.keras").read_bytes()
    (damaged / "model.keras").write_bytes(data[: len(data) // 2])  # cut short: the zip's directory is gone
    assert_train_refuses(tmp_path / "c", [*args, "--init", str(damaged)], "--init")


def test_validation_batches_are_counted_when_tf_data_cannot_tell():
    import tensorflow as tf

    from training.fit import validation_batches

    filtered = tf.data.Dataset.range(23).filter(lambda x: x % 2 == 0).batch(4)  # 12 items: 3 batches
    assert int(filtered.cardinality()) < 0 and validation_batches(filtered) == 3
    assert validation_batches(tf.data.Dataset.range(10).batch(4)) == 3 and validation_batches(None) == 0


def test_an_existing_literal_path_wins_over_a_glob(tmp_path):
    from inference.scenes import expand_inputs

    for name in ("a[1].tif", "b?.tif", "c*.tif"):  # names that are also patterns
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a1.tif").write_bytes(b"")  # what "a[1].tif" matches as a pattern
    assert expand_inputs([str(tmp_path / "a[1].tif")]) == [str(tmp_path / "a[1].tif")]
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{tmp_path / 'b?.tif'}\n{tmp_path / 'c*.tif'}\n")
    assert expand_inputs([], listing) == [str(tmp_path / "b?.tif"), str(tmp_path / "c*.tif")]
    assert expand_inputs([str(tmp_path / "a[0-9].tif")]) == [str(tmp_path / "a1.tif")]  # no such file: a pattern
    with pytest.raises(ValueError, match="matches no file, and no file has that name"):
        expand_inputs([str(tmp_path / "z[1].tif")])


def test_a_full_disk_is_recognised_through_the_chain_and_nothing_else_is():
    import errno

    from common.files import is_disk_full

    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as quota:
            raise RuntimeError("could not write the GeoPackage") from quota
    except RuntimeError as chained:
        assert is_disk_full(chained)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("the scene has 4 bands"))


@pytest.mark.parametrize(
    "option, value, message",
    [("--lr", "nan", "--lr nan: must be a finite number above 0"),
     ("--lr", "0", "--lr 0.0: must be a finite number above 0"),
     ("--weight-decay=-1e-4", None, "--weight-decay -0.0001: must be a finite number of at least 0"),
     ("--bn-momentum", "1.5", "--bn-momentum 1.5: must be a number in [0, 1)"),
     ("--gap-weight", "inf", "--gap-weight inf: must be at least 0"),
     ("--crops-per-image", "0", "--crops-per-image 0: must be at least 1")],
)  # fmt: skip
def test_numbers_are_checked_for_meaning(synthetic_dir, tmp_path, option, value, message):
    given = [option] if value is None else [option, value]  # "--weight-decay=-1e-4": argparse reads -1e-4 as a flag
    assert_train_refuses(tmp_path / "run", [*_synthetic(synthetic_dir), *given], message)


@pytest.mark.parametrize(
    "argv, start, lr, standardize",
    [([], "pretrained", 1e-3, "image"),  # Lite0: ImageNet weights ship offline
     (["--encoder", "effnet-b0"], "random", 2e-3, "none"),  # B0: no offline weights
     (["--encoder-weights", "none"], "random", 2e-3, "none"),
     (["--encoder", "effnet-b0", "--lr", "0.003"], "random", 3e-3, "none"),  # an explicit flag wins
     (["--encoder", "effnet-b0", "--standardize", "image"], "random", 2e-3, "image"),
     (["--encoder", "effnet-b0", "--start-recipe", "pretrained"], "pretrained", 1e-3, "image")],
)  # fmt: skip
def test_the_start_recipe_follows_the_encoders_weights_and_an_explicit_flag_wins(argv, start, lr, standardize):
    from training.recipes import recipe_line

    config = train.parse_args(argv)
    assert (config.start_recipe, config.lr, config.standardize) == (start, lr, standardize)
    line = recipe_line(config)
    assert line.startswith(f"recipe: {start}") and f"--lr {lr}" in line and f"--standardize {standardize}" in line
    assert ("as given" in line) == any(flag in argv for flag in ("--lr", "--standardize"))


def test_separate_always_on_a_one_target_model_says_why_nothing_is_separated(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    import predict

    create_model("fcn32", "resnet18", input_shape=(None, None, 3)).save(tmp_path / "model.keras")
    Image.fromarray(np.full((40, 56, 3), 90, np.uint8)).save(tmp_path / "scene.png")
    predict.main(["--model", str(tmp_path / "model.keras"), str(tmp_path / "scene.png"), "--out", str(tmp_path / "o"),
                  "--separate", "always", "--precision", "float32"])  # fmt: skip
    said = capsys.readouterr().out
    assert "--separate always: this model has no separation channels, only the building mask" in said
    assert "no separation (connected patches are buildings)" in said


def test_a_data_dir_that_cannot_be_made_or_is_a_file_is_named_before_the_run_folder(synthetic_dir, tmp_path):
    args = [a if a != synthetic_dir else str(tmp_path / "never") for a in _synthetic(synthetic_dir)]
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert_train_refuses(tmp_path / "a", [*args, "--data-dir", str(blocker)], "a file, not a folder")
    assert_train_refuses(tmp_path / "b", [*args, "--data-dir", str(blocker / "tfds")], "cannot be made")
    assert blocker.read_text() == "not a folder"
