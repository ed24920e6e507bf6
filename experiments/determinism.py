"""Are two train.py runs at one seed the same run? The first steps of train.py's model, data and optimizer, each in
a fresh process, compared bit for bit (issue #34: runs at a fixed seed scored t5 0.239 / 0.229 / 0.231 one day
and 0.273 / 0.173 / 0.185 the next).

    python -m experiments.determinism                     # 3 processes as train.py runs, 3 with --deterministic
    python -m experiments.determinism --processes 2 --steps 3 -- --fold 0 --seed 1   # more train.py options

Each process builds the training batches and the model exactly as train.py does (``train.parse_args``,
``training.setup``), trains ``--steps`` steps with ``train_on_batch`` and prints a hash of the input batches, of the
initial weights and of the weights and optimizer state after each step. The table shows how many distinct hashes the
processes of each mode gave (1 means bit-identical runs) and the median seconds of a step after the first.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "buildings_sample"
DEFAULT_OPTIONS = ["--dataset", "buildings/kaggle", "--manual-dir", str(SAMPLE), "--folds", "4", "--fold", "1",
                   "--warmup-steps", "1"]  # fmt: skip


def digest(arrays):
    import numpy as np

    found = hashlib.sha1()
    for array in arrays:
        found.update(np.ascontiguousarray(array).tobytes())
    return found.hexdigest()[:12]


def one_process(options, steps, deterministic):
    """Train ``steps`` steps as train.py would; a dict of hashes and the seconds the steps took."""
    import tempfile

    import train

    with tempfile.TemporaryDirectory() as run_dir:
        asked = ["--deterministic"] if deterministic else []
        config = train.parse_args([*options, *asked, "--tracker", "local", "--run-dir", run_dir])
        from training.distribute import make_strategy
        from training.setup import build_model, make_datasets, start_tensorflow

        start_tensorflow(config)  # as train.py starts: --deterministic, the seed, the precision
        train_ds, *_ = make_datasets(config, train.resolve_dataset(config), Path(run_dir))
        batches = list(train_ds.take(steps))
        model, *_ = build_model(config, make_strategy(config.strategy), train_ds)
        found = {"batches": digest(part for batch in batches for part in batch[:2]),
                 "initial weights": digest(model.get_weights())}  # fmt: skip
        for step, batch in enumerate(batches, 1):
            started = time.perf_counter()  # the steps after the first (which traces the step function) are timed
            model.train_on_batch(batch[0], batch[1])
            found["seconds"] = found.get("seconds", 0.0) + (time.perf_counter() - started) * (step > 1)
            found[f"after step {step}"] = digest([*model.get_weights(), *model.optimizer.variables])
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "buildings_sample_tfds"))
    parser.add_argument("--child", choices=("free", "deterministic"), help=argparse.SUPPRESS)
    parser.add_argument("options", nargs="*", help="more train.py options (after --)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        raise SystemExit("experiments.determinism: --steps must be at least 2 (the first step is not timed)")
    options = [*DEFAULT_OPTIONS, "--data-dir", args.data_dir, *args.options]
    if args.child:
        print(json.dumps(one_process(options, args.steps, args.child == "deterministic")))
        return None
    if not SAMPLE.exists() and "--manual-dir" not in args.options:
        raise SystemExit(f"experiments.determinism: the sample is not at {SAMPLE}; pass train.py's data options")
    table = {}
    for mode in ("free", "deterministic"):
        table[mode] = []
        for _ in range(args.processes):
            done = subprocess.run(
                [sys.executable, "-m", "experiments.determinism", "--child", mode, "--steps", str(args.steps),
                 "--data-dir", args.data_dir, "--", *args.options],
                cwd=ROOT, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"experiments.determinism: a {mode} process failed:\n{done.stderr[-3000:]}")
            table[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = [key for key in table["free"][0] if key != "seconds"]
    print(f"| {args.processes} processes each | " + " | ".join(keys) + " | seconds per step |")
    print("|---" * (len(keys) + 2) + "|")
    for mode, rows in table.items():
        distinct = [str(len({row[key] for row in rows})) for key in keys]
        seconds = sorted(row["seconds"] / (args.steps - 1) for row in rows)
        label = "train.py" if mode == "free" else "train.py --deterministic"
        print(f"| {label} | " + " | ".join(distinct) + f" | {seconds[len(seconds) // 2]:.2f} |")
    print("(distinct hashes over the processes: 1 = bit-identical)")
    return table


if __name__ == "__main__":
    main()
