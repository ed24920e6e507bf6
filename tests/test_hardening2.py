"""Hardening, round two: names taken literally, options checked before anything is written."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.groups import group_of
from inference.scenes import read_label

ROOT = Path(__file__).resolve().parents[1]


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}


def test_label_lookup_takes_the_scene_name_literally(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.full((4, 6), 255, np.uint8)).save(labels / "a1.png")  # another scene's label
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(labels / "b.png")
    before = _digest(labels)
    # "a[1]" as a pattern would match a1.png; as a name it has no label
    with pytest.raises(ValueError, match=r"No label for scene 'a\[1\]'"):
        read_label(labels, "a[1]", (4, 6))
    with pytest.raises(ValueError, match=r"No label for scene '\?'"):
        read_label(labels, "?", (4, 6))  # would match b.png as a pattern
    Image.fromarray(np.full((4, 6), 255, np.uint8)).save(labels / "a[1].png")
    assert read_label(labels, "a[1]", (4, 6)).all()
    assert _digest(labels) == {**before, "a[1].png": _digest(labels)["a[1].png"]}


def _cli(script, *args):
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_bad_group_pattern_is_refused_before_any_write(tmp_path):
    run = tmp_path / "run"
    done = _cli("train.py", "--group-pattern", "([", "--holdout", "x", "--run-dir", run)
    assert done.returncode != 0 and "--group-pattern '([' is not a regular expression" in done.stderr
    assert not run.exists()
    with pytest.raises(ValueError, match="matches an empty part of 'tile_3.png'"):
        group_of("tile_3.png", "x*")


def test_bad_bands_are_named(tmp_path):
    scene = tmp_path / "s.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(scene)
    for bands in ("a,b,c", "1,2", "0,1,2"):
        done = _cli("predict.py", "--model", tmp_path / "none.keras", scene, "--bands", bands, "--out", tmp_path / "o")
        assert done.returncode == 2 and f"--bands: {bands!r} is not three band numbers" in done.stderr
        assert "invalid band_numbers value" not in done.stderr and "<lambda>" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_an_empty_validation_split_is_said_and_no_best_epoch_is_recorded(synthetic_dir, tmp_path):
    import json

    from tests.tiny import TINY_TRAIN

    run = tmp_path / "run"
    args = [*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--epochs", "1",
            "--calibrate", "none", "--holdout", "synthetic_validation", "--run-dir", run]  # fmt: skip
    done = _cli("train.py", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: the validation split is empty" in done.stdout
    results = json.loads((run / "results.json").read_text())
    assert results["best_epoch"] is None and results["heldout_groups"] == ["synthetic_validation"]


def _tiny_model(path):
    from models import create_model

    create_model("fcn32", "resnet18", input_shape=(None, None, 3)).save(path)
    return path


def test_outputs_never_write_through_planted_links_and_stale_staging_is_cleaned(tmp_path):
    model = _tiny_model(tmp_path / "model.keras")
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(scenes / "a.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a_mask.png", "a_prob.png", "a_overlay.jpg", "a.gpkg"):  # links under the names predict.py writes
        (outside / name).write_bytes(b"keep me")
        (out / name).symlink_to(outside / name)
    stale = out / ".a_mask.999999999-0123abcd.partial.png"  # left by a killed process (no such pid)
    stale.write_bytes(b"half")
    before = _digest(outside)
    done = _cli("predict.py", "--model", model, scenes, "--out", out, "--precision", "float32")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _digest(outside) == before  # nothing outside --out changed
    for name in ("a_mask.png", "a_prob.png", "a_overlay.jpg", "a.gpkg"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 100
    assert not stale.exists() and "removed 1 unfinished file(s)" in done.stdout
    assert not [p for p in out.iterdir() if "partial" in p.name]


def test_compare_names_a_score_that_is_not_a_number(tmp_path):
    import json

    base = {"arch": "unet", "encoder": "effnet-lite0", "params": 1, "gmacs": 1.0, "epochs": 1, "wall_seconds": 1.0,
            "dataset": "buildings/synthetic"}  # fmt: skip
    for name, score in {"good": 0.5, "edited": "0.9!"}.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "results.json").write_text(json.dumps({**base, "heldout_iou": score}))
    done = _cli("compare.py", "--runs", tmp_path / "runs", "--no-predictions")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: edited is tabulated, but its heldout_iou='0.9!' is not a number (shown as n/a)" in done.stdout


def test_recalibrate_refuses_a_crafted_model_and_builds_nothing(tmp_path):
    import json
    import zipfile

    run = tmp_path / "run"
    run.mkdir()
    data_dir = tmp_path / "gone"  # the run's dataset folder no longer exists
    config = {"dataset": "buildings/synthetic", "data_dir": str(data_dir), "arch": "unet", "encoder": "effnet-lite0"}
    (run / "config.json").write_text(json.dumps({**config, "bn_momentum": 0.9}))
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {"function": "os.system"}}))
    done = _cli("-m", "experiments.recalibrate", run)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "experiments.recalibrate:" in done.stderr and "does not build it" in done.stderr
    assert not data_dir.exists()


def test_recalibrate_names_a_crafted_model(synthetic_dir, tmp_path):
    import json
    import zipfile

    run = tmp_path / "run"
    run.mkdir()
    config = {"dataset": "buildings/synthetic", "data_dir": synthetic_dir, "arch": "unet", "encoder": "effnet-lite0"}
    (run / "config.json").write_text(json.dumps({**config, "bn_momentum": 0.9}))
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {"function": "os.system"}}))
    done = _cli("-m", "experiments.recalibrate", run)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"experiments.recalibrate: {run}: --model {run / 'model.keras'} could not be loaded" in done.stderr


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_is_not(tmp_path):
    import os
    import socket

    import train
    from training.rundir import LOCK, make_run_dir

    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK).write_text(f"{sleeper.pid} {socket.gethostname()}")  # a live train.py holds it
        with pytest.raises(SystemExit, match=f"is in use by another train.py \\(process {sleeper.pid}\\)"):
            make_run_dir(train.Config(run_dir=str(run)))
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # nothing was changed
    finally:
        sleeper.kill()
        sleeper.wait()
    made, finished = make_run_dir(train.Config(run_dir=str(run)))  # its process is gone: the lock is stale
    assert made == run and not finished
    assert (run / LOCK).read_text() == f"{os.getpid()} {socket.gethostname()}"
