"""train.py's input pipeline on a fold of the real sample: the training images kept decoded, beside decoding
each image again for every crop taken from it (what the pipeline did before ``data.splits`` told tf.data how
many training images a fold leaves).

Both produce train.py's default stream from the same examples (a fold's training images, ``--train-on all``):
batches of 8 crops at 128, one crop per image, flips, the same seed, so the same batches (checked). The time
is that of the whole stream a run uses (210 batches, the decoding included), interleaved ``--repeats`` times.

    python -m benchmarks.bench_fold_pipeline [--fold 0] [--batches 210] [--repeats 2]
"""

import argparse
import os
import statistics
import time
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "buildings_sample"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--batches", type=int, default=210)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "buildings_sample_tfds"))
    args = parser.parse_args(argv)
    if not SAMPLE.is_dir():
        raise SystemExit(f"benchmarks.bench_fold_pipeline: the real sample is not at {SAMPLE}")

    import numpy as np

    from data.groups import DEFAULT_GROUP_PATTERN
    from data.pipeline import keeps_decoded, train_dataset
    from data.splits import split_examples
    from inference.tiling import speed_flags

    config = types.SimpleNamespace(data_dir=args.data_dir, manual_dir=str(SAMPLE), holdout="", folds=4,
                                   fold=args.fold, group_pattern=DEFAULT_GROUP_PATTERN, train_on="all", bands="",
                                   encoder="")  # fmt: skip
    train, *_, counts = split_examples(config, "buildings/kaggle", Path(args.data_dir))
    print(f"fold {args.fold}: {counts[0]} training images; kept decoded by default: {keeps_decoded(train)}")

    def stream(cache_decoded):
        batches = train_dataset(train, size=128, batch_size=8, seed=0, crops_per_image=1, augmentation="flips",
                                cache_decoded=cache_decoded)  # fmt: skip
        return [float(np.asarray(image).sum()) for image, _ in batches.take(args.batches)]

    ways = {"decoded once, kept in memory (train.py now)": None, "PNG bytes kept, decoded per crop (before)": False}
    seconds, sums = {name: [] for name in ways}, {}
    for repeat in range(args.repeats):
        for name in list(ways) if repeat % 2 == 0 else list(ways)[::-1]:
            started = time.perf_counter()
            sums[name] = stream(ways[name])
            seconds[name].append(time.perf_counter() - started)
    flags = speed_flags()
    print(f"{args.batches} batches of 8 crops at 128; {os.cpu_count()} cores, flags {flags}; {args.repeats} "
          "interleaved runs each")  # fmt: skip
    print("| pipeline | wall s (median) | batches/s |")
    print("|---|---|---|")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.1f} | {args.batches / median:.1f} |")
    same = len(set(map(tuple, sums.values()))) == 1
    print(f"same batches: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("the two pipelines gave different batches")


if __name__ == "__main__":
    main()
