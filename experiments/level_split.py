"""Splitting buildings at a second, higher probability: seeds where the model is sure, grown back over the mask.

    python -m experiments.level_split runs/questions/grid_unet_effnet-lite0_f{0,1,2,3}_s{0,1,2} \\
        --levels 0.6,0.7,0.8,0.9,0.95 --counts results/shape_split/levels.json

The two-threshold way to separate buildings from one probability map: the mask is the calibrated
cut (probability 0.5 after train.py's offset), the seeds are its parts at or above a higher
``level`` (4-connected, specks under ``min_area`` dropped), and scikit-image's watershed grows the
seeds back over the mask down the probability, so neighbours meet where the probability dips
between them; a patch with no seed stays whole. The mask never changes, so pixel scores do not.

Each run folder's kept model predicts its first 16 training images and its held-out scenes as in
``experiments.shape_split`` (same ``--counts`` files and reuse), and the buildings are counted as the
mask's patches, split by shape at ``inference.defaults.SPLIT_DEPTH`` (``predict.py --separate
shape``) and split at each level. Printed: by place, building F1 of each, mean over runs, against
the patches paired by run (95% paired t-interval), and the level with the highest building F1 on the
training images of all runs (a choice made without a held-out place).
"""

import argparse

import numpy as np

from experiments.predicted import TRAINING, runs_parser
from experiments.separation_bound import f1
from experiments.shape_split import PATCHES, counted_runs, run_counts, with_held_out

SHAPE = "shape"


def level_name(level):
    return f"level {level:g}"


def parse_levels(text):
    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels or not all(0.5 < level < 1.0 for level in levels):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of probabilities between 0.5 (the mask) and 1, e.g. 0.7,0.9"
        )
    return levels


def split_by_level(building, body, level, min_area):
    """(int32 labels, count): the mask ``body`` split by a watershed from its parts where ``building >= level``."""
    from inference.separation import grow_seeds, seed_markers

    return grow_seeds(-building, seed_markers(body & (building >= level), min_area), body)


def scene_counts(building, truth, levels, min_area):
    """{variant: (tp, fp, fn)} of one scene: the patches, the split by shape and the split at each level."""
    from common.scores import building_matches
    from inference.defaults import SPLIT_DEPTH, THRESHOLD
    from inference.separation import separate

    body = building >= THRESHOLD
    counts = {PATCHES: building_matches(truth, body, min_area=min_area)}
    shape = separate(building[..., None], threshold=THRESHOLD, min_area=min_area, depth=SPLIT_DEPTH)
    counts[SHAPE] = building_matches(truth, shape, min_area=min_area)
    for level in levels:
        split, _ = split_by_level(building, body, level, min_area)
        counts[level_name(level)] = building_matches(truth, split, min_area=min_area)
    return counts


def table(all_counts, levels):
    """(markdown lines, the level with the best building F1 on all runs' training images)."""
    from experiments.aggregate import paired_interval

    variants = [SHAPE] + [level_name(level) for level in levels]
    pooled = {v: np.sum([c[TRAINING][v] for c in all_counts.values() if TRAINING in c], axis=0) for v in variants}
    chosen = max(levels, key=lambda level: f1(pooled[level_name(level)]))
    places, all_counts = with_held_out(all_counts, [PATCHES] + variants)
    lines = [
        "| place | runs | patches | split by shape | " + " | ".join(variants[1:]) + " |",
        "|---" * (len(variants) + 3) + "|",
    ]
    for place in places:
        runs = [run for run, c in all_counts.items() if place in c]
        scores = {v: {run: f1(all_counts[run][place][v]) for run in runs} for v in [PATCHES] + variants}
        base = np.mean(list(scores[PATCHES].values()))
        cells = []
        for v in variants:
            diff, low, high, _ = paired_interval(scores[v], scores[PATCHES])
            mean = np.mean(list(scores[v].values()))
            ratio = f"{mean / base:.2f}x; " if base > 0 else ""
            cells.append(f"{mean:.3f} ({ratio}{diff:+.3f} [{low:+.3f}, {high:+.3f}])")
        lines.append(f"| {place} | {len(runs)} | {base:.3f} | " + " | ".join(cells) + " |")
    return lines, chosen


def main(argv=None):
    parser = runs_parser(__doc__, counts=True)
    parser.add_argument("--levels", type=parse_levels, default=parse_levels("0.7,0.8,0.9"), help="e.g. 0.7,0.8,0.9")
    args = parser.parse_args(argv)
    wanted = [PATCHES, SHAPE] + [level_name(level) for level in args.levels]
    all_counts = counted_runs(
        args.runs,
        args.counts or [],
        wanted,
        lambda run: run_counts(run, args.levels, counter=scene_counts),
        tool="experiments.level_split",
    )
    lines, chosen = table(all_counts, args.levels)
    print("\n".join(lines))
    print(f"level with the highest building F1 on the training images (all runs): {chosen:g}")


if __name__ == "__main__":
    main()
