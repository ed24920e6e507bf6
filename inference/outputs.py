"""Write a scene's prediction as its strips finish: Cloud-Optimized GeoTIFFs, footprints, PNGs.

- ``<stem>_prob.tif`` (float32) and ``<stem>_mask.tif`` (0/255): rows are written as they
  finish into a tiled, compressed GeoTIFF, which GDAL then copies block by block into a
  Cloud-Optimized GeoTIFF with overviews (QGIS opens it at any zoom without reading it all).
  They carry the input's CRS and transform. For georeferenced scenes and large ones.
- ``<stem>.gpkg``: one polygon per building (``inference.footprints``, ``inference.vectors``),
  for every scene (in pixel coordinates, without a CRS, when the scene has no georeferencing);
  ``<stem>.geojson`` too for small georeferenced scenes or with --geojson. With a model that
  has separation channels the buildings are separated (``inference.separation``) first;
  ``<stem>_instances.tif`` (uint32 building ids, with --instances) carries that separation.
- ``<stem>_mask.png``, ``_prob.png``, ``_overlay.jpg``: small scenes only (these are whole-image
  formats), so what is held in memory stays bounded for large ones.
GeoTIFFs and footprints are written under a temporary name and renamed when complete; the pictures
are written last.
"""

import os
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from common.files import staging_path
from inference import defaults
from inference.footprints import StripTracer
from inference.vectors import FootprintWriter

# small scenes' pictures: file name part -> (kind, file format). The overlay is a tinted photograph, so
# JPEG: on the 3 MP sample scene 0.02 s and 1.2 MB, against 0.32 s and 5.9 MB as a level-1 PNG
PICTURES = {"mask": ("mask", "png"), "prob": ("probabilities", "png"), "overlay": ("overlay", "jpg")}
OVERLAY_COLOUR = np.array([255, 40, 40], dtype="float32")
BLOCK = 512  # tile size of the Cloud-Optimized GeoTIFFs
STAGING_ROWS = 128  # rows gathered before a write (the height of the staging file's tiles)
PNG_LEVEL = 1  # zlib level of the PNGs: level 6 (PIL's default) took longer than the model on a 3 MP scene
JPEG_QUALITY = 90
# DEFLATE settings of the final COGs. float32 probabilities: the floating-point predictor at
# level 1 wrote the 3 MP sample scene's in 0.29 s and 12.2 MB, against 0.40 s and 14.8 MB with
# GDAL's defaults (level 6, no predictor); both are standard TIFF that every GDAL reader opens.
COG_DEFLATE = {"float32": dict(predictor=3, level=1), "uint8": {}, "uint32": dict(predictor=2)}


def overlay(image, mask, *, alpha=0.45):
    """The scene (its RGB bands) with predicted buildings tinted red."""
    image = image[..., :3]
    out = image.copy()
    out[mask] = ((1 - alpha) * image[mask] + alpha * OVERLAY_COLOUR).round().astype("uint8")
    return out


class GeoTiffRows:
    """A one-band raster written top to bottom in rows, finished as a Cloud-Optimized GeoTIFF.

    Rows are gathered into one row of the staging file's tiles (512 x 128) before they are
    written, so no compressed tile is ever rewritten; ``close`` copies the file into the COG layout with overviews
    (``resampling``: average for probabilities, nearest for masks).
    """

    def __init__(self, path, *, width, height, dtype, crs, transform, resampling, nodata=None, masked=False):
        import rasterio

        self.path, self.resampling, self.dtype = Path(path), resampling, np.dtype(dtype).name
        self.staging = staging_path(self.path.with_name(self.path.stem + "_rows.tif"))
        self.buffer, self.filled, self.y = None, 0, 0  # one block of rows, filled before it is written
        self.masked, self.valid = masked, None  # masked: an internal mask marks the no-data pixels
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):  # the mask inside the file, never a .msk beside it
            self.dataset = self._create(width, height, dtype, crs, transform, nodata)

    def _create(self, width, height, dtype, crs, transform, nodata):
        import rasterio

        return rasterio.open(
            self.staging,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype=dtype,
            crs=crs,
            transform=transform,
            tiled=True,
            blockxsize=BLOCK,
            blockysize=STAGING_ROWS,
            compress="zstd",  # a temporary file: ZSTD level 1 writes 6x faster than deflate, same size here
            zstd_level=1,
            bigtiff="IF_SAFER",
            nodata=nodata,
        )

    def write(self, rows, valid=None):
        """Append ``rows``; ``valid`` (bool, same shape; None: all valid) feeds the internal mask when ``masked``."""
        while len(rows):
            if self.buffer is None:
                self.buffer, self.filled = np.empty((STAGING_ROWS, rows.shape[1]), rows.dtype), 0
                self.valid = np.empty((STAGING_ROWS, rows.shape[1]), bool) if self.masked else None
            take = min(len(rows), STAGING_ROWS - self.filled)
            self.buffer[self.filled : self.filled + take] = rows[:take]
            if self.valid is not None:
                self.valid[self.filled : self.filled + take] = True if valid is None else valid[:take]
                valid = None if valid is None else valid[take:]
            self.filled, rows = self.filled + take, rows[take:]
            if self.filled == STAGING_ROWS:
                self._write_buffer()

    def _write_buffer(self):
        import rasterio
        from rasterio.windows import Window

        window = Window(0, self.y, self.buffer.shape[1], self.filled)
        self.dataset.write(self.buffer[: self.filled], 1, window=window)
        if self.valid is not None:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                self.dataset.write_mask(self.valid[: self.filled].astype("uint8") * 255, window=window)
        self.y, self.filled = self.y + self.filled, 0

    def close(self):
        from rasterio.shutil import copy

        if self.filled:
            self._write_buffer()
        self.buffer = None
        self.dataset.close()
        partial = self.partial = staging_path(self.path)
        copy(
            self.staging,
            partial,
            driver="COG",
            compress="DEFLATE",
            **COG_DEFLATE[self.dtype],
            num_threads="ALL_CPUS",  # the model is idle by now: 1.4x faster on 2 cores (a 13 MP float32 copy)
            blocksize=BLOCK,
            overview_resampling=self.resampling,
            resampling=self.resampling,
            bigtiff="IF_SAFER",
        )
        os.replace(partial, self.path)
        self.staging.unlink()
        return self.path

    def abort(self):
        self.dataset.close()
        for path in (self.staging, getattr(self, "partial", None)):
            if path is not None and path.exists():
                path.unlink()


class SceneWriter:
    """Everything predict.py writes for one scene, fed one strip of probabilities at a time.

    Args:
        source: the scene (``common.rasters``): size, CRS, transform, ``read`` for the overlay.
        out_dir: the output folder.
        threshold, min_area: as in predict.py.
        simplify, squared: footprint outlines (``inference.footprints.StripTracer``).
        geojson: also write GeoJSON footprints whatever the scene's size.
        keep_mask: hold the whole mask for scoring against a label (``mask`` after ``close``;
            ``instances`` too, the separated building ids, when ``separate``).
        separate: split touching buildings with the model's separation channels (strips then
            carry (rows, W, C) probabilities, the building channel first), or by the mask's shape.
        depth: split by the mask's shape, seeds this high (``inference.separation.split_by_shape``).
        instances: also write ``<stem>_instances.tif``, the separated building ids (with ``separate``).
    """

    def __init__(
        self,
        source,
        out_dir,
        *,
        threshold=defaults.THRESHOLD,
        min_area=defaults.MIN_AREA,
        simplify=0.0,
        squared=False,
        geojson=False,
        keep_mask=False,
        separate=False,
        depth=None,
        instances=False,
    ):
        from inference.separation import StripSeparator

        out_dir, stem = Path(out_dir), source.path.stem
        self.source, self.threshold, self.stem, self.out_dir = source, threshold, stem, out_dir
        georeferenced = source.transform is not None
        self.small = source.height * source.width <= defaults.SMALL_SCENE_PIXELS
        self.streams, self.footprints = {}, None
        self.probabilities = np.empty((source.height, source.width), "float32") if self.small else None
        self.mask = np.empty((source.height, source.width), bool) if keep_mask and not self.small else None
        self.tracer = StripTracer(source.transform, min_area=min_area, simplify=simplify, squared=squared)
        self.separator = StripSeparator(threshold=threshold, min_area=min_area, depth=depth) if separate else None
        self.instances = np.zeros((source.height, source.width), "int32") if keep_mask and separate else None
        self.buildings = 0
        # no-data pixels of the scene: NaN (the nodata value) in the probabilities, outside the mask's internal
        # mask (and 0) in the mask, never in a footprint; kept whole where the scene's mask is kept
        nodata = source.has_nodata
        self.valid = np.empty((source.height, source.width), bool) if nodata and (keep_mask or self.small) else None
        size = dict(width=source.width, height=source.height, crs=source.crs, transform=source.transform)
        if georeferenced or not self.small:
            self.streams = {
                "probabilities_geotiff": GeoTiffRows(out_dir / f"{stem}_prob.tif", dtype="float32",
                                                     resampling="average", nodata=np.nan if nodata else None, **size),
                "mask_geotiff": GeoTiffRows(out_dir / f"{stem}_mask.tif", dtype="uint8", resampling="nearest",
                                            masked=nodata, **size),
            }  # fmt: skip
        if instances and separate:
            self.streams["instances_geotiff"] = GeoTiffRows(
                out_dir / f"{stem}_instances.tif", dtype="uint32", resampling="nearest", **size
            )
        wants_geojson = geojson or (georeferenced and self.small)
        self.footprints = FootprintWriter(
            out_dir / f"{stem}.gpkg",
            crs=source.crs,
            geojson=out_dir / f"{stem}.geojson" if wants_geojson else None,
        )

    def add(self, y0, probabilities):
        valid = self.source.valid(y0, y0 + len(probabilities)) if self.source.has_nodata else None
        if valid is not None:  # no-data: no probability, never a building
            probabilities = np.where(valid if probabilities.ndim == 2 else valid[..., None], probabilities, np.nan)
            if self.valid is not None:
                self.valid[y0 : y0 + len(valid)] = valid
        building = probabilities if probabilities.ndim == 2 else probabilities[..., 0]
        mask = building >= self.threshold  # NaN: False
        if "probabilities_geotiff" in self.streams:
            self.streams["probabilities_geotiff"].write(building)
            self.streams["mask_geotiff"].write(mask.astype("uint8") * 255, valid)
        if self.probabilities is not None:
            self.probabilities[y0 : y0 + len(mask)] = building
        if self.mask is not None:
            self.mask[y0 : y0 + len(mask)] = mask
        if self.separator is None:
            self._buildings(self.tracer.add(y0, mask, building))
        else:
            self._separated(
                self.separator.add(y0, np.nan_to_num(probabilities) if valid is not None else probabilities)
            )

    def _separated(self, rows):
        for y, labels, building in rows:
            if "instances_geotiff" in self.streams:
                self.streams["instances_geotiff"].write(labels.astype("uint32"))
            if self.instances is not None:
                self.instances[y : y + len(labels)] = labels
            self._buildings(self.tracer.add(y, labels > 0, building, instances=labels))

    def _buildings(self, buildings):
        self.buildings += len(buildings)
        if self.footprints is not None:
            self.footprints.add(buildings)

    def close(self):
        """Finish every file; returns {kind: path}. ``mask`` then holds the whole mask if it was kept.

        The files are finished side by side in threads (GDAL, SQLite and zlib release Python's lock).
        """
        from concurrent.futures import ThreadPoolExecutor

        if self.separator is not None:
            self._separated(self.separator.finish())
        self._buildings(self.tracer.finish())
        tasks = {kind: stream.close for kind, stream in self.streams.items()}
        if self.footprints is not None:
            tasks["footprints"] = self.footprints.close
        if self.small:
            self.mask = self.probabilities >= self.threshold
            images = {
                "mask": lambda: self.mask.astype("uint8") * 255,
                "prob": lambda: (np.nan_to_num(self.probabilities) * 255).round().astype("uint8"),
                "overlay": lambda: overlay(self.source.read(0, self.source.height), self.mask),
            }
            for name, image in images.items():
                kind, suffix = PICTURES[name]
                tasks[kind] = partial(self._save_picture, self.out_dir / f"{self.stem}_{name}.{suffix}", image)
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {kind: pool.submit(task) for kind, task in tasks.items()}
            written = {kind: future.result() for kind, future in futures.items()}
        paths = written.pop("footprints", None)
        if paths:
            written["footprints"] = paths[0]
            if len(paths) > 1:
                written["geojson"] = paths[1]
        return written

    @staticmethod
    def _save_picture(path, image):
        staging = staging_path(path)  # never written through a file or link planted under the final name
        try:
            Image.fromarray(image()).save(
                staging,
                format="PNG" if path.suffix == ".png" else "JPEG",
                compress_level=PNG_LEVEL,
                quality=JPEG_QUALITY,
            )
            os.replace(staging, path)
        finally:
            staging.unlink(missing_ok=True)
        return path

    def abort(self):
        """Remove this scene's unfinished files (finished scenes' outputs are untouched)."""
        for stream in self.streams.values():
            stream.abort()
        if self.footprints is not None:
            self.footprints.abort()


def write_strips(writer, strips):
    """Hand ``(y0, logits)`` strips to ``writer`` as probabilities, in order; returns the writer.

    Each strip is written in a second thread while the model computes the next one (the
    model, GDAL and zlib release Python's lock), so writing overlaps prediction. At most two
    strips are held.
    """
    from concurrent.futures import ThreadPoolExecutor

    from inference.tiling import sigmoid

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for y, logits in strips:
            probabilities = sigmoid(logits)  # a copy: the strip is a view into the blending buffer
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.add, y, probabilities)
        if pending is not None:
            pending.result()
    return writer


def prepare_out_dir(out):
    """Create the output folder and prove it is writable before any work."""
    from common.files import make_writable_folder, remove_stale_staging

    try:
        folder = make_writable_folder(out, option="--out")
    except ValueError as error:
        raise SystemExit(f"predict.py: {error}") from None
    stale = remove_stale_staging(folder)  # what a killed predict.py left unfinished
    if stale:
        print(f"removed {len(stale)} unfinished file(s) a stopped predict.py left in {folder}")
    return folder
