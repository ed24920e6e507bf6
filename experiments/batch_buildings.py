"""The share of building pixels in each seed's training batches, by phase of the schedule (issue #34).

    python -m experiments.batch_buildings                 # train.py's budget: 210 batches of 8 crops at 128
    python -m experiments.batch_buildings --recipe lite1tta256   # the second budget: 200 batches at 256

The batches are those of the all-places runs of ``experiments.recipe_ablation`` (every place of the sample,
nothing held out), built by train.py's own pipeline from the same options and seed, without a model. A seed
whose last batches hold fewer buildings than the others' would push its kept weights' best cut down (a
model trained last on background calls less building). The weighted column weights each batch by the cosine
schedule's learning rate at its step (its warm-up ignored).
"""

import argparse
import contextlib
import io
import math
import tempfile
from pathlib import Path

import numpy as np

from experiments.recipe_ablation import ALL_PLACES, ALL_PLACES_SEEDS, SAMPLE


def building_shares(options, seed, data_dir):
    """The share of building pixels in each of the run's training batches, in order (one per step)."""
    import train
    from training.setup import make_datasets

    config = train.parse_args(["--dataset", "buildings/kaggle", "--manual-dir", str(SAMPLE), "--data-dir",
                               str(data_dir), "--seed", str(seed), *options])  # fmt: skip
    steps = config.epochs * config.steps_per_epoch
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):  # its split's counts
        batches = make_datasets(config, train.resolve_dataset(config), Path(run_dir))[0]
        return np.array([float(batch[1].numpy().mean()) for batch in batches.take(steps)])


def phase_row(seed, shares):
    """A Markdown row: the mean share overall, weighted by the cosine's rate, in the first half, last quarter,
    last tenth."""
    steps = len(shares)
    rate = 0.5 * (1 + np.cos(math.pi * np.arange(steps) / steps))
    cells = [shares.mean(), np.average(shares, weights=rate), shares[: steps // 2].mean(),
             shares[3 * steps // 4 :].mean(), shares[9 * steps // 10 :].mean()]  # fmt: skip
    return f"| {seed} | {steps} | " + " | ".join(f"{value:.3f}" for value in cells) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="lite1tta", choices=sorted(ALL_PLACES), help="an all-places recipe")
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "buildings_sample_tfds")
    args = parser.parse_args(argv)
    print("| seed | batches | building share | weighted by the rate | first half | last quarter | last tenth |")
    print("|---|---|---|---|---|---|---|")
    for seed in ALL_PLACES_SEEDS:
        print(phase_row(seed, building_shares(ALL_PLACES[args.recipe], seed, args.data_dir)), flush=True)


if __name__ == "__main__":
    main()
