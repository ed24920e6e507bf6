"""The README's picture: a scene with the footprints predict.py traced on it, one outline per building.

    python predict.py --model runs/RUN scene.tif --out out
    python -m experiments.figure scene.tif out/scene.gpkg --out docs/footprints.jpg --width 900

Outlines are drawn in the scene's pixel grid (footprints of a georeferenced scene are mapped back through its
transform); ``--window x0,y0,x1,y1`` crops the scene first (pixels).
"""

import argparse
from pathlib import Path

OUTLINE = (255, 60, 40)


def footprint_rings(footprints, transform=None):
    """Every exterior and interior ring of the polygons in ``footprints`` (a GeoPackage / GeoJSON), as lists of
    (column, row) pixel coordinates; ``transform``: the scene's affine transform (None: coordinates are pixels)."""
    import pyogrio
    import shapely

    _, _, wkb, _ = pyogrio.raw.read(footprints)
    rings = []
    for polygon in shapely.get_parts(shapely.from_wkb(wkb)):
        for ring in [polygon.exterior, *polygon.interiors]:
            points = list(ring.coords)
            if transform is not None:
                inverse = ~transform
                points = [inverse * point[:2] for point in points]
            rings.append(points)
    return rings


def draw_footprints(scene, footprints, out, *, width=900, window=None):
    """Write ``out`` (JPEG or PNG): ``scene``'s RGB (cropped to ``window``) with the outlines of ``footprints``,
    scaled to ``width`` pixels across. Returns the number of outlines drawn."""
    import numpy as np
    import rasterio
    from PIL import Image, ImageDraw

    with rasterio.open(scene) as source:
        image = np.moveaxis(source.read((1, 2, 3)), 0, -1)
        transform = None if source.crs is None else source.transform
    x0, y0, x1, y1 = window or (0, 0, image.shape[1], image.shape[0])
    picture = Image.fromarray(image[y0:y1, x0:x1].astype("uint8"))
    scale = width / picture.width
    picture = picture.resize((width, round(picture.height * scale)), Image.LANCZOS)
    draw = ImageDraw.Draw(picture)
    rings = footprint_rings(footprints, transform)
    for ring in rings:
        draw.line([((x - x0) * scale, (y - y0) * scale) for x, y in ring], fill=OUTLINE, width=2)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    picture.save(out, quality=85)
    return len(rings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scene", type=Path)
    parser.add_argument("footprints", type=Path, help="predict.py's GeoPackage of the scene")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--window", default="", help="x0,y0,x1,y1: the part of the scene to show (pixels)")
    args = parser.parse_args(argv)
    window = tuple(int(v) for v in args.window.split(",")) if args.window else None
    count = draw_footprints(args.scene, args.footprints, args.out, width=args.width, window=window)
    print(f"{args.out}: {count} outlines")


if __name__ == "__main__":
    main()
