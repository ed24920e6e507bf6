"""Scenes as row readers: GDAL rasters read in windows, small PNG/JPEG decoded whole.

A scene source has ``height``, ``width``, ``crs``, ``transform`` and ``read(y0, y1, x0, x1)``,
which returns that window as uint8 (rows, columns, 3). The predictor reads one window at a
time, so a GDAL raster (GeoTIFF, COG, VRT mosaic, plain TIFF) is never held whole.

The band rule for GDAL rasters:
- 3 bands: taken as they are. More bands (RGBA, RGBN): the first three. ``bands`` (predict.py
  --bands) picks others, e.g. (3, 2, 1) for BGR or (1, 1, 1) for a grey raster.
- 1 or 2 bands: refused unless ``bands`` says which three to use.
- A model trained on more bands (``channels`` > 3, train.py --bands) reads as many: those it
  recorded, or ``bands`` naming as many.
- Not 8-bit (16-bit, float): each band is scaled to 0..255 between its 2nd and 98th
  percentile, measured on a decimated read of the whole raster (its overviews when it has
  them), with no-data excluded. The same scale applies to every window, so no seams.
"""

import contextlib
import dataclasses
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from common.images import decode_image_and_alpha

WINDOWED_SUFFIXES = (".tif", ".tiff", ".vrt")
PERCENTILES = (2.0, 98.0)  # the range of a non-8-bit band mapped onto 0..255
STATISTICS_SIDE = 1024  # the decimated read for those percentiles has at most this many pixels a side


class SceneReadError(ValueError):
    """A scene (or a part of it) that cannot be read; the message names the file and what to do."""


@dataclasses.dataclass
class ArraySource:
    """A scene decoded whole (PNG, JPEG): ``read`` slices the array."""

    path: Path
    image: np.ndarray  # uint8 (H, W, 3), no-data pixels already filled (``fill_nodata``)
    crs: object = None
    transform: object = None
    note: str = ""
    valid_pixels: np.ndarray = None  # bool (H, W): False where the alpha channel is 0; None: every pixel is data

    @property
    def height(self):
        return self.image.shape[0]

    @property
    def width(self):
        return self.image.shape[1]

    @property
    def has_nodata(self):
        return self.valid_pixels is not None

    def read(self, y0, y1, x0=0, x1=None):
        return self.image[y0:y1, x0:x1]

    def valid(self, y0, y1, x0=0, x1=None):
        return None if self.valid_pixels is None else self.valid_pixels[y0:y1, x0:x1]

    def close(self):
        pass


class RasterSource:
    """A GDAL raster read one window of rows at a time (see the module's band rule)."""

    def __init__(self, path, *, bands=None, hint="", local_only=False, channels=3):
        from rasterio.enums import MaskFlags
        from rasterio.errors import RasterioIOError

        self.path, self.hint = Path(path), hint
        self._lock = threading.Lock()
        self._stall = StallBudget()
        try:
            self.dataset = _open(self.path)
        except RasterioIOError as error:
            raise SceneReadError(f"Cannot open {self.path}: {error}. {hint}") from error
        try:
            self._check(local_only)
            self.indexes = self._bands(bands, channels)
            self.has_nodata = self.dataset.dtypes[0].startswith("float") or any(
                MaskFlags.all_valid not in self.dataset.mask_flag_enums[i - 1] for i in self.indexes
            )
            if self.has_nodata:
                self._check_some_valid()
            self.scale = None if self.dataset.dtypes[0] == "uint8" else self._percentile_scale()
            self.note = self._note(bands)
            self._read_corners()
        except Exception:
            self.dataset.close()
            raise
        self.crs, self.transform = georeference(self.dataset)

    height = property(lambda self: self.dataset.height)
    width = property(lambda self: self.dataset.width)

    def _check(self, local_only):
        remote = [f for f in self.dataset.files if is_remote(f)]
        if local_only and remote:
            raise SceneReadError(
                f"{self.path} reads from the network ({', '.join(remote)}), which --local-only forbids. Copy the "
                f"source(s) to local files and point the VRT at them, or drop --local-only. {self.hint}"
            )
        local = [f for f in self.dataset.files[1:] if "://" not in f and not f.startswith("/vsi")]
        missing = [f for f in local if not Path(f).exists()]
        if missing:
            raise SceneReadError(
                f"{self.path} refers to source file(s) that do not exist: {', '.join(missing)}. "
                f"Restore them or rebuild the mosaic (gdalbuildvrt). {self.hint}"
            )

    def _bands(self, bands, channels):
        count = self.dataset.count
        if bands:
            wrong = [b for b in bands if not 1 <= b <= count]
            if len(bands) != channels or wrong:
                raise SceneReadError(
                    f"--bands {','.join(map(str, bands))} does not fit {self.path}, which has {count} band(s): "
                    f"give {channels} band numbers from 1 to {count}"
                    + (" (the model reads that many; without --bands: those it was trained on)" * (channels != 3))
                    + f". Received: bands={bands}"
                )
            return list(bands)
        if channels != 3:
            if count < channels:
                raise SceneReadError(
                    f"{self.path} has {count} band(s), but the model takes {channels}. Pass --bands with {channels} "
                    f"band numbers, or use a model of fewer bands. {self.hint}"
                )
            return list(range(1, channels + 1))
        if count < 3:
            raise SceneReadError(
                f"{self.path} has {count} band(s), but the models take three (RGB). Pass --bands 1,1,1 to repeat "
                f"{'its grey band' if count == 1 else 'band 1'} (or name the three bands to use). {self.hint}"
            )
        return [1, 2, 3]

    def _note(self, bands):
        notes = []
        if self.dataset.count > len(self.indexes) and not bands:
            used = ",".join(map(str, self.indexes))
            notes.append(f"{self.dataset.count} bands: using bands {used} (--bands picks others)")
        if self.scale is not None:
            low, high = self.scale
            ranges = ", ".join(f"{lo:g}..{hi:g}" for lo, hi in zip(low.ravel(), high.ravel()))
            notes.append(f"{self.dataset.dtypes[0]}: bands scaled to 8-bit from their 2-98% ranges {ranges}")
        return "; ".join(notes)

    def _percentile_scale(self):
        """Per-band (low, high) of the 2nd and 98th percentile, from a decimated read."""
        shape = self._decimated_shape()
        sample = self._guarded(lambda: self.dataset.read(self.indexes, out_shape=shape, masked=True), "its overview")
        low, high = [], []
        for band in sample:
            values = band.compressed()
            values = values[np.isfinite(values)]
            lo, hi = np.percentile(values, PERCENTILES) if values.size else (0.0, 1.0)
            low.append(lo)
            high.append(hi if hi > lo else lo + 1)
        return np.asarray(low, "float64")[:, None, None], np.asarray(high, "float64")[:, None, None]

    def _read_corners(self):
        """Read the first and the last row of blocks now, so a truncated file fails before any prediction."""
        for y in {0, self.height - 1}:
            self.read(y, y + 1)

    def _guarded(self, read, where):
        from rasterio.errors import RasterioError

        remote = [f for f in self.dataset.files if is_remote(f)]
        try:
            with self._lock:  # one GDAL dataset is never read by two threads at once (the writer reads masks)
                if not remote:
                    return read()
                with self._stall.env(self.path, where):  # a stalled server costs GDAL_HTTP_TIMEOUT per scene
                    return read()
        except RasterioError as error:
            detail = f"{error}".rstrip(".") + (f" ({error.__cause__})" if error.__cause__ else "")
            if remote and self._stall.spent():
                raise SceneReadError(self._stall.message(self.path, where, remote, self.hint)) from error
            raise SceneReadError(
                f"Cannot read {where} of {self.path}: {detail}. The file is truncated or damaged, or (a VRT) one of "
                f"its sources is missing or damaged. {self.hint}"
            ) from error

    def read(self, y0, y1, x0=0, x1=None):
        """Rows [y0, y1) and columns [x0, x1) (default: all) as uint8 (rows, columns, bands: 3 unless the source
        reads more); no-data pixels take the colour of the nearest valid pixel of the window (``fill_nodata``)."""
        from rasterio.windows import Window

        x1 = self.width if x1 is None else x1
        window = Window(x0, y0, x1 - x0, y1 - y0)
        pixels = np.empty((y1 - y0, x1 - x0, len(self.indexes)), dtype="uint8")
        for channel, index in enumerate(self.indexes):  # one band at a time: no second copy
            band = self._guarded(lambda i=index: self.dataset.read(i, window=window), f"rows {y0}-{y1}")
            if self.scale is not None:
                low, high = (bound[channel, 0, 0] for bound in self.scale)
                band = np.clip(np.nan_to_num((band - low) * (255.0 / (high - low))), 0, 255).round()
            pixels[..., channel] = band
        if self.has_nodata:
            valid = self.valid(y0, y1, x0, x1)
            if not valid.all():
                pixels = fill_nodata(pixels, valid)
        return pixels

    def valid(self, y0, y1, x0=0, x1=None):
        """Which pixels of the window hold data (bool (rows, columns)): GDAL's masks of the three bands (a
        pixel is no-data when all three bands say so: a nodata value in every band, an alpha band or an internal
        mask) and, in float rasters, finite values in all three; None when the raster has no no-data at all."""
        if not self.has_nodata:
            return None
        from rasterio.windows import Window

        x1 = self.width if x1 is None else x1
        window = Window(x0, y0, x1 - x0, y1 - y0)
        masks = self._guarded(
            lambda: self.dataset.read_masks(self.indexes, window=window), f"the mask of rows {y0}-{y1}"
        )
        valid = np.any(masks > 0, axis=0)  # a nodata value marks a pixel when every band holds it
        if self.dataset.dtypes[0].startswith("float"):
            values = self._guarded(lambda: self.dataset.read(self.indexes, window=window), f"rows {y0}-{y1}")
            valid &= np.all(np.isfinite(values), axis=0)
        return valid

    def _decimated_shape(self):
        """(bands, rows, columns) of a whole-raster read of at most STATISTICS_SIDE pixels a side."""
        factor = max(1, -(-max(self.height, self.width) // STATISTICS_SIDE))
        return len(self.indexes), max(1, self.height // factor), max(1, self.width // factor)

    def _check_some_valid(self):
        shape = self._decimated_shape()
        masks = self._guarded(lambda: self.dataset.read_masks(self.indexes, out_shape=shape), "its no-data mask")
        if not np.any(masks > 0, axis=0).any():
            raise SceneReadError(f"{self.path} holds no data: every pixel is no-data (its nodata value, alpha band or "
                                 f"mask). Nothing to predict. {self.hint}")  # fmt: skip

    def close(self):
        self.dataset.close()


# GDAL's network file systems: a VRT may name sources on them
REMOTE_PREFIXES = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "/vsiwebhdfs",
                   "/vsihdfs", "http://", "https://", "ftp://")  # fmt: skip
GDAL_CACHE_MB = 32  # GDAL's block cache (its default is 5% of the RAM); whole blocks are written anyway
# a network source that stops answering is abandoned after these many seconds (then named and skipped like any
# unreadable scene); the same GDAL options set in the environment take precedence
HTTP_OPTIONS = {"GDAL_HTTP_CONNECTTIMEOUT": "15", "GDAL_HTTP_TIMEOUT": "60", "GDAL_HTTP_MAX_RETRY": "2",
                "GDAL_HTTP_RETRY_DELAY": "1"}  # fmt: skip


class StallBudget:
    """GDAL_HTTP_TIMEOUT seconds without progress, for a whole scene: each network read is given what is left of
    it since the last read that succeeded (split between GDAL's retries), so a server that stops answering costs
    the scene about that long, not that long per request and retry."""

    def __init__(self):
        options = gdal_options()
        self.seconds = max(1.0, float(options["GDAL_HTTP_TIMEOUT"]))
        self.attempts = 1 + max(0, int(options["GDAL_HTTP_MAX_RETRY"]))
        self.progress = time.monotonic()

    def left(self):
        return self.seconds - (time.monotonic() - self.progress)

    def spent(self):
        return self.left() <= 1.0

    @contextlib.contextmanager
    def env(self, path, where):
        import rasterio

        left = self.left()
        if left <= 1.0:
            raise SceneReadError(self.message(path, where, [], ""))
        each = max(1, int(left / self.attempts))
        with rasterio.Env(GDAL_HTTP_TIMEOUT=str(each), GDAL_HTTP_CONNECTTIMEOUT=str(min(each, 15))):
            yield
        self.progress = time.monotonic()  # an answer: the budget starts again

    def message(self, path, where, remote, hint):
        sources = f" ({', '.join(remote)})" if remote else ""
        return (
            f"Cannot read {where} of {path}: the server{sources} did not answer within {self.seconds:g} s "
            f"(GDAL_HTTP_TIMEOUT, for the whole scene). The file itself may be fine: try again later, raise "
            f"GDAL_HTTP_TIMEOUT, or copy the source(s) to local files. {hint}"
        ).rstrip()


def is_remote(name):
    return name.startswith(REMOTE_PREFIXES)


def gdal_options():
    """The GDAL configuration predict.py reads and writes under (``rasterio.Env(**gdal_options())``)."""
    return {"GDAL_CACHEMAX": GDAL_CACHE_MB, **{key: os.environ.get(key, value) for key, value in HTTP_OPTIONS.items()}}


def fill_nodata(pixels, valid):
    """``pixels`` (rows, columns, 3) with each pixel outside ``valid`` mirrored from the valid side: the pixel
    as far beyond its nearest valid pixel, inside the data, as it lies outside it (its nearest valid pixel's
    colour where that mirror falls outside the data too). A no-data area then reads like the image next to
    it, texture included, rather than as black ground, which changes what the model sees in the valid pixels
    nearby. A window without any valid pixel is mid-grey."""
    from scipy import ndimage

    if not valid.any():
        return np.full_like(pixels, 128)
    near_rows, near_columns = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    rows, columns = np.indices(valid.shape)
    mirror_rows = np.clip(2 * near_rows - rows, 0, valid.shape[0] - 1)
    mirror_columns = np.clip(2 * near_columns - columns, 0, valid.shape[1] - 1)
    inside = valid[mirror_rows, mirror_columns]
    return pixels[np.where(inside, mirror_rows, near_rows), np.where(inside, mirror_columns, near_columns)]


def _open(path):
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def georeference(dataset):
    """(crs, transform) of an open rasterio dataset, or (None, None) when it carries neither."""
    crs, transform = dataset.crs, dataset.transform
    return (None, None) if crs is None and transform.is_identity else (crs, transform)


def read_georeference(path):
    """(crs, transform) of an image file (a GeoTIFF's tags, or a world file beside a PNG/JPEG), or (None, None)."""
    from rasterio.errors import RasterioIOError

    try:
        with _open(path) as dataset:
            return georeference(dataset)
    except RasterioIOError:
        return None, None  # GDAL cannot open it: then it carries no georeferencing we could keep


def open_scene(path, *, bands=None, hint="", local_only=False, channels=3):
    """A window reader of one scene: GDAL rasters (TIFF, VRT) in windows, PNG/JPEG decoded whole.
    ``local_only``: refuse a raster (a VRT) that reads any of its sources over the network. ``channels``: the
    bands the model takes (more than 3 only from GDAL rasters)."""
    path = Path(path)
    if path.suffix.lower() in WINDOWED_SUFFIXES:
        return RasterSource(path, bands=bands, hint=hint, local_only=local_only, channels=channels)
    if channels != 3:
        raise SceneReadError(f"{path} is decoded as RGB, but the model takes {channels} bands: give it a GeoTIFF "
                             f"or VRT with those bands, or use a model of three. {hint}")  # fmt: skip
    if bands:
        raise SceneReadError(f"--bands applies to GeoTIFF/TIFF/VRT rasters; {path} is decoded as RGB. {hint}")
    try:
        image, valid = decode_image_and_alpha(path.read_bytes(), str(path), hint=hint)
    except ValueError as error:
        raise SceneReadError(str(error)) from error
    if valid is not None:
        if not valid.any():
            raise SceneReadError(
                f"{path} holds no data: every pixel is transparent (alpha 0). Nothing to predict. {hint}"
            )
        image = fill_nodata(image, valid)
    crs, transform = read_georeference(path)
    return ArraySource(path=path, image=image, crs=crs, transform=transform, valid_pixels=valid)
