"""experiments.posthoc: a run's held-out scores with the choices made after training, on the same weights."""

import json

import pytest


@pytest.mark.slow  # a tiny training run, then its held-out images predicted again
def test_posthoc_variants_reproduce_the_run_and_change_only_what_they_name(synthetic_dir, tmp_path):
    import train
    from experiments.posthoc import main as posthoc
    from tests.tiny import TINY_TRAIN

    run = train.main([*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--epochs", "1",
                      "--calibrate", "none", "--split", "none", "--run-dir", str(tmp_path / "tiny_f0_s0")])  # fmt: skip
    results = json.loads((run / "results.json").read_text())
    posthoc([str(run), "--no-tta", "--out", str(tmp_path / "posthoc")])
    written = sorted(p.name for p in (tmp_path / "posthoc").iterdir())
    assert written == ["tiny-cal-shape_f0_s0", "tiny-cal_f0_s0", "tiny-shape_f0_s0", "tiny_f0_s0"]

    def read(name):
        folder = tmp_path / "posthoc" / name
        return json.loads((folder / "results.json").read_text()), json.loads(
            (folder / "heldout_metrics.json").read_text()
        )

    plain, plain_metrics = read("tiny_f0_s0")
    shape, shape_metrics = read("tiny-shape_f0_s0")
    cal, cal_metrics = read("tiny-cal_f0_s0")
    cal_shape, _ = read("tiny-cal-shape_f0_s0")
    # the plain variant is the run as train.py scored it: same weights, threshold 0.5, the mask's patches
    assert plain["heldout_iou"] == pytest.approx(results["heldout_iou"], abs=1e-9)
    assert plain["heldout_building_f1"] == pytest.approx(results["heldout_building_f1"], abs=1e-9)
    # splitting by shape changes the buildings, never the pixels
    assert shape["heldout_iou"] == plain["heldout_iou"] and cal_shape["heldout_iou"] == cal["heldout_iou"]
    assert shape_metrics["overall"]["unseparated_building_tp"] == plain_metrics["overall"]["building_tp"]
    # the calibrated threshold is the one measured on the training images, applied to the same probabilities
    calibration = cal["posthoc"]["calibration"]
    assert cal_metrics["threshold"] == calibration["threshold"] == cal["posthoc"]["threshold"]
    assert 0 < calibration["threshold"] < 1 and calibration["scenes"] == 12
    # a second call finds every variant written and scores nothing again
    before = (tmp_path / "posthoc" / "tiny_f0_s0" / "results.json").stat().st_mtime_ns
    posthoc([str(run), "--no-tta", "--out", str(tmp_path / "posthoc")])
    assert (tmp_path / "posthoc" / "tiny_f0_s0" / "results.json").stat().st_mtime_ns == before


def test_posthoc_refuses_a_folder_that_is_not_a_finished_run(tmp_path):
    from experiments.posthoc import main as posthoc

    (tmp_path / "tiny_f0_s0").mkdir()
    with pytest.raises(SystemExit, match="is not a finished run named <recipe>_f<F>_s<S> with model.keras"):
        posthoc([str(tmp_path / "tiny_f0_s0"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="is not a finished run"):
        posthoc([str(tmp_path), "--out", str(tmp_path / "out")])


@pytest.mark.slow  # a tiny training run that calibrates and splits, then its held-out images predicted again
def test_posthoc_calibrated_shape_variant_is_the_run_as_train_py_ended_it(synthetic_dir, tmp_path):
    import train
    from experiments.posthoc import main as posthoc
    from tests.tiny import TINY_TRAIN

    options = ["--epochs", "2", "--calibrate", "train", "--split", "shape", "--run-dir", str(tmp_path / "tiny_f0_s0")]
    run = train.main([*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, *options])
    results = json.loads((run / "results.json").read_text())
    assert results["calibration"]["threshold"] != 0.5 and results["split"] == "shape"
    posthoc([str(run), "--no-tta", "--out", str(tmp_path / "posthoc")])
    ended = json.loads((tmp_path / "posthoc" / "tiny-cal-shape_f0_s0" / "results.json").read_text())
    # the split weighs by the probabilities the calibrated model outputs (its offset in them), as train.py's did
    assert ended["heldout_iou"] == pytest.approx(results["heldout_iou"], abs=1e-9)
    assert ended["heldout_building_f1"] == pytest.approx(results["heldout_building_f1"], abs=1e-9)
    counts = ("building_tp", "building_fp", "building_fn")
    scenes = json.loads((tmp_path / "posthoc" / "tiny-cal-shape_f0_s0" / "heldout_metrics.json").read_text())["scenes"]
    own = json.loads((run / "heldout_metrics.json").read_text())["scenes"]
    assert [[row[k] for k in counts] for row in scenes] == [[row[k] for k in counts] for row in own]
    assert sum(row["building_tp"] + row["building_fp"] for row in own) > 0  # buildings were predicted and counted
    # --calibrate-tta: the threshold measured with the flips and turns averaged, the places predicted with them
    posthoc([str(run), "--calibrate-tta", "--out", str(tmp_path / "posthoc")])
    written = sorted(p.name for p in (tmp_path / "posthoc").iterdir() if "ttacal" in p.name)
    assert written == ["tiny-ttacal-tta-shape_f0_s0", "tiny-ttacal-tta_f0_s0"]
    averaged = json.loads((tmp_path / "posthoc" / "tiny-ttacal-tta_f0_s0" / "results.json").read_text())
    assert averaged["posthoc"]["calibrated_with_tta"] and averaged["posthoc"]["tta"]
    from blocks.calibration import threshold_offset
    from data.splits import run_examples
    from inference.heldout import calibrate_model, score_model
    from inference.loading import load_segmenter
    from models.segmenter import set_logit_offset

    _, train_examples, heldout = run_examples(run)
    model, fixed = load_segmenter(run)
    set_logit_offset(model, 0.0)
    threshold = calibrate_model(model, train_examples, fixed, tta=True)["threshold"]
    assert averaged["posthoc"]["threshold"] == threshold
    set_logit_offset(model, threshold_offset(threshold))
    scored = score_model(model, heldout, fixed, tta=True)["overall"]
    assert averaged["heldout_iou"] == pytest.approx(scored["iou"], abs=1e-6)
