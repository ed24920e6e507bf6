"""Find, pair, decode and validate image/mask files of the Kaggle buildings layout.

Every problem is named: the error says which file and what to do. Pairing problems (an
image without a mask, a mask without an image, an empty folder) are collected and
reported together before any decoding; a file that cannot be decoded, a mask whose size
differs from its image, or a mask with values other than background/building aborts the
build at that file.
"""

import hashlib
import io
import posixpath
import zipfile

import numpy as np
from etils import epath
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
FIX_HINT = "Fix or remove the pair, then build again."


class Source:
    """A folder or a zip archive holding a ``building_data/`` tree; files by relative path."""

    def __init__(self, manual_dir):
        manual_dir = epath.Path(manual_dir)
        self._zip = None
        if not manual_dir.exists():
            raise ValueError(f"The manual download folder does not exist: {manual_dir}. Create it and put the Kaggle download there.")
        zips = sorted(manual_dir.glob("*.zip"))
        roots = [p.parent for pattern in ("building_data/src", "*/building_data/src", "*/*/building_data/src")
                 for p in manual_dir.glob(pattern) if p.is_dir()]
        if roots:
            self.root = roots[0]
            self.files = sorted(str(p.relative_to(self.root)) for p in _walk(self.root))
        elif zips:
            self._open_zip(zips[0])
        else:
            raise ValueError(
                f"No 'building_data/src' folder and no .zip found in {manual_dir}. Put the Kaggle "
                "'buildings-dataset' zip (or its extracted folder) there."
            )

    def _open_zip(self, path):
        self._zip = zipfile.ZipFile(io.BytesIO(epath.Path(path).read_bytes()))
        names = self._zip.namelist()
        for name in names:
            normal = posixpath.normpath(name.replace("\\", "/"))
            if name.startswith(("/", "\\")) or normal.startswith("..") or (len(name) > 1 and name[1] == ":"):
                raise ValueError(
                    f"Refusing zip {path}: entry {name!r} would land outside the extraction folder. "
                    "Download the archive again from Kaggle; do not use this file."
                )
        prefixes = sorted({n[: n.index("building_data/") + len("building_data/")] for n in names if "building_data/src/" in n})
        if not prefixes:
            raise ValueError(f"Zip {path} holds no 'building_data/src/' folder. Is it the Kaggle 'buildings-dataset'?")
        self.root = f"{path}!/{prefixes[0]}"
        self._prefix = prefixes[0]
        self.files = sorted(n[len(self._prefix):] for n in names if n.startswith(self._prefix) and not n.endswith("/"))

    def read(self, relative):
        if self._zip is not None:
            return self._zip.read(self._prefix + relative)
        return (epath.Path(self.root) / relative).read_bytes()

    def where(self, relative):
        return f"{self.root}/{relative}" if self._zip is not None else str(epath.Path(self.root) / relative)


def _walk(folder):
    """Every file below ``folder`` (epath has no recursive glob)."""
    for child in folder.iterdir():
        if child.is_dir():
            yield from _walk(child)
        else:
            yield child


def _stem(relative):
    return posixpath.splitext(posixpath.basename(relative))[0]


def pair_files(source, image_dir, label_dir):
    """[(stem, image path, mask path)] matched by file stem; raises on any unpaired file."""
    def images_in(folder):
        return {
            _stem(f): f for f in source.files
            if posixpath.dirname(f) == folder and f.lower().endswith(IMAGE_SUFFIXES)
        }

    images, masks = images_in(image_dir), images_in(label_dir)
    if not images:
        raise ValueError(f"No images found in {source.where(image_dir)}. Is the download complete?")
    problems = [f"  image without mask: {source.where(images[s])} (expected {label_dir}/{s}.png or .tif)" for s in sorted(set(images) - set(masks))]
    problems += [f"  mask without image: {source.where(masks[s])}" for s in sorted(set(masks) - set(images))]
    if problems:
        raise ValueError(
            f"{len(problems)} unpaired file(s) in {source.root}; every image needs a mask of the same "
            "name stem. Add the missing files or remove the strays:\n" + "\n".join(problems)
        )
    return [(s, images[s], masks[s]) for s in sorted(images)]


def _decode(data, where):
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except Exception as error:  # PIL raises several types for broken files
        raise ValueError(f"Cannot read {where}: {error}. The file is unreadable or truncated; {FIX_HINT}") from error


def decode_image(data, where):
    """Any PNG/JPEG/TIFF/GeoTIFF -> uint8 (H, W, 3) RGB."""
    image = _decode(data, where)
    if image.mode in ("I;16", "I;16B", "I", "F"):
        raise ValueError(f"{where} is a {image.mode} (not 8-bit) image; convert it to 8-bit RGB. {FIX_HINT}")
    return np.asarray(image.convert("RGB"), dtype="uint8")


def decode_mask(data, where):
    """Grey or RGB mask with 0/255 or 0/1 values -> uint8 (H, W, 1) in {0, 1}."""
    array = np.asarray(_decode(data, where))
    if array.ndim == 3:
        channels = array[..., :3]
        array = channels[..., 0] if np.all(channels == channels[..., :1]) else np.any(channels > 0, axis=-1).astype("uint8") * 255
    values = np.unique(array)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        raise ValueError(
            f"Mask {where} has values {values[:10].tolist()} besides background/building "
            f"(expected 0 and 255, or 0 and 1). Binarise it (building > 0) or remove the pair."
        )
    return (array > 0).astype("uint8")[..., None]


def decode_pair(source, image_path, mask_path):
    """Decode and cross-check one image/mask pair."""
    image = decode_image(source.read(image_path), source.where(image_path))
    mask = decode_mask(source.read(mask_path), source.where(mask_path))
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(
            f"Mask {source.where(mask_path)} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{source.where(image_path)} is {image.shape[1]}x{image.shape[0]} (width x height). "
            f"{FIX_HINT}"
        )
    return image, mask


def encode_png(array):
    """PNG bytes of a uint8 (H, W, C) array; zlib level 1 is lossless and several times faster."""
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def is_validation(file_stem, fraction):
    """Deterministic split: a hash of the file name, stable across builds and machines."""
    bucket = int(hashlib.sha256(file_stem.encode("utf-8")).hexdigest()[:8], 16) % 10_000
    return bucket < round(fraction * 10_000)
