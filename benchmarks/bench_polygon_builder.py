"""The polygons config's scene reader on a large scene: time and peak memory beside burning the whole scene at once.

Writes a synthetic SIDE x SIDE RGB GeoTIFF (tiled, DEFLATE; 0.5 m pixels in UTM 36N) and a GeoPackage of
POLYGONS building squares over it (6 to 20 pixels a side, some touching), then, each in a fresh process:

- ours: ``data.buildings.polygon_sources.scene_examples`` over every window (512 pixels): the scene read window
  by window, each window's polygons found through the spatial index and burnt as building ids;
- the reference: what a script without windows does, the whole scene read and all its polygons burnt at once
  (``rasterio.features.rasterize`` into one uint32 id raster), then cut into the same windows.

Peak memory is each process's maximum resident set (ru_maxrss), so GDAL's and GEOS's allocations count.

    python -m benchmarks.bench_polygon_builder                       # 10,000 x 10,000 pixels, 50,000 polygons
    python -m benchmarks.bench_polygon_builder --side 4000 --polygons 8000
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CRS, LEFT, TOP, PIXEL = "EPSG:32636", 452_000.0, 35_000.0, 0.5


def make_scene(folder, side, count, seed=0):
    """The scene and its polygons (squares in a jittered grid, a third of them touching a neighbour)."""
    import rasterio
    import shapely
    from pyogrio.raw import write
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    with rasterio.open(folder / "scene.tif", "w", driver="GTiff", width=side, height=side, count=3, dtype="uint8",
                       crs=CRS, transform=from_origin(LEFT, TOP, PIXEL, PIXEL), tiled=True, blockxsize=512,
                       blockysize=512, compress="deflate") as scene:  # fmt: skip
        for top in range(0, side, 512):
            rows = min(512, side - top)
            block = rng.integers(90, 110, (3, rows, side), dtype=np.uint8)
            scene.write(block, window=rasterio.windows.Window(0, top, side, rows))
    per_row = int(np.ceil(np.sqrt(count)))
    cell = side / per_row
    squares = []
    for index in range(count):
        row, column = divmod(index, per_row)
        size = rng.uniform(6, min(20, cell * 0.9))
        left = column * cell + (0 if index % 3 == 0 else rng.uniform(0, cell - size))
        top = row * cell + rng.uniform(0, cell - size)
        if index % 3 == 0 and column > 0:  # touching the square of the previous cell's right edge
            left = column * cell
        squares.append(shapely.box(LEFT + left * PIXEL, TOP - (top + size) * PIXEL, LEFT + (left + size) * PIXEL,
                                   TOP - top * PIXEL))  # fmt: skip
    write(str(folder / "roofs.gpkg"), geometry=shapely.to_wkb(np.array(squares, dtype=object)), field_data=[],
          fields=[], geometry_type="Polygon", crs=CRS, driver="GPKG")  # fmt: skip


def ours(folder):
    from data.buildings.polygon_sources import scene_examples

    windows = pixels = 0
    ids = set()
    for _, image, _, window_ids in scene_examples(Path(folder)):
        windows += 1
        pixels += image.shape[0] * image.shape[1]
        ids.update(np.unique(window_ids).tolist())
    return {"windows": windows, "pixels": pixels, "ids": len(ids - {0})}


def reference(folder):
    import rasterio
    import shapely
    from pyogrio.raw import read
    from rasterio.features import rasterize

    geometries = shapely.from_wkb(read(str(Path(folder) / "roofs.gpkg"))[2])
    with rasterio.open(Path(folder) / "scene.tif") as scene:
        image = scene.read()
        burnt = rasterize(((g, i + 1) for i, g in enumerate(geometries)), out_shape=(scene.height, scene.width),
                          transform=scene.transform, dtype="uint32")  # fmt: skip
    windows = pixels = 0
    ids = set()
    for top in range(0, burnt.shape[0], 512):
        for left in range(0, burnt.shape[1], 512):
            window = burnt[top : top + 512, left : left + 512]
            windows += 1
            pixels += window.size
            ids.update(np.unique(window).tolist())
    del image
    return {"windows": windows, "pixels": pixels, "ids": len(ids - {0})}


def measure(kind, folder):
    """Run one kind in this process and print its JSON line (called in a fresh process per kind). Both import
    the same modules first, so the time and the memory above that start compare the readers alone."""
    import pyogrio  # noqa: F401
    import rasterio.features  # noqa: F401
    import shapely  # noqa: F401

    import data.buildings.polygon_sources  # noqa: F401  (TensorFlow comes with it)

    start_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    found = {"ours": ours, "reference": reference}[kind](folder)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "seconds": round(seconds, 1), "peak_mb": round(peak_mb),
                      "above_imports_mb": round(peak_mb - start_mb), **found}))  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=10_000)
    parser.add_argument("--polygons", type=int, default=50_000)
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return measure(*args.measure)
    from benchmarks.bench_recipe_time import cpu_flags

    with tempfile.TemporaryDirectory() as folder:
        made = time.perf_counter()
        make_scene(Path(folder), args.side, args.polygons)
        print(f"scene {args.side} x {args.side}, {args.polygons} polygons, made in {time.perf_counter() - made:.0f} s; "
              f"CPU flags: {cpu_flags()}")  # fmt: skip
        rows = []
        for kind in ("ours", "reference"):
            done = subprocess.run([sys.executable, "-m", "benchmarks.bench_polygon_builder", "--measure", kind, folder],
                                  cwd=ROOT, capture_output=True, text=True)  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"{kind} failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| reader | seconds | peak memory (MB) | of it above the imports (MB) | windows | pixels | building ids |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['kind']} | {row['seconds']} | {row['peak_mb']} | {row['above_imports_mb']} | {row['windows']} "
            f"| {row['pixels']:,} | {row['ids']} |"
        )


if __name__ == "__main__":
    main()
