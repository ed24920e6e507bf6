"""Run folders: where a run writes, what makes a folder one of ours, and what --resume must repeat.

A run only writes into an empty or new folder, or into a run of its own; --resume checks the run
first (the options that must repeat, a damaged state or checkpoint, a finished run) and changes
nothing when it cannot go on. Temporary files a killed write left behind are removed.
"""

import dataclasses
import json
import time
from pathlib import Path

from common.files import make_writable_folder

# options a resumed run may change: where it logs, not what it trains
RESUME_FREE = ("resume", "run_dir", "tracker", "score_selections", "calibrate")


def _our_config(run_dir):
    """The config.json this script wrote into ``run_dir``, or None when there is none of ours."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return (
        saved if isinstance(saved, dict) and {"arch", "encoder", "dataset", "run_dir", "seed"} <= set(saved) else None
    )


def resume_mismatches(saved, config):
    """['--arch fcn8 (the run: unet)', ...]: options of ``config`` that differ from the run's saved config."""
    problems = []
    for field in dataclasses.fields(config):
        if field.name in RESUME_FREE or (field.name == "dataset" and config.dataset == "auto"):
            continue
        if field.name in saved and saved[field.name] != getattr(config, field.name):
            problems.append(
                f"--{field.name.replace('_', '-')} {getattr(config, field.name)!r} (the run: {saved[field.name]!r})"
            )
    return problems


def make_run_dir(config):
    """(run directory, finished): checked, created and writable; nothing in it is changed here.

    Only an empty folder or a run of ours is used; --resume must repeat the run's options.
    Temporary files that a killed write left behind are removed.
    """
    run_dir = (
        Path(config.run_dir)
        if config.run_dir
        else (Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}_{config.arch}_{config.encoder}")
    )
    if run_dir.exists() and not run_dir.is_dir():
        raise SystemExit(f"train.py: --run-dir {run_dir} is a file, not a folder. Choose another --run-dir.")
    # several workers of one multi-worker run share the folder (each writes its own part): no lock there
    locking = getattr(config, "strategy", "default") != "multiworker"
    holder = lock_holder(run_dir) if locking else None
    if holder:
        raise SystemExit(
            f"train.py: --run-dir {run_dir} is in use by another train.py ({holder}); nothing was changed. Wait for "
            "it to finish, stop it, or choose another --run-dir."
        )
    saved = _our_config(run_dir)
    ours = saved is not None
    if config.resume:
        if not ours:
            raise SystemExit(
                f"train.py: --resume: {run_dir} holds no run of train.py (no config.json of ours). "
                "Pass the --run-dir of the run to continue."
            )
        mismatches = resume_mismatches(saved, config)
        if mismatches:
            raise SystemExit(
                f"train.py: --resume with options that differ from the run in {run_dir} (nothing was changed):"
                "\n  " + "\n  ".join(mismatches) + "\nRepeat the run's options (see its config.json), or "
                "start a new run with another --run-dir."
            )
        from training.checkpoints import check_resumable

        try:
            check_resumable(run_dir)
        except ValueError as error:
            raise SystemExit(f"train.py: {error}") from None
        if (run_dir / "results.json").exists():
            print(
                f"train.py: {run_dir} finished earlier (results.json is written); left untouched. To train longer, "
                "start a new run (e.g. with --encoder-weights from its model)."
            )
            return run_dir, True
    elif (run_dir / "state.json").exists():
        raise SystemExit(
            f"train.py: {run_dir} already holds a run. Add --resume to continue it, or choose another --run-dir."
        )
    elif run_dir.is_dir() and not ours and any(p.name != LOCK for p in run_dir.iterdir()):
        found = ", ".join(sorted(p.name for p in run_dir.iterdir() if p.name != LOCK)[:4])
        raise SystemExit(
            f"train.py: --run-dir {run_dir} is not empty and holds no run of train.py ({found}); its files "
            "would be overwritten. Choose an empty or new folder."
        )
    try:
        make_writable_folder(run_dir, option="--run-dir")
    except ValueError as error:
        raise SystemExit(f"train.py: {error}") from None
    if locking:
        lock_run_dir(run_dir)
    for leftover in [*run_dir.glob("*.tmp"), *run_dir.glob("*.tmp.*")]:  # a write killed half-way
        leftover.unlink()
    return run_dir, False


LOCK = ".train.lock"  # "<pid> <host>" of the train.py using the folder; removed when it exits


def lock_holder(run_dir):
    """ "process <pid> on <host>" when a live train.py holds ``run_dir``, else None (a stale lock is removed)."""
    import os
    import socket

    lock = Path(run_dir) / LOCK
    try:
        pid_text, _, host = lock.read_text().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host.strip() == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            lock.unlink(missing_ok=True)  # its process is gone (killed): the lock is stale
            return None
        except PermissionError:
            pass
    elif host.strip():
        return f"process {pid} on {host.strip()} (remove {lock} if that run is gone)"
    return f"process {pid}" if pid != os.getpid() else None


def lock_run_dir(run_dir):
    """Take the folder's lock for this process (created exclusively) and drop it when the process exits."""
    import atexit
    import os
    import socket

    lock = Path(run_dir) / LOCK
    try:
        handle = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise SystemExit(
            f"train.py: --run-dir {run_dir} was taken by another train.py a moment ago ({lock_holder(run_dir)}). "
            "Choose another --run-dir."
        ) from None
    with os.fdopen(handle, "w") as file:
        file.write(f"{os.getpid()} {socket.gethostname()}")
    atexit.register(lambda: lock.unlink(missing_ok=True) if lock_holder(run_dir) is None else None)
