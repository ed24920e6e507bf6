"""compare.py --grid: train every entry of a grid with the same budget, seeds and folds; finished runs are kept.

Each run is a train.py process (the grid drives the command line, as a user would); a killed
run resumes where it stopped, and a finished one is never trained again.
"""

import sys
from pathlib import Path

TRAIN = Path(__file__).resolve().parents[1] / "train.py"

GRID = (
    ("cnn", "effnet-b0"),
    ("fcn8", "effnet-b0"),
    ("unet", "effnet-b0"),
    ("fpn", "effnet-b0"),
    ("unet", "effnet-b1"),
    ("unet", "effnet-b3"),
)
# today's recipe against the one before held-out groups were measured: basic augmentation, the best
# epoch, threshold 0.5 (tag, train.py options)
# the recipe before today's: basic augmentation, best epoch, threshold 0.5, raw colours
BASIC_RECIPE = (
    "basic-best",
    ["--augment", "basic", "--select", "best", "--calibrate", "none", "--standardize", "none"],
)


def grid_entries(kind, only=None):
    """(arch, encoder, recipe tag, train.py options) of a grid; tag "" is the default recipe.

    ``only``: "arch/encoder" names to keep (None: the whole grid).
    """
    if kind == "recipe":
        entries = [("unet", "effnet-b0", "", []), ("unet", "effnet-b0", *BASIC_RECIPE)]
    else:
        entries = [(arch, encoder, "", []) for arch, encoder in GRID]
    if only is None:
        return entries
    known = {f"{arch}/{encoder}" for arch, encoder, _, _ in entries}
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(
            f"compare.py: --entries {','.join(unknown)} is not in the {kind} grid; "
            f"choose from {', '.join(sorted(known))}"
        )
    return [entry for entry in entries if f"{entry[0]}/{entry[1]}" in only]


def grid_run_dir(runs_dir, arch, encoder, tag, seed, fold=None):
    fold = "" if fold is None else f"_f{fold}"
    return Path(runs_dir) / f"grid_{arch}_{encoder}{'_' + tag if tag else ''}{fold}_s{seed}"


def die_with_parent():
    """In a child process (``preexec_fn``): receive SIGTERM when the grid process dies, even by kill -9, so no
    train.py outlives its grid (Linux; elsewhere the run-folder lock keeps a restarted grid from a second one).
    train.py saves its weights on SIGTERM, and the restarted grid resumes the run from its last epoch."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux


def wait_for_other_trainer(run_dir, poll=10.0):
    """Wait while another live train.py holds ``run_dir`` (an earlier grid's run): never two trainers in one."""
    import time

    from training.rundir import lock_holder

    holder = lock_holder(run_dir) if run_dir.is_dir() else None
    if holder:
        print(f"grid: {run_dir.name} is being trained by {holder}; waiting for it", flush=True)
    while holder:
        time.sleep(poll)
        holder = lock_holder(run_dir)


def run_grid(runs_dir, *, kind="seed", budget, epochs, seed, repeats=1, folds=0, only=None, extra=()):
    """Train every grid entry with seeds seed .. seed + repeats - 1, all with the same budget.

    With ``folds`` > 1 every entry and seed is trained once per fold of a group split
    (train.py --folds/--fold), and compare.py pools the folds. Seeds are the outer loop, so
    a grid cut short still holds whole repeats. A finished run is kept; a killed one
    resumes from its last epoch. Each run is its own process, so one run's failure is
    reported and the others still train. Returns the failed run dirs.
    """
    import subprocess

    per_epoch = max(budget // epochs, 1)
    failed = []
    jobs = [
        (s, f, entry)
        for s in range(seed, seed + repeats)
        for f in (range(folds) if folds else [None])
        for entry in grid_entries(kind, only)
    ]
    for repeat_seed, fold, (arch, encoder, tag, options) in jobs:
        run_dir = grid_run_dir(runs_dir, arch, encoder, tag, repeat_seed, fold)
        if fold is not None:
            options = [*options, "--folds", str(folds), "--fold", str(fold)]
        if (run_dir / "results.json").exists():
            print(f"grid: {run_dir.name} finished earlier, kept", flush=True)
            continue
        args = [
            "--arch",
            arch,
            "--encoder",
            encoder,
            "--epochs",
            str(epochs),
            "--steps-per-epoch",
            str(per_epoch),
            "--seed",
            str(repeat_seed),
            "--run-dir",
            str(run_dir),
            *extra,
            *options,
        ]
        wait_for_other_trainer(run_dir)
        if (run_dir / "results.json").exists():
            print(f"grid: {run_dir.name} was finished by that process, kept", flush=True)
            continue
        if (run_dir / "state.json").exists():
            args.append("--resume")
        print(f"grid: training {run_dir.name} ({epochs} x {per_epoch} steps)", flush=True)
        if subprocess.run([sys.executable, str(TRAIN), *args], preexec_fn=die_with_parent).returncode:
            print(f"grid: {run_dir.name} failed (its output is above); the other runs go on", flush=True)
            failed.append(run_dir)
    return failed
