"""Paired comparisons of a study's runs: the interval by hand, the Welch fallback, the report from files."""

import json
import math

import pytest

from experiments.aggregate import difference_interval, paired_interval
from experiments.study import comparison_lines, load_study, summary_table

# what every results.json holds besides its scores (training.results.REQUIRED)
RUN = {"arch": "unet", "encoder": "effnet-lite0", "params": 1, "gmacs": 1.0, "epochs": 1, "wall_seconds": 1.0,
       "dataset": "buildings/kaggle"}  # fmt: skip


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
            (run / "results.json").write_text(
                json.dumps({**RUN, "heldout_iou": value, "heldout_building_f1": value / 4})
            )
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


def _fold_run(folder, name, groups, scenes):
    """A grid-style run holding out ``groups``: results.json and per-scene counts (tp, fp, fn, buildings)."""
    run = folder / name
    run.mkdir(parents=True)
    rows = [
        dict(zip(("scene", "tp", "fp", "fn", "building_tp", "building_fp", "building_fn"), scene)) for scene in scenes
    ]
    (run / "results.json").write_text(json.dumps({**RUN, "heldout_groups": groups, "heldout_iou": 0.5}))
    (run / "heldout_metrics.json").write_text(json.dumps({"scenes": rows}))


def test_study_splits_fold_runs_into_places(tmp_path):
    grid, other = tmp_path / "questions", tmp_path / "defaults"
    for seed, extra in enumerate((0, 10)):
        _fold_run(
            grid,
            f"grid_unet_effnet-lite0_f0_s{seed}",
            ["dubai_t8", "rio"],
            [
                ("dubai_image_part_001t8.jpg", 60 + extra, 20, 20, 3, 1, 2),
                ("dubai_image_part_002t8.png", 20, 0, 0, 1, 0, 1),
                ("rio_3band_img7.tif", 10, 5, 5, 0, 2, 2),
            ],
        )
        old = [("dubai_image_part_001t8.jpg", 40, 30, 30, 1, 2, 4)]
        _fold_run(other, f"b0rand_f0_s{seed}", ["dubai_t8", "rio"], old)
    _fold_run(grid, "grid_fpn_effnet-lite0_f0_s0", ["dubai_t8", "rio"], [("rio_3band_img7.tif", 1, 1, 1, 0, 0, 0)])
    # one run per fold as a whole: its place is the groups it held out, its scores the run's own
    whole = load_study(grid, recipes={"unet_effnet-lite0"})
    assert list(whole) == [("dubai_t8+rio", "unet_effnet-lite0")] and whole[list(whole)[0]][0]["heldout_iou"] == 0.5
    runs = load_study(grid, other, by_place=True, recipes={"unet_effnet-lite0", "b0rand"})
    assert sorted(runs) == [("dubai_t8", "b0rand"), ("dubai_t8", "unet_effnet-lite0"), ("rio", "unet_effnet-lite0")]
    t8 = runs[("dubai_t8", "unet_effnet-lite0")]
    # t8, seed 0: 80 / (80 + 20 + 20) pixels; buildings 2 x 4 / (2 x 4 + 1 + 3)
    assert t8[0]["heldout_iou"] == pytest.approx(80 / 120) and t8[0]["heldout_building_f1"] == pytest.approx(8 / 12)
    assert t8[1]["heldout_iou"] == pytest.approx(90 / 130)
    assert runs[("rio", "unet_effnet-lite0")][0]["heldout_iou"] == pytest.approx(10 / 20)
    assert runs[("rio", "unet_effnet-lite0")][0]["heldout_building_f1"] == pytest.approx(0.0)
    lines = comparison_lines(runs, "b0rand")
    # IoU: (80/120 - 40/100) and (90/130 - 40/100), paired by seed; ratio of the means
    diff = (80 / 120 + 90 / 130) / 2 - 0.4
    assert lines[0].startswith(f"dubai_t8: unet_effnet-lite0 - b0rand, pixel IoU: {diff:+.3f} [")
    assert f", {(80 / 120 + 90 / 130) / 2 / 0.4:.2f}x (95% paired t-interval, 2 pairs)" in lines[0]
    assert len(lines) == 2  # rio has no b0rand run


def test_study_prefixes_tell_apart_two_folders_of_runs_with_the_same_names(tmp_path):
    from experiments.study import study_text

    before, after = tmp_path / "before", tmp_path / "after"
    for seed, (old, new) in enumerate(((40, 60), (50, 80))):  # one study under two recipes, the same run names
        for folder, hits in ((before, old), (after, new)):
            _fold_run(folder, f"unet_effnet-lite0_f0_s{seed}", ["dubai_t8"], [("a_t8.jpg", hits, 10, 10, 1, 1, 1)])
    args = [str(before), str(after), "--by-place", "--prefix", f"{after}=new_",
            "--recipes", "unet_effnet-lite0,new_unet_effnet-lite0", "--baseline", "unet_effnet-lite0"]  # fmt: skip
    text = study_text(args)
    diff = (60 / 80 + 80 / 100) / 2 - (40 / 60 + 50 / 70) / 2  # paired by seed: each folder's own runs
    assert f"new_unet_effnet-lite0 - unet_effnet-lite0, pixel IoU: {diff:+.3f} [" in text and "2 pairs" in text
    with pytest.raises(SystemExit):
        study_text([str(before), "--prefix", f"{after}=new_"])  # a folder not among those given


def test_study_by_place_names_a_run_without_per_scene_scores(tmp_path):
    run = tmp_path / "b0rand_f1_s0"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({**RUN, "heldout_groups": ["dubai_t1"], "heldout_iou": 0.3}))
    with pytest.raises(SystemExit, match="heldout_metrics.json is missing"):
        load_study(tmp_path, by_place=True)


def test_a_damaged_run_is_named_skipped_and_counted_like_compare_py_does(tmp_path, capsys):
    for seed, text in enumerate([
        json.dumps({**RUN, "heldout_iou": 0.5, "heldout_building_f1": 0.2}),
        '{"heldout_iou": 0.5,',  # cut short
        json.dumps({**RUN, "heldout_iou": 1.7, "heldout_building_f1": 0.2}),  # a score outside [0, 1]
    ]):  # fmt: skip
        run = tmp_path / "t8" / f"base_s{seed}"
        run.mkdir(parents=True)
        (run / "results.json").write_text(text)
    runs = load_study(tmp_path)
    assert list(runs[("t8", "base")]) == [0]
    said = capsys.readouterr().err
    assert f"skipped {tmp_path / 't8' / 'base_s1'}: results.json is not valid JSON" in said
    assert f"skipped {tmp_path / 't8' / 'base_s2'}: results.json has heldout_iou=1.7 outside [0, 1]" in said
    assert "2 damaged or partial run(s) skipped" in said


def test_a_yardsticks_runs_pair_with_ours_by_place_and_seed_and_the_overall_line_averages_places(tmp_path):
    from experiments.study import overall_lines

    def place(iou, f1):
        return {"pixel_iou": iou, "building_f1": f1, "buildings": 1, "found": 1, "matched": 1}

    for seed, (a, b) in enumerate([(0.4, 0.2), (0.5, 0.3)]):
        report = {"places": {"dubai_t8": place(a, 0.1), "rio": place(b, 0.0)}, "all": place(0.45, 0.05)}
        (tmp_path / f"plain_f0_s{seed}.json").write_text(json.dumps(report))
        ours = {"dubai_t8": place(a + 0.1, 0.2), "rio": place(b - 0.02, 0.02)}
        (tmp_path / f"ours_f0_s{seed}.json").write_text(json.dumps({"places": ours, "all": place(0.5, 0.1)}))
    (tmp_path / "plain_f0_s2.json").write_text(json.dumps({"places": {"rio": place(1.5, 0)}, "all": place(1, 0)}))
    runs = load_study(tmp_path, by_place=True)
    assert sorted(runs) == [("dubai_t8", "ours"), ("dubai_t8", "plain"), ("rio", "ours"), ("rio", "plain")]
    assert runs[("rio", "plain")][1]["heldout_iou"] == 0.3 and 2 not in runs[("rio", "plain")]  # s2 is damaged
    assert load_study(tmp_path)[("dubai_t8+rio", "plain")][0]["heldout_iou"] == 0.45  # the pooled "all"
    iou, f1 = overall_lines(runs, "plain")
    # per seed: mean over the two places of ours - plain = (0.1 - 0.02) / 2 = 0.04, the same for both seeds
    assert iou.startswith("all 2 places: ours - plain, pixel IoU: +0.040") and "worst place rio -0.020" in iou
    assert f1.startswith("all 2 places: ours - plain, building F1: +0.060") and "worst place rio +0.020" in f1
