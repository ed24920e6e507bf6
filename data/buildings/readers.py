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
# files operating systems leave in folders and zips (macOS Finder, Windows Explorer): never data
METADATA_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")
# decoding may use this share of the memory available now (the image, plus a converted copy)
MEMORY_SHARE = 0.5


def is_metadata(relative):
    """True for __MACOSX/ entries, AppleDouble ``._*`` files and folder metadata files."""
    parts = relative.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] in METADATA_NAMES


class Source:
    """A folder or a zip archive holding a ``building_data/`` tree; files by relative path."""

    def __init__(self, manual_dir):
        manual_dir = epath.Path(manual_dir)
        self._zip = None
        if not manual_dir.exists():
            raise ValueError(f"The manual download folder does not exist: {manual_dir}. Create it and put the Kaggle download there.")
        zips = sorted(manual_dir.glob("*.zip"))
        roots = [p.parent for pattern in ("building_data/src", "*/building_data/src", "*/*/building_data/src")
                 for p in manual_dir.glob(pattern) if p.is_dir() and not is_metadata(str(p.relative_to(manual_dir)))]
        if roots:
            self.root = roots[0]
            self.files = sorted(f for f in (str(p.relative_to(self.root)) for p in _walk(self.root)) if not is_metadata(f))
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
        names = [n for n in names if not is_metadata(n)]
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
    problems = []

    def images_in(folder):
        found = {}
        for f in source.files:
            if posixpath.dirname(f) == folder and f.lower().endswith(IMAGE_SUFFIXES):
                if _stem(f) in found:  # a.jpg and a.png: which one is meant cannot be guessed
                    problems.append(f"  two files share the name {_stem(f)!r}: {source.where(found[_stem(f)])} and "
                                    f"{source.where(f)} (keep one)")
                found.setdefault(_stem(f), f)
        return found

    images, masks = images_in(image_dir), images_in(label_dir)
    if not images:
        raise ValueError(f"No images found in {source.where(image_dir)}. Is the download complete?")
    problems += [f"  image without mask: {source.where(images[s])} (expected {label_dir}/{s}.png or .tif)" for s in sorted(set(images) - set(masks))]
    problems += [f"  mask without image: {source.where(masks[s])}" for s in sorted(set(masks) - set(images))]
    if problems:
        raise ValueError(
            f"{len(problems)} pairing problem(s) in {source.root}; every image needs exactly one mask of the same "
            "name stem. Add the missing files or remove the strays:\n" + "\n".join(problems)
        )
    return [(s, images[s], masks[s]) for s in sorted(images)]


def _available_memory():
    import psutil

    return psutil.virtual_memory().available


def _check_memory(image, where, hint):
    """Refuse an image whose decoded size (from its header) would not fit in memory."""
    width, height = image.size
    bands = len(image.getbands())
    needed = width * height * max(bands, 3) * 2  # the decoded image and its RGB copy
    available = _available_memory()
    if needed > MEMORY_SHARE * available:
        raise TooLargeError(
            f"{where} claims {width} x {height} pixels: decoding it needs about {needed / 1e9:.1f} GB, more than half of "
            f"the {available / 1e9:.1f} GB available. If the header is right, cut the image into tiles (e.g. with "
            f"gdal_retile.py); if it is wrong, the file is damaged. {hint}"
        )


def _raster_kind(data):
    """(bands, dtype, width, height) when GDAL reads what PIL could not, else None."""
    try:
        import warnings

        from rasterio.errors import NotGeoreferencedWarning
        from rasterio.io import MemoryFile

        with warnings.catch_warnings(), MemoryFile(data) as memory, memory.open() as raster:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return raster.count, raster.dtypes[0], raster.width, raster.height
    except Exception:  # not a raster GDAL reads either: the caller reports it as unreadable
        return None


class TooLargeError(ValueError):
    """An image whose decoded pixels would not fit in memory."""


def _decode(data, where, hint=FIX_HINT):
    # PIL's decompression-bomb guard is replaced by a check against the memory available
    # now: large orthophotos are real, but a header's claimed size must fit before decoding.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_memory(image, where, hint)
            image.load()
            return image.copy()
    except TooLargeError:
        raise
    except Exception as error:  # PIL raises several types for broken files
        raster = _raster_kind(data)
        if raster is not None and raster[1] != "uint8":
            bands, dtype, width, height = raster
            raise ValueError(
                f"{where} is a valid {bands}-band {dtype} raster of {width} x {height} pixels, but images here must be "
                "8-bit RGB (uint8, 3 bands). Convert it, e.g. "
                f"gdal_translate -ot Byte -scale -b 1 -b 2 -b 3 IN OUT (scales each band's range to 0..255). {hint}"
            ) from error
        raise ValueError(f"Cannot read {where}: {error}. The file is unreadable or truncated; {hint}") from error
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def decode_image(data, where, hint=FIX_HINT):
    """Any PNG/JPEG/TIFF/GeoTIFF -> uint8 (H, W, 3) RGB; ``hint`` ends every error (what to do next)."""
    image = _decode(data, where, hint)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise ValueError(f"{where} is a {image.mode} (not 8-bit) image; convert it to 8-bit RGB. {hint}")
    return np.asarray(image.convert("RGB"), dtype="uint8")


def decode_mask(data, where, hint=FIX_HINT):
    """A binary mask -> uint8 (H, W, 1) in {0, 1}; anything else is refused with the file named.

    Accepted: grey with values 0/255 or 0/1; RGB(A) or palette masks with black background
    and one building colour, or grey-valued RGB with 0/255 or 0/1. An alpha channel is
    ignored (it is transparency, not a label).
    """
    image = _decode(data, where, hint)
    if image.mode in ("LA", "La"):
        image = image.getchannel("L")
    elif image.mode in ("RGBA", "RGBa", "P", "PA", "CMYK", "YCbCr"):
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 3:
        colours, counts = np.unique(array.reshape(-1, array.shape[-1]), axis=0, return_counts=True)
        if np.all(colours == colours[:, :1]):  # grey stored as RGB
            array = array[..., 0]
        elif len(colours) == 2 and not colours[0].any():  # black background, one building colour
            array = np.any(array > 0, axis=-1).astype("uint8") * 255
        else:
            found = ", ".join(f"#{''.join(f'{v:02X}' for v in c)} ({n:,} px)" for c, n in
                              sorted(zip(colours.tolist(), counts.tolist()), key=lambda cn: -cn[1])[:6])
            raise ValueError(
                f"Mask {where} has {len(colours)} colours ({found}{', ...' if len(colours) > 6 else ''}); a building "
                "mask has black background and one building colour. Recolour it (building -> white, all else -> "
                f"black). {hint}"
            )
    values = np.unique(array)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        raise ValueError(
            f"Mask {where} has values {values[:10].tolist()} besides background/building "
            f"(expected 0 and 255, or 0 and 1). Binarise it (building > 0). {hint}"
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


def split_bucket(file_stem):
    """A number in [0, 10000) from a hash of the file name, stable across builds and machines."""
    return int(hashlib.sha256(file_stem.encode("utf-8")).hexdigest()[:8], 16) % 10_000


def is_validation(file_stem, fraction):
    """Deterministic split: the hash bucket of the file name falls below the fraction."""
    return split_bucket(file_stem) < round(fraction * 10_000)


def validation_stems(stems, fraction):
    """The stems of the validation split: by hash, and never none while there are two or more pairs.

    A small download can leave the hash split empty; then the stem with the lowest bucket
    (the next one the hash would pick) goes to validation, so the split is still a pure
    function of the names.
    """
    stems = list(stems)
    if len(stems) < 2:
        raise ValueError(
            f"Only {len(stems)} image/mask pair(s) found in building_data/src; training needs at least 2 (one of them "
            "for validation). Is the download complete?"
        )
    chosen = {stem for stem in stems if is_validation(stem, fraction)}
    return chosen or {min(stems, key=lambda stem: (split_bucket(stem), stem))}
