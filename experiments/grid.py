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
# the recipe before today's: basic augmentation, best epoch, threshold 0.5, raw colours
BASIC_RECIPE = (
    "basic-best",
    ["--augment", "basic", "--select", "best", "--calibrate", "none", "--standardize", "none"],
)
RANDOM_INIT = ("rand", ["--encoder-weights", "none"])
# the questions in the setting they were asked: every decoder over the ImageNet-pretrained Lite0, the
# bigger Lite1/Lite2 under U-Net, and random-init Lite0 and B0 under U-Net (what pretraining buys);
# ordered so that a grid cut short has answered the first questions
PRETRAINED_GRID = (
    ("unet", "effnet-lite0", "", []),
    ("unet", "effnet-lite0", *RANDOM_INIT),
    ("fcn8", "effnet-lite0", "", []),
    ("cnn", "effnet-lite0", "", []),
    ("fpn", "effnet-lite0", "", []),
    ("unet", "effnet-lite1", "", []),
    ("unet", "effnet-lite2", "", []),
    ("unet", "effnet-b0", *RANDOM_INIT),
    ("fcn32", "effnet-lite0", "", []),
    ("fcn16", "effnet-lite0", "", []),
    ("linknet", "effnet-lite0", "", []),
    ("deeplabv3plus", "effnet-lite0", "", []),
)
# train.py's default before the ImageNet Lite0 one (random-init B0, raw colours, lr 2e-3): trained on the
# pretrained grid's folds and seeds, it is paired with that grid's U-Net/Lite0 runs by experiments.study
PREVIOUS_DEFAULT = (
    "previous",
    ["--encoder-weights", "none", "--standardize", "none", "--lr", "0.002"],
)
KINDS = ("seed", "recipe", "pretrained", "previous-default")


def entry_names(entry):
    """The names --entries knows an entry by: arch/encoder (every recipe of it) and arch/encoder/tag."""
    arch, encoder, tag, _ = entry
    return {f"{arch}/{encoder}", f"{arch}/{encoder}/{tag}"} if tag else {f"{arch}/{encoder}"}


def grid_entries(kind, only=None):
    """(arch, encoder, recipe tag, train.py options) of a grid; tag "" is the default recipe.

    ``only``: names of entries to keep, "arch/encoder" (all its recipes) or "arch/encoder/tag"
    (None: the whole grid).
    """
    if kind == "recipe":
        entries = [("unet", "effnet-b0", "", []), ("unet", "effnet-b0", *BASIC_RECIPE)]
    elif kind == "pretrained":
        entries = [tuple(entry) for entry in PRETRAINED_GRID]
    elif kind == "previous-default":
        entries = [("unet", "effnet-b0", *PREVIOUS_DEFAULT)]
    else:
        entries = [(arch, encoder, "", []) for arch, encoder in GRID]
    if only is None:
        return entries
    known = set().union(*(entry_names(entry) for entry in entries))
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(
            f"compare.py: --entries {','.join(unknown)} is not in the {kind} grid; "
            f"choose from {', '.join(sorted(known))}"
        )
    return [entry for entry in entries if entry_names(entry) & set(only)]


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


def run_grid(runs_dir, *, kind="seed", budget, epochs, seed, repeats=1, folds=0, only=None, extra=(), keep=None):
    """Train every grid entry with seeds seed .. seed + repeats - 1, all with the same budget.

    ``keep``: a study folder (e.g. results/STUDY, committed with the code) that receives the
    small files of every run as it finishes (experiments.collect); a run whose copy is there
    counts as finished, so the same command continues a grid on a fresh clone.

    With ``folds`` > 1 every entry and seed is trained once per fold of a group split
    (train.py --folds/--fold), and compare.py pools the folds. Seeds are the outer loop, so
    a grid cut short still holds whole repeats. A finished run is kept; a killed one
    resumes from its last epoch. Each run is its own process, so one run's failure is
    reported and the others still train. Returns the failed run dirs.
    """
    import subprocess

    from experiments.collect import copy_small_files

    per_epoch = max(budget // epochs, 1)
    failed = []
    jobs = [
        (s, f, entry)
        for s in range(seed, seed + repeats)
        for f in (range(folds) if folds else [None])
        for entry in grid_entries(kind, only)
    ]
    kept_dir = lambda run_dir: Path(keep) / run_dir.name if keep else None  # noqa: E731
    finished = lambda folder: folder is not None and (folder / "results.json").exists()  # noqa: E731
    done = 0
    for s, f, entry in jobs:
        run_dir = grid_run_dir(runs_dir, *entry[:3], s, f)
        done += finished(run_dir) or finished(kept_dir(run_dir))
    print(f"grid: {done} of {len(jobs)} runs finished earlier; {len(jobs) - done} to train", flush=True)
    for repeat_seed, fold, (arch, encoder, tag, options) in jobs:
        run_dir = grid_run_dir(runs_dir, arch, encoder, tag, repeat_seed, fold)
        if fold is not None:
            options = [*options, "--folds", str(folds), "--fold", str(fold)]
        kept = kept_dir(run_dir)
        if finished(run_dir) or finished(kept):
            if kept and not finished(kept):
                copy_small_files(run_dir, kept)
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
        elif kept:
            copy_small_files(run_dir, kept)
            print(f"grid: {run_dir.name}'s small files are in {kept}", flush=True)
    return failed
