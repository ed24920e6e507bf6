"""Where a run's time goes: train.py's default beside the plain baseline, interleaved, same machine, same fold.

Runs, in turn and ``--repeats`` times, the yardstick ``../shared/baselines/plain_unet.py`` (run from
there, never copied), train.py with its default recipe (ImageNet Lite1, scored with test-time
augmentation), the default with one time-costing part switched off at a time (test-time augmentation,
``--no-tta``; the shape split of the held-out buildings, ``--split none``), the default over the FPN
decoder (1.6x U-Net's GMACs), the default over ImageNet
Lite0 as it was before 2026-12-04 (threshold calibrated, no test-time augmentation), and the previous
default recipe (per-epoch validation, weight average, 8 crops per image). Each process is timed from
start to exit (imports, dataset, model, fit, final scoring). train.py's fit time is the sum of its epochs
(history.csv); the rest is setup plus the end of the run (calibration, scoring the held-out places,
saving). The baseline prints its own training seconds.

    python -m benchmarks.bench_recipe_time                        # fold 0, 6 x 35 steps at 128, 2 repeats
    python -m benchmarks.bench_recipe_time --steps 35 --repeats 1
    python -m benchmarks.bench_recipe_time --variants default,lite0  # the baseline and these two only
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from training.recipes import LITE0_CALIBRATED, PREVIOUS_PRETRAINED

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = SHARED / "data" / "buildings_sample"
BASELINE = SHARED / "baselines" / "plain_unet.py"
HOLDOUT = "dubai_t8,rio"  # fold 0 of --folds 4
VARIANTS = {  # key: (the table's row, train.py's options)
    "default": ("default", []),
    "nosplit": ("default without the shape split (--split none)", ["--split", "none"]),
    "notta": ("default without test-time augmentation (--no-tta)", ["--no-tta"]),
    "fpn": ("default over the FPN decoder (--arch fpn)", ["--arch", "fpn"]),
    "lite0": ("default before 2026-12-04 (Lite0, calibrated, no TTA)", LITE0_CALIBRATED),
    "previous": ("previous default (training.recipes.PREVIOUS_PRETRAINED)", PREVIOUS_PRETRAINED),
}


def cpu_flags():
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "n/a"


def timed(command):
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_recipe_time: {' '.join(map(str, command))} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def run_ours(options, folder, *, steps, data_dir):
    epochs = 6
    command = [sys.executable, "train.py", "--dataset", "buildings/kaggle", "--manual-dir", str(SAMPLE),
               "--data-dir", str(data_dir), "--holdout", HOLDOUT, "--epochs", str(epochs),
               "--steps-per-epoch", str(max(steps // epochs, 1)), "--warmup-steps", str(min(20, steps // 3)),
               "--tracker", "local", "--run-dir", str(folder), *options]  # fmt: skip
    wall = timed(command)
    with open(folder / "history.csv") as stream:
        fit = sum(float(row["epoch_seconds"]) for row in csv.DictReader(stream))
    results = json.loads((folder / "results.json").read_text())
    return wall, fit, results["heldout_iou"]


def run_baseline(folder, *, steps):
    out = folder / "baseline.json"
    wall = timed([sys.executable, str(BASELINE), "--sample", str(SAMPLE), "--holdout", HOLDOUT, "--size", "128",
                  "--steps", str(steps), "--json", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    return wall, report["train_seconds"], report["all"]["pixel_iou"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=210)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "buildings_sample_tfds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = parser.parse_args(argv)
    keys = [key for key in args.variants.split(",") if key]
    unknown = [key for key in keys if key not in VARIANTS]
    if unknown or not keys:
        parser.error(f"--variants {args.variants!r}: unknown {unknown or 'none given'}, choose {', '.join(VARIANTS)}")
    if not SAMPLE.is_dir() or not BASELINE.is_file():
        raise SystemExit(f"bench_recipe_time: needs {SAMPLE} and {BASELINE} (../shared beside the repository)")
    names = {"plain baseline (../shared/baselines)": None, **{VARIANTS[key][0]: VARIANTS[key][1] for key in keys}}
    times = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):  # interleaved: every variant once per round
            for index, name in enumerate(times):
                folder = Path(scratch) / f"r{repeat}_{index}"
                folder.mkdir()
                if index == 0:
                    times[name].append(run_baseline(folder, steps=args.steps))
                else:
                    times[name].append(run_ours(names[name], folder, steps=args.steps, data_dir=args.data_dir))
                print(f"round {repeat + 1}: {name}: {times[name][-1][0]:.0f} s", file=sys.stderr, flush=True)
    print(f"{args.steps} steps of 8 crops at 128, fold 0 ({HOLDOUT} held out); {os.cpu_count()} CPU cores, "
          f"flags: {cpu_flags()}; mean of {args.repeats} interleaved round(s)")  # fmt: skip
    print("| run | wall s | training s | rest s (setup, scoring) | held-out pixel IoU |")
    print("|---|---|---|---|---|")
    for name, rows in times.items():
        wall, fit, iou = (sum(column) / len(column) for column in zip(*rows))
        print(f"| {name} | {wall:.0f} | {fit:.0f} | {wall - fit:.0f} | {iou:.3f} |")


if __name__ == "__main__":
    main()
