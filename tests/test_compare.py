"""compare.py: the table from run directories (broken ones reported), CSV, plots, static table, grid."""

import csv
import json

import pytest

import compare


def _fake_run(runs, name, **results):
    run = runs / name
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    base = {"format": 1, "arch": "unet", "encoder": "effnet-b0", "params": 8_502_708, "gmacs": 3.47,
            "val_iou": 0.5, "val_f1": 0.6, "val_precision": 0.7, "val_recall": 0.6, "train_images_per_sec": 1.2,
            "predict_images_per_sec": 6.0, "epochs": 4, "wall_seconds": 300.0, "dataset": "buildings/synthetic"}
    (run / "results.json").write_text(json.dumps({**base, **results}))
    (run / "history.csv").write_text("epoch,loss,val_loss,val_iou\n1,0.9,0.8,0.3\n2,0.7,0.6,%s\n" % results.get("val_iou", 0.5))
    return run


@pytest.fixture
def runs(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "a_unet", val_iou=0.61)
    _fake_run(runs, "b_fpn", arch="fpn", params=8_409_380, gmacs=5.72, val_iou=0.71)
    _fake_run(runs, "c_fcn8", arch="fcn8", params=4_051_294, gmacs=0.50, val_iou=0.42)
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
    for title in ("arch", "encoder", "params (M)", "GMACs", "train img/s", "predict img/s", "val IoU", "F1",
                  "precision", "recall", "epochs", "wall s", "dataset"):
        assert f"| {title} |" in header
    assert "| fpn | effnet-b0 | 8.409 | 5.720 |" in out
    assert "skipped d_broken: results.json is not valid JSON" in out
    assert "skipped e_old: results.json lacks" in out and "partial or older format" in out
    assert "skipped f_killed: no results.json" in out
    assert "0.99" not in out.split("skipped")[0]


def test_csv_round_trips_and_plots_are_pngs(runs, tmp_path):
    out = tmp_path / "out"
    rows = compare.main(["--runs", str(runs), "--out", str(out), "--no-predictions"])
    with open(out / "results.csv") as handle:
        back = list(csv.DictReader(handle))
    assert [r["run"] for r in back] == [r["run"] for r in rows]
    assert [float(r["val_iou"]) for r in back] == [r["val_iou"] for r in rows]
    assert [float(r["params_m"]) for r in back] == pytest.approx([r["params_m"] for r in rows])
    for name in ("iou_vs_gmacs.png", "learning_curves.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert (out / "results.md").read_text().startswith("| arch |")


def test_static_table_counts(capsys):
    rows = compare.static_table(64, archs=["fcn32"], encoders=["effnet-b0"])
    assert rows[0]["params_m"] == pytest.approx(4_054_948 / 1e6)
    assert rows[0]["gmacs"] > 0


def test_missing_runs_folder_is_explained(tmp_path):
    with pytest.raises(SystemExit, match="no runs folder"):
        compare.main(["--runs", str(tmp_path / "nothing")])


@pytest.mark.slow  # trains the six grid models (tiny budget): about 5 minutes on 2 cores
def test_grid_seed_trains_each_entry_once(synthetic_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["--runs", str(runs), "--grid", "seed", "--budget", "2", "--grid-epochs", "1", "--no-predictions",
            "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--image-size", "64",
            "--batch-size", "2", "--warmup-steps", "1", "--tracker", "local"]
    rows = compare.main(args)
    assert sorted((r["arch"], r["encoder"]) for r in rows) == sorted(compare.GRID)
    assert all(r["epochs"] == 1 for r in rows)
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
    rows = compare.load_runs(runs)[0]
    assert compare.plot_prediction_grid(rows, runs, tmp_path / "grid.png") is False
    assert "prediction grid skipped: buildings/kaggle is not prepared" in capsys.readouterr().out
    assert not empty.exists() and not (tmp_path / "grid.png").exists()
