"""What separating buildings costs in predict.py: the same model and scene with --separate none, auto, shape.

``auto`` separates with the model's separation channels (``train.py --targets
building,border,contact``); ``shape`` splits any model's patches by their shape. Every mode goes
through predict.py's whole streaming path (GeoTIFF in, COGs and GeoPackage out), interleaved, in
float32; the table gives the median wall time, MP/s and the buildings found.

    S=../shared/data/buildings_sample/building_data/test
    python -m benchmarks.bench_separation --model runs/RUN --scene $S/src/dubai_image_part_007t8.tiff --labels $S/label
    python -m benchmarks.bench_separation --modes none,shape --model runs/RUN ...   # a model without the channels
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(model, scene, separate, labels):
    """(wall seconds, stdout's scene line, metrics.json or None) of one predict.py run."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "predict.py", "--model", str(model), str(scene), "--out", out]
        command += ["--separate", separate, "--precision", "float32"] + (["--labels", str(labels)] if labels else [])
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"predict.py failed:\n{done.stderr[-2000:]}")
        line = next(line for line in done.stdout.splitlines() if line.startswith(Path(scene).stem))
        metrics = Path(out) / "metrics.json"
        return seconds, line, json.loads(metrics.read_text()) if metrics.exists() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run (trained with separation targets, for auto)")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--labels", help="the folder of the scene's label, to count matched buildings too")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="none,auto", help="--separate modes compared, e.g. none,auto,shape")
    args = parser.parse_args()
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or set(modes) - {"none", "auto", "always", "shape"}:
        raise SystemExit(f"--modes {args.modes!r}: comma-separated, of none, auto, always, shape")
    from inference.tiling import speed_flags

    flags = speed_flags()
    print(f"{Path(args.scene).name}, {args.repeats} interleaved runs each; {os.cpu_count()} cores, flags {flags}")
    results = {mode: [] for mode in modes}
    for repeat in range(args.repeats):
        for mode in modes if repeat % 2 == 0 else modes[::-1]:
            results[mode].append(run(args.model, args.scene, mode, args.labels))
    print("| --separate | wall s (median) | scene line | building F1 |")
    print("|---|---|---|---|")
    for mode, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        metrics = runs[0][2]
        f1 = f"{metrics['overall']['building_f1']:.3f}" if metrics else "n/a"
        print(f"| {mode} | {seconds:.1f} | {runs[0][1]} | {f1} |")


if __name__ == "__main__":
    main()
