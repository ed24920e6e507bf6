"""Folders the command lines write into: created and proven writable before any work."""

import uuid
from pathlib import Path


def make_writable_folder(path, *, option):
    """Create ``path`` and write a probe file there; a ValueError names ``option`` and the reason."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test_{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"cannot write to {option} {path} ({error.strerror}). Choose a folder you can write to."
        ) from None
    return path


# Staging files: ".<name>.<pid>-<random>.partial<suffix>" beside the final file. Unique per process and
# write, so two processes never share one, and created fresh, so a file or link planted under the final
# name is never written through; the finished file is renamed over the final name.
STAGING_MARK = ".partial"


def staging_path(path):
    """A fresh, unused staging name for ``path`` in its folder (nothing is created)."""
    import os

    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}{STAGING_MARK}{path.suffix}")


def remove_stale_staging(folder):
    """Remove staging files that processes no longer running left in ``folder`` (a kill -9); returns their names."""
    import os
    import re

    removed = []
    for path in Path(folder).glob(f".*{STAGING_MARK}*"):
        match = re.match(rf"^\..+\.(\d+)-[0-9a-f]{{8}}{re.escape(STAGING_MARK)}", path.name)
        if not match or path.is_symlink() or not path.is_file():
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
            continue  # its process still runs: its file
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        path.unlink()
        removed.append(path.name)
    return removed


# what libraries say when the disk is full, errno or not (GDAL's write errors carry none; SQLite under GeoPackage
# says it its own way)
DISK_FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded", "disk full")


def is_disk_full(error):
    """Whether ``error`` (or an error it was raised from) means the disk is full, however the library reports it."""
    import errno

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(error).lower() for words in DISK_FULL_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return False
