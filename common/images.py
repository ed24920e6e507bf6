"""Decode image and mask files to arrays: the one decoder of training data and of scenes to predict.

Every problem is a ValueError that names the file, says what it is and ends with ``hint``
(what to do next, in the caller's words). A header's claimed size is checked against the
memory available before any pixel is decoded.
"""

import io

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DEFAULT_HINT = "Fix or remove the file."
# decoding may use this share of the memory available now (the image, plus a converted copy)
MEMORY_SHARE = 0.5


def _available_memory():
    import psutil

    return psutil.virtual_memory().available


def check_allocation(needed, what, advice):
    """Refuse to allocate ``needed`` bytes when they exceed MEMORY_SHARE of the memory available now:
    a TooLargeError naming ``what`` needs that much, how much there is, and ``advice``."""
    available = _available_memory()
    if needed > MEMORY_SHARE * available:
        raise TooLargeError(
            f"{what} needs about {needed / 1e9:.1f} GB, more than half of the {available / 1e9:.1f} GB available. "
            + advice
        )


def _check_memory(image, where, hint):
    """Refuse an image whose decoded size (from its header) would not fit in memory."""
    width, height = image.size
    bands = len(image.getbands())
    check_allocation(
        width * height * max(bands, 3) * 2,  # the decoded image and its RGB copy
        f"{where} claims {width} x {height} pixels: decoding it",
        "If the header is right, cut the image into tiles (e.g. with gdal_retile.py); if it is wrong, the file is "
        f"damaged. {hint}",
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


def _decode(data, where, hint=DEFAULT_HINT):
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


def decode_image(data, where, hint=DEFAULT_HINT):
    """Any PNG/JPEG/TIFF/GeoTIFF -> uint8 (H, W, 3) RGB; ``hint`` ends every error (what to do next)."""
    return decode_image_and_alpha(data, where, hint)[0]


ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def decode_image_and_alpha(data, where, hint=DEFAULT_HINT):
    """(uint8 (H, W, 3) RGB, which pixels hold data): a pixel of alpha 0 (an alpha channel, or a palette's
    transparent colour) holds none, as GDAL reads an alpha band; the second item is None when every pixel does."""
    image = _decode(data, where, hint)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise ValueError(f"{where} is a {image.mode} (not 8-bit) image; convert it to 8-bit RGB. {hint}")
    valid = None
    if image.mode in ALPHA_MODES or (image.mode in ("P", "L", "RGB") and "transparency" in image.info):
        valid = np.asarray(image.convert("RGBA").getchannel("A")) > 0
        valid = None if valid.all() else valid
    return np.asarray(image.convert("RGB"), dtype="uint8"), valid


def decode_mask(data, where, hint=DEFAULT_HINT):
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
            found = ", ".join(
                f"#{''.join(f'{v:02X}' for v in c)} ({n:,} px)"
                for c, n in sorted(zip(colours.tolist(), counts.tolist()), key=lambda cn: -cn[1])[:6]
            )
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
