"""compare.py: the table from run directories (broken ones reported), CSV, plots, static table, grid."""

import csv
import json
from pathlib import Path

import pytest

import compare
from experiments import grid, report
from tests.tiny import tiny_grid


def _fake_run(runs, name, **results):
    run = runs / name
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    base = {
        "format": 2,
        "arch": "unet",
        "encoder": "effnet-b0",
        "params": 8_502_708,
        "gmacs": 3.47,
        "heldout_iou": 0.5,
        "heldout_f1": 0.6,
        "heldout_precision": 0.7,
        "heldout_recall": 0.6,
        "heldout_kind": "groups",
        "heldout_groups": ["dubai_t8"],
        "train_images_per_sec": 1.2,
        "predict_mp_per_sec": 0.5,
        "epochs": 4,
        "wall_seconds": 300.0,
        "dataset": "buildings/synthetic",
        "selection": "ema",
        "recipe": {"augment": "aerial", "calibrate": "train"},
        "seed": 0,
    }
    (run / "results.json").write_text(json.dumps({**base, **results}))
    (run / "history.csv").write_text(
        f"epoch,loss,val_loss,val_iou\n1,0.9,0.8,0.3\n2,0.7,0.6,{results.get('heldout_iou', 0.5)}\n"
    )
    return run


@pytest.fixture
def runs(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "a_unet", heldout_iou=0.61)
    _fake_run(runs, "b_fpn", arch="fpn", params=8_409_380, gmacs=5.72, heldout_iou=0.71)
    _fake_run(runs, "c_fcn8", arch="fcn8", params=4_051_294, gmacs=0.50, heldout_iou=0.42)
    broken = runs / "d_broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "results.json").write_text('{"arch": "unet", "val_iou": 0.9')  # truncated
    partial = runs / "e_old"
    partial.mkdir()
    (partial / "results.json").write_text(json.dumps({"arch": "unet", "val_iou": 0.99}))  # older format
    killed = runs / "f_killed"
    killed.mkdir()
    (killed / "config.json").write_text("{}")
    return runs


def test_table_rows_columns_order_and_broken_runs(runs, tmp_path, capsys):
    rows = compare.main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--no-predictions"])
    out = capsys.readouterr().out
    assert [r["run"] for r in rows] == ["b_fpn", "a_unet", "c_fcn8"]  # best IoU first
    header = out.splitlines()[0]
    for title in (
        "arch",
        "encoder",
        "weights",
        "recipe",
        "params (M)",
        "GMACs",
        "train img/s",
        "predict MP/s",
        "held-out IoU",
        "F1",
        "precision",
        "recall",
        "held out",
        "epochs",
        "wall s",
        "seed",
    ):
        assert f"| {title} |" in header
    assert "| fpn | effnet-b0 | none | aerial/ema | 8.409 | 5.720 |" in out
    assert "skipped d_broken: results.json is not valid JSON" in out
    assert "skipped e_old: results.json lacks" in out and "partial, or not written by train.py" in out
    assert "skipped f_killed: no results.json" in out
    assert "0.99" not in out.split("skipped")[0]


def test_csv_round_trips_and_plots_are_pngs(runs, tmp_path):
    out = tmp_path / "out"
    rows = compare.main(["--runs", str(runs), "--out", str(out), "--no-predictions"])
    with open(out / "results.csv") as handle:
        back = list(csv.DictReader(handle))
    assert [r["run"] for r in back] == [r["run"] for r in rows]
    assert [float(r["heldout_iou"]) for r in back] == [r["heldout_iou"] for r in rows]
    assert [float(r["params_m"]) for r in back] == pytest.approx([r["params_m"] for r in rows])
    for name in ("iou_vs_gmacs.png", "learning_curves.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert (out / "results.md").read_text().startswith("| arch |")


def test_static_table_counts(capsys):
    from models import count_macs, create_encoder

    rows = report.static_table(64, archs=["fcn32"], encoders=["effnet-b0"])
    assert rows[0]["params_m"] == pytest.approx(4_054_948 / 1e6)
    # the FCN-32 head by hand at 64x64: a 1x1 score conv on P5 (2x2x1280 -> 1) and a 64x64 transposed conv
    # (stride 32, 1 -> 1 channel) from 2x2 to 64x64: 2*2*1280 + 2*2*64*64 = 5,120 + 16,384 multiply-adds
    encoder = count_macs(create_encoder("effnet-b0", input_shape=(64, 64, 3)))
    assert rows[0]["gmacs"] * 1e9 == pytest.approx(encoder + 5_120 + 16_384, abs=0.5)


def test_missing_runs_folder_is_explained(tmp_path):
    with pytest.raises(SystemExit, match="no runs folder"):
        compare.main(["--runs", str(tmp_path / "nothing")])


@pytest.mark.slow  # trains the six grid models (tiny budget): about 5 minutes on 2 cores
def test_grid_seed_trains_each_entry_once(synthetic_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    args = [
        "--runs",
        str(runs),
        "--grid",
        "seed",
        "--budget",
        "2",
        "--grid-epochs",
        "1",
        *tiny_grid(synthetic_dir),
    ]
    rows = compare.main(args)
    assert sorted((r["arch"], r["encoder"]) for r in rows) == sorted(compare.GRID)
    assert all(r["epochs"] == 1 and r["run"].endswith("_s0") for r in rows)
    capsys.readouterr()
    again = compare.main(args)  # re-running resumes the grid: nothing is trained twice
    assert "finished earlier, kept" in capsys.readouterr().out
    assert [r["run"] for r in again] == [r["run"] for r in rows]


def test_prediction_grid_never_builds_a_dataset(tmp_path, capsys):
    """Drawing the grid uses a prepared dataset or skips; it must not build one into a TFDS folder."""
    runs = tmp_path / "runs"
    run = _fake_run(runs, "a_unet", dataset="buildings/kaggle")
    empty = tmp_path / "tfds"
    (run / "config.json").write_text(json.dumps({"data_dir": str(empty), "manual_dir": str(tmp_path / "download")}))
    (run / "model.keras").write_bytes(b"a model")  # the grid draws only runs that have one
    rows = report.load_runs(runs)[0]
    assert compare.plot_prediction_grid(rows, runs, tmp_path / "grid.png") is False
    assert "prediction grid skipped: buildings/kaggle is not prepared" in capsys.readouterr().out
    assert not empty.exists() and not (tmp_path / "grid.png").exists()


def _welch_by_hand(a, b):
    """Difference of means and the 95% Welch half-width, written out from the textbook formula."""
    from scipy.stats import t

    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return ma - mb, t.ppf(0.975, df) * (va + vb) ** 0.5


def test_aggregation_and_interval_equal_a_hand_computation(tmp_path):
    from experiments.aggregate import aggregate, difference_interval

    runs = tmp_path / "runs"
    for seed, iou in enumerate((0.60, 0.64, 0.68)):
        _fake_run(runs, f"unet_s{seed}", heldout_iou=iou, seed=seed, train_images_per_sec=1.0 + seed)
    for seed, iou in enumerate((0.40, 0.47)):
        _fake_run(runs, f"fcn8_s{seed}", arch="fcn8", gmacs=0.5, heldout_iou=iou, seed=seed)
    _fake_run(runs, "fcn8_s2", arch="fcn8", gmacs=0.5, heldout_iou=None, seed=2)  # a run missing the score
    _fake_run(runs, "fpn_s0", arch="fpn", heldout_iou=0.55)  # n = 1
    rows, problems = report.load_runs(runs)
    assert not problems and [r["run"] for r in rows][-1] == "fcn8_s2"  # NaN ranks last
    table = {m["arch"]: m for m in aggregate(rows)}
    unet, fcn8, fpn = table["unet"], table["fcn8"], table["fpn"]
    assert (unet["n"], unet["runs"]) == (3, 3) and unet["mean"] == pytest.approx(0.64)
    assert unet["std"] == pytest.approx(0.04)  # sqrt(((-.04)^2 + 0 + .04^2) / 2)
    assert unet["train_images_per_sec"] == pytest.approx(2.0)
    assert (fcn8["n"], fcn8["runs"]) == (2, 3) and fcn8["mean"] == pytest.approx(0.435)
    assert fcn8["std"] == pytest.approx(0.07 / 2**0.5)
    assert fpn["n"] == 1 and fpn["mean"] == pytest.approx(0.55) and fpn["std"] != fpn["std"]  # NaN
    assert [m["arch"] for m in aggregate(rows)] == ["unet", "fpn", "fcn8"]
    diff, low, high = difference_interval(unet["scores"], fcn8["scores"])
    hand_diff, hand_half = _welch_by_hand([0.60, 0.64, 0.68], [0.40, 0.47])
    assert diff == pytest.approx(hand_diff) == pytest.approx(0.205)
    assert (high - low) / 2 == pytest.approx(hand_half, rel=1e-9)
    assert hand_half == pytest.approx(0.1917, abs=1e-4)  # df 1.88, t 4.57 x se 0.0419: two fcn8 runs, a wide interval
    diff, low, high = difference_interval(unet["scores"], fpn["scores"])  # n = 1: no interval
    assert diff == pytest.approx(0.09) and low != low and high != high


def test_answer_lines_say_better_or_no_difference():
    from experiments.aggregate import answer_lines

    def model(arch, encoder, scores, gmacs=1.0):
        import numpy as np

        return {
            "arch": arch,
            "encoder": encoder,
            "recipe_label": "aerial/ema",
            "scores": scores,
            "n": len(scores),
            "mean": float(np.mean(scores)),
            "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else float("nan"),
            "gmacs": gmacs,
        }

    table = [
        model("unet", "effnet-b0", [0.70, 0.71, 0.72]),
        model("fcn8", "effnet-b0", [0.50, 0.51, 0.52]),
        model("fpn", "effnet-b0", [0.60, 0.75, 0.68]),
        model("cnn", "effnet-b0", [0.30]),
        model("unet", "effnet-b3", [0.69, 0.73, 0.71], gmacs=2.0),
    ]
    lines = {line.split(":")[0]: line for line in answer_lines(table, "aerial/ema")}
    assert "unet/effnet-b0 better by 0.200 ± 0.023" in lines["FCN-8 vs U-Net"]  # Welch: df 4, t 2.776 x se 0.00816
    assert "no difference detectable at this budget" in lines["U-Net vs FPN"]
    assert "cannot tell" in lines["FCN vs CNN"] and "at least 2 runs" in lines["FCN vs CNN"]
    assert "2.00x the GMACs" in lines["EfficientNet-B3 vs B0 (U-Net)"]
    assert "no difference detectable" in lines["EfficientNet-B3 vs B0 (U-Net)"]
    assert "EfficientNet-B1 vs B0 (U-Net)" not in lines  # no B1 runs: no line
    assert answer_lines(table, "basic/best") == []  # other recipe: nothing to compare


@pytest.mark.slow  # four tiny U-Net/B0 runs, each its own process: about 6 minutes on 2 cores
def test_grid_repeats_train_each_entry_n_times_and_resume(synthetic_dir, tmp_path, capfd):
    runs = tmp_path / "runs"
    args = [
        "--runs",
        str(runs),
        "--grid",
        "recipe",
        "--repeats",
        "2",
        "--seed",
        "5",
        "--budget",
        "2",
        "--grid-epochs",
        "2",
        *tiny_grid(synthetic_dir),
    ]
    rows = compare.main(args)
    names = sorted(r["run"] for r in rows)
    assert names == [
        "grid_unet_effnet-b0_basic-best_s5",
        "grid_unet_effnet-b0_basic-best_s6",
        "grid_unet_effnet-b0_s5",
        "grid_unet_effnet-b0_s6",
    ]
    from train import Config

    today = f"{Config.augment}/{Config.select}/standardize {Config.standardize}"  # today's, against basic/best
    assert sorted((r["recipe_label"], r["seed"]) for r in rows) == sorted(
        [(today, 5), (today, 6), ("basic/best/threshold none", 5), ("basic/best/threshold none", 6)]
    )
    out = capfd.readouterr().out
    assert out.count("grid: training") == 4
    assert f"| unet | effnet-b0 | {today} |" in out and "| 2 |" in out  # two seeds pooled per recipe
    # a run killed after its first epoch: its checkpoint says epoch 1, its results are not written yet
    killed = runs / "grid_unet_effnet-b0_s6"
    (killed / "results.json").unlink()
    state = json.loads((killed / "state.json").read_text())
    (killed / "state.json").write_text(json.dumps({**state, "epoch": 1}))
    again = compare.main(args)
    out = capfd.readouterr().out
    assert out.count("grid: training") == 1 and "grid: training grid_unet_effnet-b0_s6" in out
    assert out.count("finished earlier, kept") == 3
    assert "resuming after epoch 1 of 2" in out and (killed / "results.json").exists()
    from training.checkpoints import read_history

    assert [row["epoch"] for row in read_history(killed)] == [1, 2]
    assert sorted(r["run"] for r in again) == names


def test_grid_loops_seeds_outside_folds_and_keeps_finished_runs(tmp_path, monkeypatch, capsys):
    """The grid's commands, without training: seeds outermost, a run per fold, finished runs kept, failures named."""
    import subprocess

    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        run_dir = Path(command[command.index("--run-dir") + 1])
        if "--fold" in command and command[command.index("--fold") + 1] == "1" and "basic" in command:
            return subprocess.CompletedProcess(command, 1)  # one run fails: reported, the rest go on
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text("{}")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    runs = tmp_path / "runs"
    failed = grid.run_grid(runs, kind="recipe", budget=10, epochs=2, seed=3, repeats=2, folds=2, extra=["--holdout-x"])
    names = [Path(c[c.index("--run-dir") + 1]).name for c in calls]
    assert names == [
        "grid_unet_effnet-b0_f0_s3",
        "grid_unet_effnet-b0_basic-best_f0_s3",
        "grid_unet_effnet-b0_f1_s3",
        "grid_unet_effnet-b0_basic-best_f1_s3",
        "grid_unet_effnet-b0_f0_s4",
        "grid_unet_effnet-b0_basic-best_f0_s4",
        "grid_unet_effnet-b0_f1_s4",
        "grid_unet_effnet-b0_basic-best_f1_s4",
    ]
    first = calls[1]
    assert first[first.index("--steps-per-epoch") + 1] == "5" and first[first.index("--seed") + 1] == "3"
    assert first[first.index("--folds") + 1] == "2" and first[first.index("--fold") + 1] == "0"
    assert "--holdout-x" in first and first[first.index("--augment") + 1] == "basic"
    assert [p.name for p in failed] == ["grid_unet_effnet-b0_basic-best_f1_s3", "grid_unet_effnet-b0_basic-best_f1_s4"]
    calls.clear()
    grid.run_grid(runs, kind="recipe", budget=10, epochs=2, seed=3, repeats=2, folds=2)
    assert [Path(c[c.index("--run-dir") + 1]).name for c in calls] == [  # only the two failed runs again
        "grid_unet_effnet-b0_basic-best_f1_s3",
        "grid_unet_effnet-b0_basic-best_f1_s4",
    ]
    assert capsys.readouterr().out.count("finished earlier, kept") == 6


def test_grid_entries_subset_and_unknown_entry():
    assert [e[:2] for e in grid.grid_entries("seed", ["unet/effnet-b0", "cnn/effnet-b0"])] == [
        ("cnn", "effnet-b0"),
        ("unet", "effnet-b0"),
    ]  # grid order, not the order asked
    with pytest.raises(SystemExit, match="unet/effnet-b7 is not in the seed grid"):
        grid.grid_entries("seed", ["unet/effnet-b7"])


def test_selection_table_pools_each_selection_over_seeds(tmp_path):
    from experiments.aggregate import selection_table

    runs = tmp_path / "runs"
    for seed, (ema, best) in enumerate(((0.40, 0.30), (0.44, 0.50), (0.42, 0.10))):
        _fake_run(runs, f"r{seed}", seed=seed, heldout_iou=ema, selections={"ema": {"iou": ema}, "best": {"iou": best}})
    _fake_run(runs, "single", heldout_iou=0.9, selections={"ema": {"iou": 0.9}})  # one selection: not in the study
    rows, _ = report.load_runs(runs)
    table = {row["selection"]: row for row in selection_table(rows)}
    assert set(table) == {"ema", "best"} and table["ema"]["kept"] and not table["best"]["kept"]
    assert (
        table["ema"]["n"] == 3
        and table["ema"]["mean"] == pytest.approx(0.42)
        and table["ema"]["std"] == pytest.approx(0.02)
    )
    assert table["best"]["mean"] == pytest.approx(0.30) and table["best"]["std"] == pytest.approx(0.2)
    markdown = compare.selection_markdown(rows)
    assert "| unet | effnet-b0 | aerial/ema | ema (kept) | 0.420 ± 0.020 | 0.040 | 3 |" in markdown
    assert "| best | 0.300 ± 0.200 | 0.400 | 3 |" in markdown


def test_questions_use_the_recipe_most_models_share():
    from experiments.aggregate import main_recipe

    table = [{"recipe_label": label} for label in ("aerial/ema", "aerial/ema", "basic/best", "aerial/ema", "basic/ema")]
    assert main_recipe(table) == "aerial/ema"
    assert main_recipe([{"recipe_label": "b"}, {"recipe_label": "a"}]) == "a" and main_recipe([]) == ""


def test_pretrained_grid_interrupted_then_restarted_trains_only_the_missing_runs(tmp_path, monkeypatch, capsys):
    """A grid cut short: its finished runs' small files are in the study folder; the same command trains only the rest,
    resumes the killed run, and on a fresh clone (no runs/ folder, only the study folder) trains nothing again."""
    import subprocess

    calls, started = [], []

    def fake_run(command, **kwargs):
        calls.append(command)
        started.append(command)
        run_dir = Path(command[command.index("--run-dir") + 1])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "state.json").write_text("{}")
        if len(started) == 4:  # the fourth run is killed half way, and the grid with it
            raise SystemExit("killed")
        for name in ("results.json", "config.json", "history.csv", "model.keras", "last.weights.h5"):
            (run_dir / name).write_text("{}")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    work, study = tmp_path / "runs" / "questions", tmp_path / "results" / "questions"
    options = dict(kind="pretrained", budget=20, epochs=2, seed=0, repeats=2, folds=2, keep=study)
    with pytest.raises(SystemExit, match="killed"):
        grid.run_grid(work, **options)
    every = [
        grid.grid_run_dir(work, arch, encoder, tag, seed, fold).name
        for seed in (0, 1)
        for fold in (0, 1)
        for arch, encoder, tag, _ in grid.PRETRAINED_GRID
    ]
    assert len(every) == 48 and [Path(c[c.index("--run-dir") + 1]).name for c in calls] == every[:4]
    assert sorted(p.name for p in study.iterdir()) == sorted(every[:3])
    assert sorted(p.name for p in (study / every[1]).iterdir()) == ["config.json", "history.csv", "results.json"]
    assert calls[1][calls[1].index("--encoder-weights") + 1] == "none"  # the random-init Lite0
    assert "--encoder-weights" not in calls[0] and calls[2][calls[2].index("--arch") + 1] == "fcn8"
    calls.clear()
    grid.run_grid(work, **options)
    names = [Path(c[c.index("--run-dir") + 1]).name for c in calls]
    assert names == every[3:] and "--resume" in calls[0] and "--resume" not in calls[1]
    assert sorted(p.name for p in study.iterdir()) == sorted(every)
    calls.clear()
    grid.run_grid(tmp_path / "fresh_clone_runs", **options)  # only the committed study folder: nothing to train
    out = capsys.readouterr().out
    assert calls == [] and out.count("finished earlier, kept") == 3 + 48
    starts = [line for line in out.splitlines() if line.endswith("to train")]
    assert starts == [f"grid: {n} of 48 runs finished earlier; {48 - n} to train" for n in (0, 3, 48)]


def test_answer_lines_pair_runs_by_place_and_seed_and_say_when_they_cannot(tmp_path):
    """ImageNet vs random init over 2 folds x 2 seeds: the paired interval of the 4 differences; unpaired: Welch."""
    import math

    from experiments.aggregate import aggregate, answer_lines, difference_interval

    runs = tmp_path / "runs"
    pretrained = {("a", 0): 0.60, ("a", 1): 0.62, ("b", 0): 0.40, ("b", 1): 0.44}
    gains = {("a", 0): 0.05, ("a", 1): 0.07, ("b", 0): 0.04, ("b", 1): 0.08}
    for (place, seed), iou in pretrained.items():
        common = dict(encoder="effnet-lite0", gmacs=0.87, seed=seed, heldout_groups=[place])
        weights = {"augment": "basic", "calibrate": "train"}
        _fake_run(
            runs, f"in_{place}{seed}", heldout_iou=iou, recipe={**weights, "encoder_weights": "imagenet"}, **common
        )
        _fake_run(runs, f"rand_{place}{seed}", heldout_iou=iou - gains[(place, seed)], recipe=weights, **common)
    for seed, iou in ((5, 0.31), (6, 0.36)):  # other seeds than every Lite0 run: cannot be paired
        _fake_run(runs, f"b0_{seed}", heldout_iou=iou, seed=seed, recipe={"augment": "basic", "calibrate": "train"})
    rows, _ = report.load_runs(runs)
    lines = answer_lines(aggregate(rows), "basic/ema")
    line = next(x for x in lines if x.startswith("ImageNet vs random init (U-Net/Lite0)"))
    # differences 0.05, 0.07, 0.04, 0.08: mean 0.06, sd 0.018257; t(0.975, 3) = 3.182446
    half = 3.182446 * 0.0182574 / math.sqrt(4)
    assert f"unet/effnet-lite0 (imagenet) better by 0.060 ± {half:.3f} [paired, 4 pairs]" in line
    assert "vs unet/effnet-lite0 (random init)" in line
    line = next(x for x in lines if x.startswith("ImageNet Lite0 vs random-init B0 (U-Net)"))
    diff, low, high = difference_interval(list(pretrained.values()), [0.31, 0.36])
    assert f"better by {diff:.3f} ± {(high - low) / 2:.3f} [Welch]" in line


def test_previous_default_grid_trains_the_recipe_of_the_earlier_default_runs():
    """--grid previous-default passes train.py the recipe the committed random-init B0 runs of results/pretrained used
    (the default before ImageNet Lite0), so its fold runs pair with the pretrained grid's U-Net/Lite0 runs."""
    from experiments.grid import grid_entries
    from train import parse_args

    [(arch, encoder, tag, options)] = grid_entries("previous-default")
    budget = ["--epochs", "6", "--steps-per-epoch", "35"]  # what the grid adds for --budget 210 --grid-epochs 6
    config = vars(parse_args(["--arch", arch, "--encoder", encoder, *options, *budget]))
    earlier_run = Path(__file__).resolve().parents[1] / "results" / "pretrained" / "dubai_t8" / "b0rand_s0"
    earlier = json.loads((earlier_run / "config.json").read_text())
    where = {"run_dir", "manual_dir", "data_dir", "dataset", "holdout", "folds", "fold", "tracker", "seed", "resume"}
    differ = {key: (config[key], value) for key, value in earlier.items() if key not in where and config[key] != value}
    assert differ == {} and tag == "previous"
