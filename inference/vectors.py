"""Footprint files: a GeoPackage written in batches as buildings complete, GeoJSON on request.

One feature per building with its area in pixels, in the CRS's units and in square metres
(geodesic, on the CRS's ellipsoid, when the CRS has one), and its mean probability. Files
are written by pyogrio (GDAL) under a temporary name and renamed when complete, so a failed
scene never leaves a file that looks finished.
"""

import os
import warnings
from pathlib import Path

import numpy as np

from common.files import staging_path

LAYER = "buildings"
# footprints of a scene without georeferencing are written in pixel coordinates, without a CRS, on purpose
warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
FIELDS = ("id", "area_pixels", "area_crs_units", "area_m2", "mean_probability")
BATCH = 1000  # features per write


def _geodesic_areas(crs):
    """A function polygons -> geodesic areas in m², or None when the CRS has no ellipsoid (or there is no CRS)."""
    if crs is None:
        return None
    import shapely
    from pyproj import CRS, Transformer

    crs = CRS.from_wkt(crs.to_wkt())
    geod = crs.get_geod()
    if geod is None or crs.geodetic_crs is None:
        return None
    to_degrees = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)

    def areas(polygons):
        def move(xy):  # every vertex of every polygon in one call
            return np.column_stack(to_degrees.transform(xy[:, 0], xy[:, 1]))

        degrees = shapely.transform(np.asarray(polygons, dtype=object), move)
        return [abs(geod.geometry_area_perimeter(polygon)[0]) for polygon in degrees]

    return areas


def check_spatial_index(path):
    """Warn when GDAL wrote the GeoPackage without its spatial index (TensorFlow loaded before pyogrio)."""
    import pyogrio

    if not pyogrio.read_info(str(path), layer=LAYER)["capabilities"]["fast_spatial_filter"]:
        warnings.warn(
            f"{path} has no spatial index: TensorFlow was imported before pyogrio, so GDAL used TensorFlow's "
            "SQLite, which lacks R*Tree (see inference/__init__.py). The footprints are complete; to index them, "
            "import inference (or pyogrio) before tensorflow, or run "
            f"ogrinfo {path} -sql \"SELECT CreateSpatialIndex('{LAYER}', 'geom')\".",
            stacklevel=3,
        )


class FootprintWriter:
    """Append buildings (dicts of ``inference.footprints``) to a GeoPackage layer, then close.

    ``geojson``: also write the same features to this path at ``close``.
    """

    def __init__(self, path, *, crs, geojson=None):
        self.path, self.geojson = Path(path), geojson and Path(geojson)
        self.partial = staging_path(self.path)
        self.crs_wkt = crs.to_wkt() if crs is not None else None
        self.area_m2 = _geodesic_areas(crs)
        self.pending, self.count = [], 0
        if self.partial.exists():
            self.partial.unlink()

    def add(self, buildings):
        self.pending += buildings
        if len(self.pending) >= BATCH:
            self._flush()

    def _flush(self, *, final=False):
        import shapely
        from pyogrio.raw import write

        if not self.pending and not (final and self.count == 0):
            return
        polygons = [b["polygon"] for b in self.pending]
        ids = np.arange(self.count, self.count + len(polygons), dtype="int64")
        m2 = self.area_m2(polygons) if self.area_m2 and polygons else [np.nan] * len(polygons)
        columns = [
            ids,
            np.asarray([b["pixels"] for b in self.pending], dtype="int64"),
            np.asarray([p.area for p in polygons], dtype="float64"),
            np.asarray(m2, dtype="float64"),
            np.asarray([b["mean_probability"] for b in self.pending], dtype="float64"),
        ]
        write(
            str(self.partial),
            geometry=shapely.to_wkb(np.asarray(polygons, dtype=object)) if polygons else np.empty(0, dtype=object),
            field_data=columns,
            fields=list(FIELDS),
            layer=LAYER,
            driver="GPKG",
            geometry_type="Polygon",
            crs=self.crs_wkt,
            append=self.count > 0,
        )
        self.count += len(polygons)
        self.pending = []

    def close(self):
        """Write what is left, rename to the final name; returns the paths written."""
        self._flush(final=True)
        os.replace(self.partial, self.path)
        check_spatial_index(self.path)
        written = [self.path]
        if self.geojson:
            from pyogrio.raw import read, write

            meta, _, geometry, field_data = read(str(self.path), layer=LAYER)
            partial = staging_path(self.geojson)
            write(
                str(partial),
                geometry=geometry,
                field_data=field_data,
                fields=meta["fields"],
                driver="GeoJSON",
                geometry_type="Polygon",
                crs=self.crs_wkt,
                layer=LAYER,
            )
            os.replace(partial, self.geojson)
            written.append(self.geojson)
        return written

    def abort(self):
        if self.partial.exists():
            self.partial.unlink()
