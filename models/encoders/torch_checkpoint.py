"""Read PyTorch state-dict checkpoints without torch and without running anything in them.

A ``.pth`` file is a pickle, and a pickle can name any Python callable to run while it
loads. A checkpoint is data from outside, so this reader uses an unpickler that resolves
only the few names a state dict needs (``collections.OrderedDict``, the tensor rebuild
functions and the storage types) to harmless local stand-ins; any other name is refused
with a message before anything is called. Tensor bytes are read with NumPy and checked
against the sizes the pickle claims.

Both layouts ``torch.save`` writes are read: the legacy one (a magic number and three
small pickles, the state dict, the storage keys, then each storage's raw bytes) and the
zip archive of ``data.pkl`` plus ``data/<key>`` files (the default since PyTorch 1.6).
"""

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely: refused, with the file and the reason."""


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something a state dict never needs."""


class _Storage:
    """A storage the pickle refers to; its bytes are filled in after the pickle is read."""

    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel, self.array = np.dtype(dtype), str(key), int(numel), None


class _TensorRef:
    """What ``_rebuild_tensor_v2`` would build: a strided view of a storage, made real later."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def materialize(self, path, name):
        data = self.storage.array
        if data is None:
            raise CheckpointError(f"{path}: tensor {name!r} refers to storage {self.storage.key!r}, which has no data")
        if len(self.size) != len(self.stride) or any(s < 0 for s in self.size + self.stride) or self.offset < 0:
            raise CheckpointError(f"{path}: tensor {name!r} has an invalid size {self.size} or stride {self.stride}")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) if all(self.size) else 0
        if last >= max(data.size, 1) and all(self.size):
            raise CheckpointError(
                f"{path}: tensor {name!r} (size {self.size}, stride {self.stride}, offset {self.offset}) reaches "
                f"past its storage of {data.size} elements; the file is damaged"
            )
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * item for s in self.stride], writeable=False
        )
        return np.array(view)  # a contiguous copy, independent of the storage


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise _Refused("a tensor is built from something that is not a storage")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise _Refused(f"it names {module}.{name}, which a state dict never needs")

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or not saved_id or saved_id[0] != "storage" or len(saved_id) < 5:
            raise _Refused(f"unexpected persistent id {saved_id!r:.80}")
        _, dtype, key, _location, numel = saved_id[:5]
        if dtype not in STORAGE_DTYPES.values():
            raise _Refused(f"unknown storage type {dtype!r:.40}")
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, key, numel)
        return self.storages[key]


def _unpickle(path, file, storages=None):
    try:
        return _SafeUnpickler(file, {} if storages is None else storages).load()
    except _Refused as error:
        raise CheckpointError(
            f"{path} was refused: {error}. Only PyTorch state dicts (tensors in an OrderedDict) are read; "
            "nothing in the file was run. Use a checkpoint from a source you trust."
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        struct.error,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
    ) as error:
        raise CheckpointError(f"{path} is truncated or damaged ({type(error).__name__}: {error})") from None


def _read_legacy(path, file):
    if _unpickle(path, file) != LEGACY_MAGIC:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (no torch.save magic number)")
    if _unpickle(path, file) != LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported legacy torch.save protocol")
    sys_info = _unpickle(path, file)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise CheckpointError(f"{path}: only little-endian checkpoints are supported")
    storages = {}
    state = _unpickle(path, file, storages)
    keys = _unpickle(path, file)
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(map(str, storages)):
        raise CheckpointError(f"{path} is damaged: its storage list does not match the tensors it holds")
    for key in keys:
        storage = storages[key]
        header = file.read(8)
        if len(header) < 8:
            raise CheckpointError(f"{path} is truncated: storage {key!r} has no data")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise CheckpointError(
                f"{path} is damaged: storage {key!r} holds {numel} elements, expected {storage.numel}"
            )
        raw = file.read(numel * storage.dtype.itemsize)
        if len(raw) < numel * storage.dtype.itemsize:
            raise CheckpointError(f"{path} is truncated inside storage {key!r}")
        storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return state


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{path} is a zip without exactly one data.pkl; not a torch.save checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        storages = {}
        state = _unpickle(path, io.BytesIO(archive.read(pickles[0])), storages)
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise CheckpointError(f"{path} is damaged: storage {member} is missing")
            raw = archive.read(member)
            if len(raw) < storage.numel * storage.dtype.itemsize:
                raise CheckpointError(f"{path} is truncated inside storage {member}")
            storage.array = np.frombuffer(raw[: storage.numel * storage.dtype.itemsize], dtype=storage.dtype)
    return state


def read_state_dict(path):
    """{tensor name: np.ndarray} of a PyTorch state-dict checkpoint, read without torch.

    Raises:
        CheckpointError: the file names anything a state dict does not need (refused before
            it runs), is truncated or damaged, or is not a state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            state = _read_zip(path)
        else:
            with open(path, "rb") as file:
                state = _read_legacy(path, file)
    except zipfile.BadZipFile as error:
        raise CheckpointError(f"{path} is a damaged zip ({error})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, _TensorRef) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {str(name): ref.materialize(path, name) for name, ref in state.items()}
