"""predict.py on Apache Beam (DirectRunner, 2 worker processes) against the sequential predict.py, same scenes.

Generates --scenes georeferenced GeoTIFFs (bench_memory's procedural pattern, offset in UTM so
they tile an area) and a random-init model, runs the sequential predict.py and the Beam
pipeline on them, each under ``/usr/bin/time -v``, and prints wall time, the ratio, the peak
resident memory (the largest process: the main one sequentially, a worker under Beam), MP/s and
the cost per megapixel, then checks that the outputs agree (masks bit-equal, probabilities
within 1e-6, the same footprints).

    python -m benchmarks.bench_beam                          # 8 scenes of 2000 x 2000
    python -m benchmarks.bench_beam --scenes 4 --size 1000   # quicker
"""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.bench_memory import make_scene, peak_of  # noqa: E402


def compare_outputs(first, second, stems):
    """(masks equal, max |Δ probability|, footprint counts equal) over the scenes."""
    import numpy as np
    import rasterio
    from pyogrio.raw import read

    masks_equal, worst, same_footprints = True, 0.0, True
    for stem in stems:
        bands = {}
        for kind in ("mask", "prob"):
            pair = []
            for folder in (first, second):
                with rasterio.open(folder / f"{stem}_{kind}.tif") as src:
                    pair.append(src.read(1))
            bands[kind] = pair
        masks_equal &= bool(np.array_equal(*bands["mask"]))
        worst = max(worst, float(np.abs(bands["prob"][0] - bands["prob"][1]).max()))
        same_footprints &= len(read(str(first / f"{stem}.gpkg"))[2]) == len(read(str(second / f"{stem}.gpkg"))[2])
    return masks_equal, worst, same_footprints


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--arch", default="fcn8")
    parser.add_argument("--encoder", default="mobilenetv2")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_beam"))
    args = parser.parse_args()
    scenes = args.work / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    model_path = args.work / f"{args.arch}_{args.encoder}.keras"
    if not model_path.exists():
        import keras

        from models import create_model

        keras.utils.set_random_seed(0)
        create_model(args.arch, args.encoder, input_shape=(None, None, 3)).save(model_path)
    stems = [f"scene_{index:02d}" for index in range(args.scenes)]
    for stem in stems:
        if not (scenes / f"{stem}.tif").exists():
            make_scene(scenes / f"{stem}.tif", args.size)
    common = [sys.executable, "predict.py", "--model", str(model_path), str(scenes), "--precision", "float32"]
    runs = {
        "sequential predict.py": common + ["--out", str(args.work / "sequential")],
        f"Beam DirectRunner, {args.workers} processes": common
        + [
            "--out",
            str(args.work / "beam"),
            "--runner",
            "DirectRunner",
            "--direct_num_workers",
            str(args.workers),
            "--direct_running_mode",
            "multi_processing",
        ],  # fmt: skip
    }
    for folder in ("sequential", "beam"):  # a fresh start: Beam would skip finished scenes
        for path in (args.work / folder).glob("*") if (args.work / folder).exists() else []:
            path.unlink()
    megapixels = args.scenes * args.size**2 / 1e6
    from inference.tiling import speed_flags

    flags = speed_flags()
    print(f"{args.scenes} scenes of {args.size} x {args.size} ({megapixels:.0f} MP), random-init {args.arch}/"
          f"{args.encoder}, float32; {os.cpu_count()} cores, CPU flags: {flags}")  # fmt: skip
    results = {name: peak_of(command) for name, command in runs.items()}
    base = results["sequential predict.py"][1]
    print("| run | wall (s) | vs sequential | peak RSS of a process (MB) | MP/s | CPU-seconds per MP |")
    print("|---|---|---|---|---|---|")
    for name, (peak, seconds, _) in results.items():
        print(f"| {name} | {seconds:.0f} | {base / seconds:.2f}x | {peak:.0f} | {megapixels / seconds:.2f} | "
              f"{seconds * os.cpu_count() / megapixels:.2f} |")  # fmt: skip
    masks, worst, footprints = compare_outputs(args.work / "sequential", args.work / "beam", stems)
    print(f"\noutputs: masks bit-equal {masks}, max |Δ probability| {worst:.1e}, same footprint counts {footprints}")


if __name__ == "__main__":
    main()
