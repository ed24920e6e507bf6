"""Paired comparisons of a study's runs: the interval by hand, the Welch fallback, the report from files."""

import json
import math

import pytest

from experiments.aggregate import difference_interval, paired_interval
from experiments.study import comparison_lines, load_study, summary_table


def test_paired_interval_equals_a_hand_computation():
    a = {0: 0.50, 1: 0.60, 2: 0.70}
    b = {0: 0.40, 1: 0.45, 2: 0.65, 7: 0.99}  # seed 7 has no partner and is left out
    diff, low, high, method = paired_interval(a, b)
    # differences 0.10, 0.15, 0.05: mean 0.10, sd 0.05; t(0.975, df=2) = 4.302653
    half = 4.302653 * 0.05 / math.sqrt(3)
    assert diff == pytest.approx(0.10) and low == pytest.approx(0.10 - half, abs=1e-6)
    assert high == pytest.approx(0.10 + half, abs=1e-6)
    assert method == "95% paired t-interval, 3 pairs"
    # the same scores unpaired give Welch's far wider interval
    _, w_low, w_high = difference_interval([0.5, 0.6, 0.7], [0.4, 0.45, 0.65])
    assert w_high - w_low > 2 * (high - low)


def test_paired_interval_falls_back_to_welch_and_says_so():
    a, b = {0: 0.5, 1: 0.6}, {2: 0.4, 3: 0.45}
    diff, low, high, method = paired_interval(a, b)
    assert (diff, low, high) == pytest.approx(difference_interval([0.5, 0.6], [0.4, 0.45]))
    assert method == "95% Welch t-interval (runs cannot be paired)"


def test_study_report_pairs_runs_by_place_and_seed(tmp_path):
    scores = {("t8", "base"): [0.4, 0.5, 0.45], ("t8", "new"): [0.6, 0.65, 0.62], ("rio", "base"): [0.1, 0.2]}
    for (place, recipe), values in scores.items():
        for seed, value in enumerate(values):
            run = tmp_path / place / f"{recipe}_s{seed}"
            run.mkdir(parents=True)
            (run / "results.json").write_text(json.dumps({"heldout_iou": value, "heldout_building_f1": value / 4}))
    runs = load_study(tmp_path)
    assert sorted(runs) == [("rio", "base"), ("t8", "base"), ("t8", "new")]
    table = summary_table(runs)
    assert "| t8 | new | 3 | 0.623 ± 0.025 | 0.156 ± 0.006 | n/a |" in table
    lines = comparison_lines(runs, "base")
    assert len(lines) == 2 and lines[0].startswith("t8: new - base, pixel IoU: +0.173 [")
    assert "paired t-interval, 3 pairs" in lines[0]


def test_collect_copies_only_the_small_files(tmp_path):
    from experiments.collect import collect

    run = tmp_path / "runs" / "t8" / "base_s0"
    run.mkdir(parents=True)
    for name in ("results.json", "config.json", "history.csv", "model.keras", "last.weights.h5", "train.log"):
        (run / name).write_text("x")
    (tmp_path / "runs" / "t8" / "killed_s1").mkdir()  # unfinished: no results.json
    (tmp_path / "runs" / "t8" / "killed_s1" / "config.json").write_text("{}")
    copied = collect(tmp_path / "runs", tmp_path / "results")
    assert copied == [run]
    kept = sorted(p.name for p in (tmp_path / "results" / "t8" / "base_s0").iterdir())
    assert kept == ["config.json", "history.csv", "results.json"]
    assert not (tmp_path / "results" / "t8" / "killed_s1").exists()
