"""Copy the small files of finished runs into a study folder under results/, so they travel with the code.

    python -m experiments.collect runs/pre results/pretrained        # <place>/<recipe>_s<seed>/ folders

Every finished run (a folder holding results.json, or a predict.py evaluation's metrics.json)
under SOURCE keeps its relative path under TARGET, with only its small files: results.json,
config.json, history.csv, heldout_metrics.json, metrics.json. Weights, models, logs and pictures
stay behind. Running it again refreshes the copies.
"""

import argparse
import shutil
from pathlib import Path

SMALL_FILES = ("results.json", "config.json", "history.csv", "heldout_metrics.json", "metrics.json")


def collect(source, target):
    """Copy the small files of every finished run under ``source``; returns the run folders copied."""
    source, target = Path(source), Path(target)
    runs = sorted({p.parent for name in ("results.json", "metrics.json") for p in source.rglob(name)})
    for run in runs:
        copy_small_files(run, target / run.relative_to(source))
    return runs


def copy_small_files(run, destination):
    """Copy one run folder's small files into ``destination`` (made if missing)."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        if (Path(run) / name).is_file():
            shutil.copy2(Path(run) / name, destination / name)


def resume_args(run):
    """["--resume"] when a killed train.py run in folder ``run`` finished an epoch (its state.json), else []: a run
    killed before its first epoch has only its config and starts again (train.py takes the folder back)."""
    return ["--resume"] if run is not None and (Path(run) / "state.json").exists() else []


def comma_integers(text, where, example):
    """(1, 2) from "1,2", the value of the option ``where`` names ("experiments.kampala: --folds"); SystemExit
    naming it and showing ``example`` when it is not comma-separated integers."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SystemExit(f"{where} {text!r} is not comma-separated integers ({example})") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    runs = collect(args.source, args.target)
    print(f"{len(runs)} run(s) copied into {args.target}")


if __name__ == "__main__":
    main()
