"""train.py's final held-out scores are predict.py's scores: one scorer, a place kept out of training."""

import json

import pytest

from tests.tiny import TINY_TRAIN

TINY = [*TINY_TRAIN, "--epochs", "1"]


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_train_heldout_scores_equal_predict_labels(sample_dir, sample_tfds, tmp_path, capsys):
    import predict
    import train

    data_dir, _ = sample_tfds
    run_dir = train.main(
        [
            *TINY,
            "--dataset",
            "buildings/kaggle",
            "--manual-dir",
            str(sample_dir),
            "--data-dir",
            data_dir,
            "--holdout",
            "rio",
            "--select",
            "last",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    printed = capsys.readouterr().out
    assert "examples: 57 train, 3 validation, 12 held out" in printed  # 67 + 3 pairs + 5 scenes; 12 from Rio
    results = json.loads((run_dir / "results.json").read_text())
    assert results["heldout_kind"] == "groups" and results["heldout_groups"] == ["rio"]
    assert results["heldout_scenes"] == 12
    train_scenes = {row["scene"]: row for row in json.loads((run_dir / "heldout_metrics.json").read_text())["scenes"]}

    data = sample_dir / "building_data"
    counts, scenes = {"tp": 0.0, "fp": 0.0, "fn": 0.0}, {}
    for src, labels in ((data / "src", data / "label"), (data / "test" / "src", data / "test" / "label")):
        inputs = sorted(str(p) for p in src.glob("rio_*"))
        out = predict.main(
            [*("--model", str(run_dir), *inputs, "--labels", str(labels), "--out", str(tmp_path / src.parent.name)),
             *("--precision", "float32")]  # train.py scores in float32, exactly like this
        )  # fmt: skip
        report = json.loads((out / "metrics.json").read_text())
        for row in report["scenes"]:
            scenes[row["scene"]] = row
        for key in counts:
            counts[key] += report["overall"][key]
    assert sorted(scenes) == sorted(name.rsplit(".", 1)[0] for name in train_scenes)
    for name, row in train_scenes.items():
        for key in ("tp", "fp", "fn", "building_tp", "building_fp", "building_fn"):
            assert row[key] == scenes[name.rsplit(".", 1)[0]][key], (name, key)
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    assert results["heldout_iou"] == pytest.approx(tp / (tp + fp + fn), abs=1e-6)
    assert results["heldout_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    assert results["heldout_precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 1.0, abs=1e-6)
    assert results["heldout_recall"] == pytest.approx(tp / (tp + fn), abs=1e-6)
    b_tp, b_fp, b_fn = (sum(row[f"building_{k}"] for row in scenes.values()) for k in ("tp", "fp", "fn"))
    assert results["heldout_building_f1"] == pytest.approx(2 * b_tp / (2 * b_tp + b_fp + b_fn), abs=1e-12)
    assert results["heldout_pixels"] == sum(row["pixels"] for row in scenes.values()) == 2_135_560
    # experiments.recalibrate re-derives the run's threshold and score from its files alone
    from experiments.recalibrate import recalibrate

    calibration = results["calibration"]
    scores = recalibrate(run_dir)
    assert [threshold for threshold, _ in scores] == [0.5, calibration["threshold"]]  # both rows, always
    assert scores[1][1]["iou"] == pytest.approx(results["heldout_iou"], abs=1e-6)
    assert scores[1][1]["tp"] == pytest.approx(tp, abs=1e-6)


def test_probabilities_at_a_threshold_are_what_the_model_with_that_offset_outputs():
    # experiments.posthoc splits a calibrated variant's buildings on these, as train.py's model.keras outputs them
    import numpy as np

    from blocks.calibration import threshold_offset
    from inference.heldout import THRESHOLD, at_threshold
    from inference.tiling import make_logit_fn
    from models import create_model
    from models.segmenter import set_logit_offset

    model = create_model("fcn32", "resnet18", input_shape=(None, None, 3))
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    raw = 1 / (1 + np.exp(-make_logit_fn(model, frozen=False)(images).numpy().astype("float64")))
    set_logit_offset(model, threshold_offset(0.3))
    offset = 1 / (1 + np.exp(-make_logit_fn(model, frozen=False)(images).numpy().astype("float64")))
    moved = at_threshold(raw.astype("float32"), 0.3)
    assert moved.dtype == np.float32 and moved.shape == (1, 64, 64)
    np.testing.assert_allclose(moved, offset, atol=1e-5)
    assert np.abs(offset - raw).max() > 0.05  # the offset moved them: the check above can fail
    assert ((moved >= 0.5) == (raw >= 0.3)).mean() > 0.999  # the same mask, bar float rounding at the edge
    assert at_threshold(raw, THRESHOLD) is raw
