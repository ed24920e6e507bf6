"""Building polygons as per-window building ids: the labels mappers have (OSM, GIS layers, SpaceNet GeoJSON).

A vector file (GeoJSON, GeoPackage, Shapefile, FlatGeobuf; any CRS) is read once with pyogrio, its
geometries repaired where GEOS can (``shapely.make_valid``) and named where it cannot, reprojected
onto a scene's CRS (pyproj) and put in a spatial index (shapely's STRtree). A window of the scene
then gets the polygons that touch it burnt in by rasterio as **building ids**: each polygon its own id,
so touching buildings stay apart, holes stay empty and a MultiPolygon is one building. Pixels are
taken by their centres (GDAL's rule), so a polygon crossing a window edge gives the same pixels on
both sides as one burn of the whole scene.

Web-map chips (the fAIr / RAMP layout: ``OAM-<x>-<y>-<z>.png`` beside ``labels.geojson``) carry no
georeferencing: their bounds come from the name, the XYZ tile of the Web Mercator tiling (mercantile).
"""

import functools
import re
from pathlib import Path

import numpy as np

TILE_NAME = re.compile(r"(?P<x>\d+)-(?P<y>\d+)-(?P<z>\d+)$")  # the end of a chip's stem: ...-x-y-z
WEB_MERCATOR = "EPSG:3857"
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb")  # what GDAL reads as vector labels
LONLAT_CRS_NAMES = ("urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326",
                    "urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:EPSG:4326")  # fmt: skip


def tile_of(path):
    """(x, y, z) of a chip named by its XYZ tile (``OAM-1238424-1046544-21.png``, ``19-312-300.tif``), or a
    ValueError naming the file and the rule."""
    match = TILE_NAME.search(Path(path).stem)
    if match:
        x, y, z = (int(match[key]) for key in "xyz")
        if z <= 30 and x < 2**z and y < 2**z:
            return x, y, z
    raise ValueError(
        f"{path}: its name is no web-map tile. A chip is named by its XYZ tile, <anything>-<x>-<y>-<z>.<ext> "
        "(e.g. OAM-1238424-1046544-21.png), with x and y below 2**z; rename it or leave it out."
    )


def tile_transform(x, y, z, width, height):
    """The affine transform of a ``width`` x ``height`` chip of tile (x, y, z) in Web Mercator metres."""
    import mercantile
    from rasterio.transform import from_bounds

    bounds = mercantile.xy_bounds(x, y, z)
    return from_bounds(bounds.left, bounds.bottom, bounds.right, bounds.top, width, height)


def check_geojson_crs(path):
    """Refuse a GeoJSON whose ``crs`` member names anything but lon/lat (RFC 7946 allows only WGS 84 lon/lat;
    old files that say otherwise would be placed wrong)."""
    import json

    if Path(path).suffix.lower() not in (".geojson", ".json"):
        return
    try:
        member = json.loads(Path(path).read_text()).get("crs")
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: not a readable GeoJSON ({type(error).__name__}: {error}).") from None
    name = ((member or {}).get("properties") or {}).get("name") if isinstance(member, dict) else None
    if member is not None and name not in LONLAT_CRS_NAMES:
        raise ValueError(
            f"{path}: its 'crs' member says {name or member!r}, but GeoJSON holds lon/lat (RFC 7946). Write it "
            "again in EPSG:4326 (e.g. ogr2ogr -t_srs EPSG:4326), or use a GeoPackage, which keeps any CRS."
        )


def read_polygons(path):
    """(shapely polygons and multipolygons, their CRS) of a vector file; invalid geometries repaired where
    GEOS can (``make_valid``, keeping the areal part), a ValueError naming the feature where it cannot.
    Read once per file and version (its size and modification time) in a process."""
    stat = Path(path).stat() if Path(path).is_file() else None
    return _read_polygons(str(path), stat and (stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _read_polygons(path, version):
    import shapely
    from pyogrio.errors import DataSourceError
    from pyogrio.raw import read

    check_geojson_crs(path)
    try:
        meta, _, wkb, _ = read(str(path))
    except (DataSourceError, OSError) as error:
        raise ValueError(f"{path}: not a vector file GDAL can read ({error}).") from None
    geometries = shapely.from_wkb(wkb, on_invalid="ignore") if wkb is not None else np.array([])
    kept = []
    for index, geometry in enumerate(geometries):
        if geometry is None or geometry.is_empty:
            raise ValueError(f"{path}: feature {index} has no readable geometry. Remove or redraw it.")
        if not geometry.is_valid:
            geometry = shapely.make_valid(geometry)
        areal = _areal_part(geometry)
        if areal is None:
            raise ValueError(
                f"{path}: feature {index} ({geometry.geom_type}) is not a polygon, and GEOS finds no area in it. "
                "Building labels are polygons; remove or redraw it."
            )
        kept.append(areal)
    return np.array(kept, dtype=object), meta["crs"] or "EPSG:4326"


def _areal_part(geometry):
    """The polygon or multipolygon in ``geometry`` (a collection that make_valid returned), or None."""
    import shapely

    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    if geometry.geom_type == "GeometryCollection":
        parts = [g for g in geometry.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        return shapely.union_all(parts) if parts else None
    return None


def reproject(geometries, source_crs, target_crs):
    """``geometries`` moved from ``source_crs`` to ``target_crs`` (lon/lat kept in x, y order)."""
    import shapely
    from pyproj import CRS, Transformer

    if CRS.from_user_input(source_crs) == CRS.from_user_input(target_crs):
        return geometries
    transform = Transformer.from_crs(source_crs, target_crs, always_xy=True).transform
    return shapely.transform(geometries, lambda xy: np.column_stack(transform(xy[:, 0], xy[:, 1])))


class PolygonIndex:
    """Polygons of one CRS in a spatial index; ``burn`` gives any window's building ids.

    Ids are 1 + the polygon's position in ``geometries``, the same in every window, so a building cut by
    a window edge keeps its id on both sides.
    """

    def __init__(self, geometries):
        import shapely

        self.geometries = np.asarray(geometries, dtype=object)
        self.tree = shapely.STRtree(self.geometries)

    def burn(self, transform, height, width):
        """(height, width) uint32 building ids of the window whose affine ``transform`` is given (0: none)."""
        import shapely
        from rasterio.features import rasterize
        from rasterio.transform import array_bounds

        west, south, east, north = array_bounds(height, width, transform)
        hits = np.sort(self.tree.query(shapely.box(west, south, east, north)))
        if not len(hits):
            return np.zeros((height, width), np.uint32)
        shapes = ((self.geometries[i], int(i) + 1) for i in hits)
        return rasterize(shapes, out_shape=(height, width), transform=transform, fill=0, dtype="uint32")


def burn_labels(path, crs, transform, height, width):
    """(height, width) building ids of the polygons of vector file ``path`` on a scene's grid (its ``crs`` and
    affine ``transform``): each polygon its own id, reprojected onto the scene."""
    if crs is None or transform is None:
        raise ValueError(f"building polygons ({path}) need a georeferenced scene to be laid on; this one has no CRS.")
    geometries, source_crs = read_polygons(path)
    return PolygonIndex(reproject(geometries, source_crs, crs)).burn(transform, height, width)
