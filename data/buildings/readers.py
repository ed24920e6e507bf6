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

from etils import epath
from PIL import Image

from common.images import IMAGE_SUFFIXES, decode_image, decode_mask

FIX_HINT = "Fix or remove the pair, then build again."
# files operating systems leave in folders and zips (macOS Finder, Windows Explorer): never data
METADATA_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")


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
            raise ValueError(
                f"The manual download folder does not exist: {manual_dir}. Create it and put the Kaggle download there."
            )
        zips = sorted(manual_dir.glob("*.zip"))
        roots = [
            p.parent
            for pattern in ("building_data/src", "*/building_data/src", "*/*/building_data/src")
            for p in manual_dir.glob(pattern)
            if p.is_dir() and not is_metadata(str(p.relative_to(manual_dir)))
        ]
        if roots:
            self.root = roots[0]
            self.files = sorted(
                f for f in (str(p.relative_to(self.root)) for p in _walk(self.root)) if not is_metadata(f)
            )
        elif zips:
            self._open_zip(zips[0])
        else:
            raise ValueError(
                f"No 'building_data/src' folder and no .zip found in {manual_dir}. Put the Kaggle "
                "'buildings-dataset' zip (or its extracted folder) there."
            )

    def _open_zip(self, path):
        # read from the file, one entry at a time: the archive is never held in memory (once or twice)
        self._zip = zipfile.ZipFile(epath.Path(path).open("rb"))
        names = self._zip.namelist()
        _check_entry_sizes(self._zip, path)
        for name in names:
            normal = posixpath.normpath(name.replace("\\", "/"))
            if name.startswith(("/", "\\")) or normal.startswith("..") or (len(name) > 1 and name[1] == ":"):
                raise ValueError(
                    f"Refusing zip {path}: entry {name!r} would land outside the extraction folder. "
                    "Download the archive again from Kaggle; do not use this file."
                )
        names = [n for n in names if not is_metadata(n)]
        prefixes = sorted(
            {n[: n.index("building_data/") + len("building_data/")] for n in names if "building_data/src/" in n}
        )
        if not prefixes:
            raise ValueError(f"Zip {path} holds no 'building_data/src/' folder. Is it the Kaggle 'buildings-dataset'?")
        self.root = f"{path}!/{prefixes[0]}"
        self._prefix = prefixes[0]
        self.files = sorted(n[len(self._prefix) :] for n in names if n.startswith(self._prefix) and not n.endswith("/"))

    def read(self, relative):
        if self._zip is not None:
            return self._zip.read(self._prefix + relative)
        return (epath.Path(self.root) / relative).read_bytes()

    def where(self, relative):
        return f"{self.root}/{relative}" if self._zip is not None else str(epath.Path(self.root) / relative)


# an entry that expands more than this many times, to more than ZIP_BOMB_FLOOR bytes, is refused (PNG, JPEG and
# compressed TIFF entries barely shrink in a zip; an uncompressed TIFF of aerial colours shrinks a few times)
ZIP_BOMB_RATIO = 100
ZIP_BOMB_FLOOR = 64 * 2**20


def _check_entry_sizes(archive, path):
    """Refuse an archive holding an entry that expands suspiciously far, or beyond the memory there is,
    before any entry is read (each entry's sizes come from the zip's directory)."""
    from common.images import check_allocation

    for info in archive.infolist():
        if info.is_dir() or is_metadata(info.filename):
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > ZIP_BOMB_FLOOR and ratio > ZIP_BOMB_RATIO:
            raise ValueError(
                f"Refusing zip {path}: entry {info.filename!r} expands {ratio:,.0f} times, from "
                f"{info.compress_size:,} to {info.file_size:,} bytes, which no image of the dataset does. Download the "
                "archive again from Kaggle; do not use this file."
            )
        check_allocation(info.file_size * 4, f"Entry {info.filename!r} of {path} ({info.file_size:,} bytes) read and "
                         "decoded", "Extract the archive and put the folder in the manual folder instead, or use a "
                         "machine with more memory.")  # fmt: skip


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
                    problems.append(
                        f"  two files share the name {_stem(f)!r}: {source.where(found[_stem(f)])} and "
                        f"{source.where(f)} (keep one)"
                    )
                found.setdefault(_stem(f), f)
        return found

    images, masks = images_in(image_dir), images_in(label_dir)
    if not images:
        raise ValueError(f"No images found in {source.where(image_dir)}. Is the download complete?")
    problems += [
        f"  image without mask: {source.where(images[s])} (expected {label_dir}/{s}.png or .tif)"
        for s in sorted(set(images) - set(masks))
    ]
    problems += [f"  mask without image: {source.where(masks[s])}" for s in sorted(set(masks) - set(images))]
    if problems:
        raise ValueError(
            f"{len(problems)} pairing problem(s) in {source.root}; every image needs exactly one mask of the same "
            "name stem. Add the missing files or remove the strays:\n" + "\n".join(problems)
        )
    return [(s, images[s], masks[s]) for s in sorted(images)]


def decode_pair(source, image_path, mask_path):
    """Decode and cross-check one image/mask pair."""
    image = decode_image(source.read(image_path), source.where(image_path), hint=FIX_HINT)
    mask = decode_mask(source.read(mask_path), source.where(mask_path), hint=FIX_HINT)
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
