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
