"""Write a scene's prediction: PNG mask / probabilities / overlay, GeoTIFF and GeoJSON.

Raster writing and polygon tracing use rasterio (GDAL) and shapely, so the outputs open in
any GIS with the input's coordinate system.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from inference import defaults

OVERLAY_COLOUR = np.array([255, 40, 40], dtype="float32")


def overlay(image, mask, *, alpha=0.45):
    """The scene with predicted buildings tinted red."""
    out = image.astype("float32")
    out[mask] = (1 - alpha) * out[mask] + alpha * OVERLAY_COLOUR
    return out.round().astype("uint8")


def write_geotiff(path, array, crs, transform):
    """One-band GeoTIFF (uint8 or float32) with the given georeferencing, deflate-compressed."""
    import rasterio

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype=array.dtype.name,
        crs=crs,
        transform=transform,
        compress="deflate",
    ) as target:
        target.write(array, 1)


def mask_polygons(mask, transform, *, min_area=defaults.MIN_AREA):
    """Building polygons (shapely) in the transform's coordinates, each at least ``min_area`` pixels.

    Pixels are traced along their edges (rasterio.features.shapes) with 4-connectivity, the
    buildings the building-level scores count, so the polygons cover exactly the mask's
    pixels and holes (courtyards) are kept. 8-connected tracing joined pixels that touch at
    a corner into self-touching rings, which GEOS rejects; every polygon returned here is
    valid (checked, and repaired with shapely.make_valid if GDAL ever hands back one that is not).
    """
    from rasterio import features
    from shapely import make_valid
    from shapely.geometry import shape

    pixel_area = abs(transform.determinant)
    polygons = []
    for geometry, value in features.shapes(mask.astype("uint8"), mask=mask, connectivity=4, transform=transform):
        polygon = shape(geometry)
        if value != 1 or polygon.area / pixel_area < min_area:
            continue
        parts = [polygon] if polygon.is_valid else getattr(make_valid(polygon), "geoms", [make_valid(polygon)])
        polygons += [part for part in parts if part.geom_type == "Polygon" and not part.is_empty]
    return polygons


def geojson(polygons, transform, crs):
    """A GeoJSON FeatureCollection; a CRS other than WGS84 is named in a 'crs' member."""
    from shapely.geometry import mapping

    pixel_area = abs(transform.determinant)
    features = [
        {
            "type": "Feature",
            "id": i,
            "geometry": mapping(p),
            "properties": {"id": i, "area_pixels": int(round(p.area / pixel_area)), "area_crs_units": p.area},
        }
        for i, p in enumerate(polygons)
    ]
    collection = {"type": "FeatureCollection", "features": features}
    if crs is not None and crs.to_epsg() != 4326:
        name = f"urn:ogc:def:crs:EPSG::{crs.to_epsg()}" if crs.to_epsg() else crs.to_wkt()
        collection["crs"] = {"type": "name", "properties": {"name": name}}
    return collection


def write_outputs(scene, probabilities, out_dir, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA):
    """Write every output of one scene; returns {kind: path}."""
    out_dir = Path(out_dir)
    mask = probabilities >= threshold
    mask_u8 = mask.astype("uint8") * 255
    written = {
        "mask": out_dir / f"{scene.stem}_mask.png",
        "overlay": out_dir / f"{scene.stem}_overlay.png",
        "probabilities": out_dir / f"{scene.stem}_prob.png",
    }
    Image.fromarray(mask_u8).save(written["mask"])
    Image.fromarray(overlay(scene.image, mask)).save(written["overlay"])
    Image.fromarray((probabilities * 255).round().astype("uint8")).save(written["probabilities"])
    if scene.georeferenced:
        written["probabilities_geotiff"] = out_dir / f"{scene.stem}_prob.tif"
        write_geotiff(written["probabilities_geotiff"], probabilities.astype("float32"), scene.crs, scene.transform)
        written["mask_geotiff"] = out_dir / f"{scene.stem}_mask.tif"
        write_geotiff(written["mask_geotiff"], mask_u8, scene.crs, scene.transform)
        written["geojson"] = out_dir / f"{scene.stem}.geojson"
        collection = geojson(mask_polygons(mask, scene.transform, min_area=min_area), scene.transform, scene.crs)
        written["geojson"].write_text(json.dumps(collection))
    return written
