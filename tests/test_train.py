"""train.py end to end at a tiny size: run directory, resume after a kill, trackers, workers."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tiny import TINY_TRAIN

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_TRAIN
RESULT_KEYS = {
    "arch",
    "encoder",
    "params",
    "gmacs",
    "heldout_iou",
    "heldout_f1",
    "heldout_precision",
    "heldout_recall",
    "heldout_kind",
    "heldout_pixels",
    "predict_mp_per_sec",
    "selection",
    "train_images_per_sec",
    "epochs",
    "wall_seconds",
    "dataset",
}


def _train_args(synthetic_dir, run_dir, *extra):
    return [*TINY, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--run-dir", str(run_dir), *extra]


def _run(args, **kwargs):
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, **kwargs
    )


def _installed(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


OPTIONAL_TRACKERS = [name for name in ("mlflow", "neptune") if _installed(name)]


def test_deterministic_gives_tensorflow_deterministic_kernels_and_one_thread():
    import tensorflow as tf
    from tensorflow.python.framework import config

    def settings():
        threading = tf.config.threading
        return threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads(), \
            config.is_op_determinism_enabled()  # fmt: skip

    assert settings() == (0, 0, False)  # this process, as train.py runs without the option
    code = (
        "from training.setup import make_deterministic; make_deterministic(); import tensorflow as tf; "
        "from tensorflow.python.framework import config; threading = tf.config.threading; "
        "print(threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads(), "
        "config.is_op_determinism_enabled())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split()[-3:] == ["1", "1", "True"], done.stderr[-2000:]
    assert settings() == (0, 0, False)  # the child's option left this process alone


def test_deterministic_after_tensorflow_has_run_is_refused_by_name_and_changes_nothing():
    import tensorflow as tf
    from tensorflow.python.framework import config

    from training.setup import make_deterministic

    tf.constant(1.0) + 1.0  # the runtime has started in this process
    with pytest.raises(SystemExit, match="--deterministic needs a process in which TensorFlow has not run yet"):
        make_deterministic()
    assert not config.is_op_determinism_enabled()
    assert tf.config.threading.get_intra_op_parallelism_threads() == 0


def test_train_makes_tensorflow_deterministic_before_it_seeds_when_asked(synthetic_dir, tmp_path, monkeypatch):
    import keras

    import train
    import training.setup

    calls = []

    class Stop(Exception):
        pass

    def seeded(seed):
        calls.append(("seed", seed))
        raise Stop

    monkeypatch.setattr(training.setup, "make_deterministic", lambda: calls.append(("deterministic",)))
    monkeypatch.setattr(keras.utils, "set_random_seed", seeded)
    for extra, expected in (([], [("seed", 3)]), (["--deterministic"], [("deterministic",), ("seed", 3)])):
        calls.clear()
        with pytest.raises(Stop):
            train.main(_train_args(synthetic_dir, tmp_path / f"run{len(extra)}", "--seed", "3", *extra))
        assert calls == expected


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_default_code_path_writes_a_complete_run(synthetic_dir, tmp_path, monkeypatch, capsys):
    import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trackers = ",".join(["local", "tensorboard", *OPTIONAL_TRACKERS])
    run_dir = train.main(_train_args(synthetic_dir, tmp_path / "runs" / "run", "--epochs", "2", "--tracker", trackers))
    results = json.loads((run_dir / "results.json").read_text())
    # resnet18 has no offline weights: the random-init recipe, printed and recorded, and used by the optimizer
    said = capsys.readouterr().out
    assert "recipe: random: resnet18 starts from random weights (--encoder-weights auto): --lr 0.002, " \
        "--standardize none" in said  # fmt: skip
    assert (results["recipe"]["start_recipe"], results["recipe"]["lr"], results["recipe"]["standardize"]) == (
        "random",
        0.002,
        "none",
    )
    assert RESULT_KEYS <= set(results)
    assert results["arch"] == "fcn32" and results["encoder"] == "resnet18"
    assert results["dataset"] == "buildings/synthetic" and results["epochs"] == 2
    # ResNet-18 without its classifier (11,176,512 in torchvision) + the BatchNorm moving statistics
    # (2 x 4,800) + the input normalisation (3 + 3 + 1); the FCN-32 head: 512 -> 1 score conv and a 64x64 kernel
    assert results["params"] == 11_176_512 + 9_600 + 7 + 513 + 64 * 64 == 11_190_728
    assert 0 < results["gmacs"] < 1
    # scored by predict.py's scorer on the whole validation split: 4 synthetic scenes of 256 x 256
    assert results["heldout_kind"] == "validation split" and results["heldout_pixels"] == 4 * 256 * 256
    metrics = json.loads((run_dir / "heldout_metrics.json").read_text())
    tp, fp, fn = (metrics["overall"][k] for k in ("tp", "fp", "fn"))
    assert results["heldout_iou"] == pytest.approx(tp / (tp + fp + fn), abs=1e-12)
    assert results["heldout_precision"] == pytest.approx(tp / (tp + fp), abs=1e-12)
    assert results["selection"] == "ema" and set(results["selections"]) == {"ema"}
    # the threshold was calibrated on the training scenes (all 12 of this set; at most 16) and travels in model.keras
    calibration = results["calibration"]
    from inference.heldout import CALIBRATION_IMAGES

    assert CALIBRATION_IMAGES == 16
    assert calibration["scenes"] == 12 and calibration["pixels"] == 12 * 256 * 256
    assert 0 < calibration["threshold"] < 1 and calibration["iou"] >= calibration["iou_at_0.5"]
    assert results["selections"]["ema"]["threshold"] == calibration["threshold"]
    assert results["recipe"]["calibrate"] == "train" and results["recipe"]["draw"] == "pass"
    assert results["recipe"]["deterministic"] is False
    assert results["train_images_per_sec"] > 0 and results["wall_seconds"] > 0
    for name in ("config.json", "history.csv", "best.weights.h5", "last.weights.h5", "model.keras", "state.json"):
        assert (run_dir / name).stat().st_size > 0, name
    # the pictures (their contents: tests/test_plots.py): four validation rows of four panels, two curve panels
    from PIL import Image

    assert Image.open(run_dir / "predictions.png").size == (960, 4 * 240)
    assert Image.open(run_dir / "learning_curves.png").size == (990, 360)
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["arch"] == "fcn32" and config["image_size"] == 64
    # the exported model takes any size and needs no custom objects
    import keras

    model = keras.models.load_model(run_dir / "model.keras")
    assert model(np.zeros((1, 96, 128, 3), "float32")).shape == (1, 96, 128, 1)
    threshold = calibration["threshold"]
    assert -model.get_layer("logits").offset == pytest.approx(math.log(threshold / (1 - threshold)), abs=1e-12)
    # optional trackers wrote their records
    if "mlflow" in OPTIONAL_TRACKERS:
        _check_mlflow(tmp_path / "runs")
    if "neptune" in OPTIONAL_TRACKERS:
        _check_neptune(run_dir)


def test_bad_arguments_fail_before_any_work(tmp_path):
    result = _run(
        ["--encoder", "effnet-b9", "--image-size", "100", "--loss", "dice+hinge", "--run-dir", str(tmp_path / "r")]
    )
    assert result.returncode != 0
    for text in ("valid encoders are", "effnet-b0", "multiple of 32", "Valid terms: bce, dice"):
        assert text in result.stderr + result.stdout
    assert not (tmp_path / "r").exists()
    result = _run(["--arch", "segformer"])
    assert "invalid choice: 'segformer'" in result.stderr and "fcn8" in result.stderr


def test_cli_arch_choices_are_the_registered_decoders(capsys):
    """--arch offers exactly the registered decoders (read from the registry, not a copy)."""
    import train
    from models import list_archs

    with pytest.raises(SystemExit):
        train.parse_args(["--arch", "nope"])
    offered = capsys.readouterr().err.split("choose from ")[1].split(")")[0]
    assert sorted(name.strip(" '") for name in offered.split(",")) == list_archs()


def test_existing_run_is_never_overwritten(synthetic_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "state.json").write_text("{}")
    result = _run(_train_args(synthetic_dir, run_dir, "--epochs", "1"))
    assert result.returncode != 0 and "already holds a run" in result.stderr + result.stdout
    assert (run_dir / "state.json").read_text() == "{}"


# train.py with a callback that sends the process SIGTERM after the second batch of the second epoch:
# the kill lands at the same step every time, whatever the machine's speed
KILLED_IN_EPOCH_2 = """
import os, signal, sys
import keras
import training.fit

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGTERM)

fit = training.fit.fit
training.fit.fit = lambda *args, callbacks, **kwargs: fit(*args, callbacks=[*callbacks, Kill()], **kwargs)
import train
train.main(sys.argv[1:])
"""


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_kill_and_resume_keeps_history_whole(synthetic_dir, tmp_path):
    run_dir = tmp_path / "run"
    args = _train_args(synthetic_dir, run_dir, "--epochs", "3", "--steps-per-epoch", "6")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_IN_EPOCH_2, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    output = killed.stdout + killed.stderr
    assert killed.returncode == 130, output[-3000:]
    assert (run_dir / "interrupted.weights.h5").exists()
    assert f"python train.py --run-dir {run_dir} --resume" in output
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 1  # epoch 2 was cut after 2 of 6 steps
    from training.checkpoints import read_history

    assert [row["epoch"] for row in read_history(run_dir)] == [1]
    assert not (run_dir / "results.json").exists()
    result = _run([*args, "--resume"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resuming after epoch 1 of 3" in result.stdout
    assert [row["epoch"] for row in read_history(run_dir)] == [1, 2, 3]
    assert json.loads((run_dir / "results.json").read_text())["epochs"] == 3


def _free_port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two processes tracing and training side by side: about 90 s on 2 cores
def test_two_workers_end_with_identical_weights(synthetic_dir, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes, logs = [], [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "CUDA_VISIBLE_DEVICES": "-1",
        }
        args = _train_args(synthetic_dir, tmp_path / "run", "--epochs", "1", "--strategy", "multiworker")
        # log files, not pipes: a worker blocked on a full pipe would stall the other one too
        with logs[index].open("w") as handle:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "train.py", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
    for process in processes:
        process.wait(timeout=600)
    outputs = [log.read_text() for log in logs]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    import keras

    chief = keras.models.load_model(tmp_path / "run" / "model.keras")
    other = keras.models.load_model(tmp_path / "run" / "worker1" / "model.keras")
    # BatchNorm is synchronised across workers, so moving statistics agree too
    for a, b in zip(chief.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    for output in outputs:
        assert "3/3" in output  # both trained the planned steps
    assert json.loads((tmp_path / "run" / "results.json").read_text())["epochs"] == 1


def _check_mlflow(runs_dir):
    import sqlite3

    with sqlite3.connect(runs_dir / "mlflow.db") as db:
        names = [row[0] for row in db.execute("select name from runs")]
        metrics = {row[0] for row in db.execute("select key from metrics")}
    assert names == ["run"]
    assert {"val_iou", "loss", "val_f1"} <= metrics
    # artifacts sit beside the database, not in ./mlruns of whatever folder the shell was in
    assert {p.name for p in (runs_dir / "mlartifacts").rglob("*") if p.is_file()} >= {
        "results.json",
        "learning_curves.png",
    }
    assert not (Path.cwd() / "mlruns").exists()


def _check_neptune(run_dir):
    files = [p for p in (run_dir / ".neptune").rglob("*") if p.is_file()]
    assert files, "no offline Neptune files"
    assert any(b"val_iou" in p.read_bytes() for p in files)


def test_trackers_send_what_the_run_logs(tmp_path, monkeypatch):
    """The MLflow and Neptune adapters against recording stand-ins: the store, the folders, every call."""
    import types

    from training import trackers

    calls = []

    def recorder(name, result=None):
        return lambda *args, **kwargs: calls.append((name, args, kwargs)) or result

    fake_mlflow = types.SimpleNamespace(
        set_tracking_uri=recorder("set_tracking_uri"),
        get_experiment_by_name=recorder("get_experiment_by_name"),
        create_experiment=recorder("create_experiment"),
        set_experiment=recorder("set_experiment"),
        start_run=recorder("start_run"),
        log_params=recorder("log_params"),
        log_metrics=recorder("log_metrics"),
        log_artifact=recorder("log_artifact"),
        set_tags=recorder("set_tags"),
        log_dict=recorder("log_dict"),
        end_run=recorder("end_run"),
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake_mlflow)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "runs" / "r1"
    tracker = trackers.create_trackers(trackers.parse_trackers("local,mlflow"), run_dir)[0]
    tracker.start({"arch": "unet", "lr": 0.002})
    tracker.log_metrics({"epoch": 1, "loss": 0.5, "val_iou": 0.25}, step=1)
    tracker.finish({"heldout_iou": 0.3}, artifacts=[run_dir / "results.json"])
    names = [name for name, _, _ in calls]
    assert names[:4] == ["set_tracking_uri", "get_experiment_by_name", "create_experiment", "set_experiment"]
    assert calls[0][1] == (f"sqlite:///{(tmp_path / 'runs').resolve() / 'mlflow.db'}",)
    assert calls[2][2]["artifact_location"] == ((tmp_path / "runs").resolve() / "mlartifacts").as_uri()
    assert ("start_run", (), {"run_name": "r1"}) in calls
    assert ("log_params", ({"arch": "unet", "lr": "0.002"},), {}) in calls
    assert ("log_metrics", ({"loss": 0.5, "val_iou": 0.25},), {"step": 1}) in calls  # the epoch is the step
    assert ("log_metrics", ({"heldout_iou": 0.3},), {}) in calls  # the final scores
    assert ("log_artifact", (str(run_dir / "results.json"),), {}) in calls and names[-1] == "end_run"
    with pytest.raises(ValueError, match="valid trackers are local, tensorboard, mlflow, neptune"):
        trackers.parse_trackers("local,wandb")


def test_multiworker_workarounds_still_apply_to_this_keras():
    """Fails loudly when Keras moves: the private internals training/distribute.py patches must exist here."""
    import keras
    from keras.src.backend.tensorflow import trainer as tf_trainer

    from training import distribute

    assert keras.__version__.startswith(distribute.PATCHED_KERAS + "."), (
        f"Keras {keras.__version__} is not {distribute.PATCHED_KERAS}: re-check the multi-worker workarounds and "
        "update PATCHED_KERAS (or delete them if Keras fixed the trainer)"
    )
    assert distribute.workarounds_apply() is True
    original = tf_trainer.reduce_per_replica
    try:
        distribute.patch_keras_multiworker_reduce()
        assert tf_trainer.reduce_per_replica._zoo_patched and tf_trainer.reduce_per_replica is not original
    finally:
        tf_trainer.reduce_per_replica = original


def test_multiworker_workarounds_are_skipped_or_refused_elsewhere(monkeypatch):
    import keras
    from keras.src.backend.tensorflow import trainer as tf_trainer

    from training import distribute

    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.warns(UserWarning, match="written for Keras 3.15; this is Keras 3.99.0, so they are skipped"):
        assert distribute.workarounds_apply() is False
    monkeypatch.setattr(keras, "__version__", "3.15.9")
    monkeypatch.delattr(tf_trainer, "_is_per_replica_instance")
    with pytest.raises(RuntimeError, match="lacks the internals .*_is_per_replica_instance"):
        distribute.workarounds_apply()
