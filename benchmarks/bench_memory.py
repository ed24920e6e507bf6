"""Peak memory of predict.py on a 2,000 x 2,000 and a 20,000 x 20,000 GeoTIFF, side by side.

Generates the two scenes (tiled, deflate GeoTIFFs in UTM with a procedural pattern of
buildings and streets, written strip by strip) and a random-init model of the zoo's
smallest kind, then runs ``predict.py`` on each in its own process under ``/usr/bin/time -v``
and prints the peak resident memory of both. The target: the two peaks differ by less
than 300 MB. The last column is what the whole-scene path this replaced needed at least:
the decoded scene (3 bytes a pixel) and its float32 probabilities (4 bytes) on top of the
small scene's peak.

    python -m benchmarks.bench_memory                        # about 10 minutes on 2 cores
    python -m benchmarks.bench_memory --sizes 2000,6000      # quicker
The scenes and the model are kept in --work (re-runs reuse them).
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TARGET_MB = 300
WHOLE_SCENE_BYTES_PER_PIXEL = 3 + 4  # uint8 RGB scene + float32 probabilities


def make_scene(path, size, *, rows=512):
    """A size x size RGB GeoTIFF: bright blocks (buildings) on a grey street grid, written in strips."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    partial = path.with_suffix(".partial.tif")
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32640")
    profile |= dict(transform=from_origin(500_000, 2_800_000, 0.5, 0.5), tiled=True, compress="deflate")
    x = np.arange(size)
    with rasterio.open(partial, "w", bigtiff="IF_SAFER", **profile) as target:
        for y0 in range(0, size, rows):
            y = np.arange(y0, min(y0 + rows, size))[:, None]
            block = ((x[None] // 40 + y // 40) % 3 == 0) & (x[None] % 40 > 8) & (y % 40 > 8)
            texture = ((x[None] * 7 + y * 13) % 23).astype("uint8")
            grey = np.where(block, 200, 90).astype("uint8") + texture
            target.write(np.stack([grey, grey - 10, grey - 20]), window=Window(0, y0, size, len(y)))
    partial.rename(path)
    return path


def peak_of(command):
    """(peak resident MB, wall seconds, stdout) of a command run under /usr/bin/time -v."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    kilobytes = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return kilobytes / 1024, seconds, done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000", help="scene sides in pixels, smallest first")
    parser.add_argument("--arch", default="fcn8")
    parser.add_argument("--encoder", default="mobilenetv2")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_memory"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    model_path = args.work / f"{args.arch}_{args.encoder}.keras"
    if not model_path.exists():
        import keras

        from models import create_model

        keras.utils.set_random_seed(0)
        create_model(args.arch, args.encoder, input_shape=(None, None, 3)).save(model_path)
    rows = []
    for size in sizes:
        scene = args.work / f"scene_{size}.tif"
        if not scene.exists():
            print(f"generating {scene} ...", flush=True)
            make_scene(scene, size)
        out = args.work / f"out_{size}"
        peak, seconds, stdout = peak_of([sys.executable, "predict.py", "--model", str(model_path), str(scene),
                                         "--out", str(out)])  # fmt: skip
        summary = next(line for line in stdout.splitlines() if line.startswith(f"scene_{size}:"))
        print(summary, flush=True)
        rows.append((size, peak, seconds))
    base = rows[0][1]
    print(f"\npredict.py, random-init {args.arch}/{args.encoder}, default settings; peak = max resident set size")
    print(
        "| scene | megapixels | peak RSS (MB) | wall (s) | MP/s | peak - smallest (MB) | whole-scene path needs (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, peak, seconds in rows:
        megapixels = size * size / 1e6
        whole = base + (size * size - sizes[0] ** 2) * WHOLE_SCENE_BYTES_PER_PIXEL / 2**20
        print(f"| {size} x {size} | {megapixels:.0f} | {peak:.0f} | {seconds:.0f} | {megapixels / seconds:.2f} | "
              f"{peak - base:+.0f} | >= {whole:.0f} |")  # fmt: skip
    growth = rows[-1][1] - base
    verdict = "met" if growth < TARGET_MB else "NOT met"
    print(f"\ntarget: the peaks differ by less than {TARGET_MB} MB -> {verdict} ({growth:+.0f} MB)")


if __name__ == "__main__":
    main()
