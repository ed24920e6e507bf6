"""results.json has one owner (training/results.py): the writer refuses non-numbers, the reader keeps old formats."""

import json
import math

import pytest

from training.results import FORMAT, read_results, write_results

BASE = {"arch": "unet", "encoder": "effnet-lite0", "params": 7_866_161, "gmacs": 0.87, "epochs": 6,
        "wall_seconds": 200.5, "dataset": "buildings/kaggle"}  # fmt: skip


def test_round_trip_and_refusals(tmp_path):
    written = write_results({**BASE, "heldout_iou": 0.61, "train_images_per_sec": None}, tmp_path / "results.json")
    assert written["format"] == FORMAT
    results, problem = read_results(tmp_path / "results.json")
    assert problem is None and results["heldout_iou"] == 0.61 and results["format"] == FORMAT
    assert math.isnan(results["train_images_per_sec"])  # a missing speed reads as NaN, shown as n/a
    with pytest.raises(ValueError, match="non-numbers in \\['gmacs'\\]"):
        write_results({**BASE, "gmacs": "fast"}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_older_formats_are_read_and_labelled(tmp_path):
    (tmp_path / "v1.json").write_text(json.dumps({**BASE, "val_iou": 0.7}))
    (tmp_path / "v2.json").write_text(json.dumps({**BASE, "format": 2, "heldout_iou": 0.5}))
    v1, problem = read_results(tmp_path / "v1.json")
    assert problem is None and v1["format"] == 1 and "heldout_iou" not in v1
    assert read_results(tmp_path / "v2.json")[0]["format"] == 2


def test_damaged_files_are_named_not_read(tmp_path):
    cases = {
        "cut.json": '{"arch": "unet", "enc',
        "list.json": "[1, 2]",
        "partial.json": json.dumps({"arch": "unet"}),
        "edited.json": json.dumps({**BASE, "epochs": "six"}),
    }
    reasons = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        results, reasons[name] = read_results(tmp_path / name)
        assert results is None
    assert "not valid JSON" in reasons["cut.json"] and "not a JSON object" in reasons["list.json"]
    assert "lacks encoder" in reasons["partial.json"] and "epochs='six'" in reasons["edited.json"]


def test_compare_shows_an_old_format_run_labelled_and_ranked_last(tmp_path):
    from experiments.report import load_runs, markdown_table

    for name, extra in {"new": {"format": 3, "heldout_iou": 0.4}, "old": {"val_iou": 0.9}}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({**BASE, **extra}))
    rows, problems = load_runs(tmp_path)
    assert problems == [] and [row["run"] for row in rows] == ["new", "old"]
    assert [row["format"] for row in rows] == [3, 1] and math.isnan(rows[1]["heldout_iou"])
    table = markdown_table(rows)
    assert table.splitlines()[0].endswith("| format | run |") and table.splitlines()[-1].endswith("| 1 | old |")
