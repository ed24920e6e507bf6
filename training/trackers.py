"""Experiment trackers behind one small interface: start, log_metrics, finish.

Local files (history.csv, results.json) and TensorBoard are always written by train.py;
these add MLflow and Neptune on request. Both are optional installs.
"""

import os
from pathlib import Path

TRACKERS = ("local", "tensorboard", "mlflow", "neptune")


def parse_trackers(text):
    """The tracker names of a comma-separated ``--tracker`` value; a ValueError lists the valid ones."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in TRACKERS]
    if unknown or not names:
        raise ValueError(f"valid trackers are {', '.join(TRACKERS)} (comma-separated). Received: tracker={text!r}")
    return names


class Tracker:
    """Do-nothing base: local files and TensorBoard are handled by train.py itself."""

    def start(self, config):
        pass

    def log_metrics(self, metrics, *, step):
        pass

    def finish(self, results, artifacts=()):
        pass


class MLflowTracker(Tracker):
    """MLflow; a local SQLite store beside the runs unless MLFLOW_TRACKING_URI is set."""

    def __init__(self, run_dir):
        try:
            import mlflow
        except ImportError as error:
            raise ValueError("--tracker mlflow needs the mlflow package: pip install mlflow") from error
        self.mlflow = mlflow
        self.run_dir = Path(run_dir)
        runs = self.run_dir.parent.resolve()
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri or f"sqlite:///{runs / 'mlflow.db'}")
        if not uri and mlflow.get_experiment_by_name("buildings") is None:
            # a new local store keeps its artifacts beside its database, not in ./mlruns of the shell's folder
            mlflow.create_experiment("buildings", artifact_location=(runs / "mlartifacts").as_uri())
        mlflow.set_experiment("buildings")

    def start(self, config):
        self.mlflow.start_run(run_name=self.run_dir.name)
        self.mlflow.log_params({k: str(v) for k, v in config.items()})

    def log_metrics(self, metrics, *, step):
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items() if k != "epoch"}, step=step)

    def finish(self, results, artifacts=()):
        self.mlflow.log_metrics({k: float(v) for k, v in results.items() if isinstance(v, (int, float))})
        for path in artifacts:
            self.mlflow.log_artifact(str(path))
        self.mlflow.end_run()


_FOLDERS_WE_SET = set()  # NEPTUNE_DATA_DIRECTORY values this process set (any other value is the user's)


class NeptuneTracker(Tracker):
    """Neptune client in offline mode by default (the hosted service closed on 2026-03-05).

    Offline runs are written under ``<run_dir>/.neptune``; set NEPTUNE_MODE=async and
    NEPTUNE_PROJECT / NEPTUNE_API_TOKEN to send them to a self-hosted server instead.
    """

    def __init__(self, run_dir):
        try:
            import neptune
        except ImportError as error:
            raise ValueError("--tracker neptune needs the neptune client: pip install neptune") from error
        self.neptune = neptune
        self.run_dir = Path(run_dir)
        self.run = None

    def start(self, config):
        # each run its own folder, also for several runs in one process (compare.py, notebooks);
        # a folder the user chose (one this process did not set) is kept
        current = os.environ.get("NEPTUNE_DATA_DIRECTORY")
        if current is None or current in _FOLDERS_WE_SET:
            current = str(self.run_dir / ".neptune")
            _FOLDERS_WE_SET.add(current)
            os.environ["NEPTUNE_DATA_DIRECTORY"] = current
        mode = os.environ.get("NEPTUNE_MODE", "offline")
        self.run = self.neptune.init_run(
            mode=mode, name=self.run_dir.name, project=os.environ.get("NEPTUNE_PROJECT", "local/buildings")
        )
        self.run["config"] = {k: str(v) for k, v in config.items()}

    def log_metrics(self, metrics, *, step):
        for key, value in metrics.items():
            if key != "epoch":
                self.run[f"train/{key}"].append(float(value), step=step)

    def finish(self, results, artifacts=()):
        self.run["results"] = {k: v for k, v in results.items() if isinstance(v, (int, float, str))}
        self.run.stop()


def create_trackers(names, run_dir):
    """Tracker objects for the non-default names among ``names`` (from ``parse_trackers``)."""
    built = []
    if "mlflow" in names:
        built.append(MLflowTracker(run_dir))
    if "neptune" in names:
        built.append(NeptuneTracker(run_dir))
    return built
