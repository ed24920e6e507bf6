"""Run-directory checkpoints: last and best weights, training state, and the history CSV.

At the end of every epoch, in this order: the history row is appended, the best weights
are replaced when the monitored metric improved, and the last weights (model AND
optimizer state) plus ``state.json`` are written atomically (temporary file, then rename).
A killed run therefore resumes from the last finished epoch: ``resume_state`` reloads it
and trims history rows of epochs the checkpoint does not cover, so the history never has
a gap or a duplicate.
"""

import csv
import json
import os
import time
from pathlib import Path

import keras

MONITOR = "val_iou"  # the validation metric that picks the best epoch (--select best)
LAST = "last.weights.h5"
BEST = "best.weights.h5"
STATE = "state.json"
HISTORY = "history.csv"


def _atomic_save_weights(model, path):
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(tmp)
    os.replace(tmp, path)


def atomic_write_json(data, path):
    """Write JSON to ``path`` through a temporary file and a rename: never half a file."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def atomic_save_model(model, path, metadata=None):
    """``model.save`` through ``NAME.tmp.keras`` and a rename: a killed save never leaves a broken model.keras.

    ``metadata`` (a dict) is stored in the archive (``models.metadata``) before the rename.
    """
    from models.metadata import add_metadata

    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    if metadata is not None:
        add_metadata(tmp, metadata)
    os.replace(tmp, path)


def read_history(run_dir):
    """History rows as a list of dicts with float values ('epoch' as int)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return []
    try:
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in rows]
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as error:  # a cell that is no number, a short row
        raise ValueError(f"{path} is malformed: {error}") from error


def _write_history(run_dir, rows):
    if not rows:
        return
    keys = list(rows[0])
    for row in rows[1:]:
        keys += [k for k in row if k not in keys]
    path = Path(run_dir) / HISTORY
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


class RunCheckpoint(keras.callbacks.Callback):
    """Writes history.csv, best.weights.h5, last.weights.h5 and state.json every epoch."""

    def __init__(self, run_dir, *, monitor=MONITOR, best_value=None, history=None, trackers=()):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.best_value = best_value
        self.history_rows = list(history or [])
        self.trackers = trackers
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        row["epoch_seconds"] = time.perf_counter() - self._epoch_start
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.history_rows.append(row)
        _write_history(self.run_dir, self.history_rows)
        value = logs.get(self.monitor)
        if value is not None and (self.best_value is None or value > self.best_value):
            self.best_value = float(value)
            _atomic_save_weights(self.model, self.run_dir / BEST)
        _atomic_save_weights(self.model, self.run_dir / LAST)
        atomic_write_json(
            {"epoch": epoch + 1, "best_value": self.best_value, "monitor": self.monitor}, self.run_dir / STATE
        )
        for tracker in self.trackers:
            tracker.log_metrics(row, step=epoch + 1)


def check_resumable(run_dir):
    """Raise a ValueError naming the file when a run cannot be resumed; reads, never writes."""
    import h5py

    run_dir = Path(run_dir)
    for name in (STATE, LAST):
        if not (run_dir / name).exists():
            raise ValueError(
                f"--resume: {run_dir} holds no finished epoch to resume from ({name} missing). Start a new "
                "run without --resume, or point --run-dir at the run to continue."
            )
    try:
        state = json.loads((run_dir / STATE).read_text())
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"--resume: {run_dir / STATE} is damaged ({error}); the run cannot be resumed. Start a new "
            "run with another --run-dir."
        ) from error
    try:
        with h5py.File(run_dir / LAST, "r") as weights:
            weights.keys()
    except OSError as error:
        raise ValueError(
            f"--resume: {run_dir / LAST} is unreadable or truncated ({error}); the run cannot be resumed "
            "from it. Start a new run with another --run-dir."
        ) from error
    try:
        read_history(run_dir)
    except ValueError as error:
        raise ValueError(
            f"--resume: {run_dir / HISTORY} is malformed ({error}). Fix it (one header line, then numbers "
            "per epoch) or delete it to resume with a fresh history."
        ) from error


def resume_state(run_dir, model):
    """Load last weights + optimizer state; returns (finished epochs, best value, history rows)."""
    run_dir = Path(run_dir)
    state_path = run_dir / STATE
    if not state_path.exists() or not (run_dir / LAST).exists():
        raise ValueError(
            f"--resume: {run_dir} holds no finished epoch to resume from ({STATE} or {LAST} missing). "
            "Start a new run without --resume, or point --run-dir at the run to continue."
        )
    state = json.loads(state_path.read_text())
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(run_dir / LAST)
    history = [row for row in read_history(run_dir) if row["epoch"] <= state["epoch"]]
    _write_history(run_dir, history)
    return state["epoch"], state["best_value"], history
