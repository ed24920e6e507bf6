"""What a saved model is, written inside its ``.keras`` archive and read back in one place.

A ``.keras`` file is a zip (Keras' config.json, metadata.json and model.weights.h5). train.py
adds one more member, ``buildings_zoo.json``: the architecture, encoder, the targets of the
output channels (the building channel first), the fixed input size of a dense-head model,
the decision threshold the run calibrated (already folded into the last layer's offset,
so 0.5 is that threshold) and the bands of its training images it reads (``bands``, 1-based;
RGB first). Keras ignores the member when it loads the model; tools read it
with ``read_metadata`` instead of guessing from layer names. Archives from before it existed
read as one building channel.
"""

import json
import zipfile
from pathlib import Path

MEMBER = "buildings_zoo.json"
FORMAT = 1
DEFAULTS = {"targets": ["building"], "fixed_size": None, "bands": [1, 2, 3]}


def add_metadata(keras_file, metadata):
    """Add (or replace) the metadata member of a ``.keras`` archive; call before the file is renamed into place."""
    keras_file = Path(keras_file)
    with zipfile.ZipFile(keras_file) as archive:
        if MEMBER not in archive.namelist():
            with zipfile.ZipFile(keras_file, "a", compression=zipfile.ZIP_DEFLATED) as appended:
                appended.writestr(MEMBER, json.dumps({"format": FORMAT, **metadata}, indent=2))
            return
    raise ValueError(f"{keras_file} already holds {MEMBER}; save the model again to write new metadata")


def read_metadata(keras_file):
    """The metadata of a ``.keras`` archive with every key of ``DEFAULTS`` present (older archives: the defaults)."""
    keras_file = Path(keras_file)
    try:
        with zipfile.ZipFile(keras_file) as archive:
            if MEMBER not in archive.namelist():
                return dict(DEFAULTS)
            metadata = json.loads(archive.read(MEMBER))
    except (zipfile.BadZipFile, ValueError) as error:
        raise ValueError(
            f"{keras_file}: its {MEMBER} could not be read ({type(error).__name__}); the archive is damaged. "
            "Use the model.keras a run wrote, or train again."
        ) from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("targets", []), list):
        raise ValueError(f"{keras_file}: {MEMBER} is not a JSON object with a list of targets; the archive is damaged.")
    return {**DEFAULTS, **metadata}
