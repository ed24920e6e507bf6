"""Splitting buildings by the mask's shape: building F1 with and without it, by place, paired by run.

    python -m experiments.shape_split runs/questions/grid_unet_effnet-lite0_f{0,1,2,3}_s{0,1,2} \\
        --depths 8,12,16 --counts runs/shape_split.json

For each run folder (with model.keras and a held-out split): its kept model predicts its first 16
training images (the images train.py calibrates on) and its held-out scenes, the way train.py
scored them (predict.py's scorer, the calibrated threshold), and each mask's buildings are
counted as its connected patches and as ``predict.py --separate shape`` splits them at every
depth (``inference.separation.split_by_shape``). The mask itself never changes, so pixel scores
are the same both ways.

Printed: per place (then each run's held-out places together, and its training images), the
building F1 of the patches and of each depth, mean over runs, and each depth against the
patches paired by run (95% paired t-interval); the last column splits each run at the depth
that did best on its own training images (or not at all, unless a depth beat the patches
there), as a run could choose for itself. The depth to use by default is the one with the
highest building F1 on the training images, summed over the runs: a choice made without a
held-out place. ``--counts`` keeps each run's counts in a JSON file as it finishes, by run
folder name (several ``--counts`` are all read; new counts go to the last); a rerun reads the
runs already there instead of predicting them again (so the table comes back from the committed
counts on a clone without the models).

``--baseline PREFIX`` compares two recipes instead: the runs whose folder name starts with PREFIX
are the baseline, every other run is paired with the baseline run of the same fold and seed (the
``_f<fold>_s<seed>`` ending of grid-style names), and a second table gives, by place, both
recipes' building F1 as patches and split at ``inference.defaults.SPLIT_DEPTH``, and the other
recipe's split against the baseline's patches and split (paired).

    python -m experiments.shape_split runs/gap/lite0gap10_f0_s{0,1,2} \
        runs/questions/grid_unet_effnet-lite0_f0_s{0,1,2} --depths 12 \
        --counts results/shape_split/counts.json --baseline grid_unet_effnet-lite0
"""

import argparse
import json
import re

import numpy as np

from experiments.predicted import TRAINING, predicted_scenes, run_name, runs_parser
from experiments.separation_bound import f1

PATCHES = "patches"
OWN = "own choice"
HELD_OUT = "all held-out places"


def parse_depths(text):
    try:
        depths = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        depths = []
    if not depths or min(depths) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of depths above 0, e.g. 8,12,16")
    return depths


def scene_counts(building, truth, depths, min_area):
    """{variant: (tp, fp, fn)} of one scene's building probabilities against its truth."""
    from common.scores import building_matches
    from inference.heldout import THRESHOLD
    from inference.separation import separate

    mask = building >= THRESHOLD
    counts = {PATCHES: building_matches(truth, mask, min_area=min_area)}
    for depth in depths:
        split = separate(building[..., None], threshold=THRESHOLD, min_area=min_area, depth=depth)
        counts[f"{depth:g}"] = building_matches(truth, split, min_area=min_area)
    return counts


def run_counts(run_dir, depths, counter=scene_counts):
    """{place or TRAINING: {variant: [tp, fp, fn]}} of one run, predicted with its kept model.

    ``counter(building, truth, depths, min_area)`` counts one scene's variants (``scene_counts``).
    """
    from inference import defaults

    totals = {}
    for scene in predicted_scenes(run_dir, training=True):
        for variant, counts in counter(scene.probabilities, scene.truth, depths, defaults.MIN_AREA).items():
            total = totals.setdefault(scene.place, {}).setdefault(variant, [0, 0, 0])
            total[:] = [a + int(b) for a, b in zip(total, counts)]
    return totals


def with_held_out(all_counts, variants):
    """(places + [HELD_OUT, TRAINING], a copy of ``all_counts`` with each run's held-out places summed as HELD_OUT,
    as its results.json counts them)."""
    places = sorted({place for counts in all_counts.values() for place in counts} - {TRAINING})
    together = {
        run: {**counts, HELD_OUT: {v: np.sum([counts[p][v] for p in places if p in counts], axis=0) for v in variants}}
        for run, counts in all_counts.items()
    }
    return places + [HELD_OUT, TRAINING], together


def summary(all_counts, depths):
    """(markdown table lines, chosen depth) of {run: run_counts}."""
    from experiments.aggregate import paired_interval

    variants = [PATCHES] + [f"{depth:g}" for depth in depths]
    pooled = {v: np.sum([c[TRAINING][v] for c in all_counts.values() if TRAINING in c], axis=0) for v in variants}
    chosen = max(variants[1:], key=lambda v: (f1(pooled[v]), -float(v)))  # ties: the depth that splits more
    places, all_counts = with_held_out(all_counts, variants)
    # what train.py-style choice would give: each run's own best on its training images (split only if strictly better)
    own = {run: max(variants, key=lambda v: (f1(c[TRAINING][v]), v == PATCHES)) for run, c in all_counts.items()}
    lines = [
        "| place | runs | patches | "
        + " | ".join(f"depth {v}" for v in variants[1:])
        + " | depth chosen by each run on its training images |",
        "|---" * (len(variants) + 3) + "|",
    ]
    for place in places:
        scores = {v: {run: f1(c[place][v]) for run, c in all_counts.items() if place in c} for v in variants}
        scores[OWN] = {run: f1(c[place][own[run]]) for run, c in all_counts.items() if place in c}
        cells = []
        for v in variants[1:] + [OWN]:
            diff, low, high, _ = paired_interval(scores[v], scores[PATCHES])
            mean, base = np.mean(list(scores[v].values())), np.mean(list(scores[PATCHES].values()))
            ratio = f"{mean / base:.2f}x; " if base > 0 else ""
            cells.append(f"{mean:.3f} ({ratio}{diff:+.3f} [{low:+.3f}, {high:+.3f}])")
        mean = np.mean(list(scores[PATCHES].values()))
        lines.append(f"| {place} | {len(scores[PATCHES])} | {mean:.3f} | " + " | ".join(cells) + " |")
    return lines, float(chosen), own


def pair_key(run):
    """'lite0gap10_f0_s2' -> 'f0_s2': what pairs a run with the baseline's run on the same fold and seed."""
    match = re.search(r"_(f\d+_s\d+)$", run)
    if not match:
        raise ValueError(f"{run!r} is not a grid-style run name ending in _f<fold>_s<seed>; --baseline pairs by it")
    return match.group(1)


def versus(all_counts, baseline, depth):
    """Markdown lines: by place, the baseline's and the other runs' building F1 as patches and split at ``depth``."""
    from experiments.aggregate import paired_interval

    split = f"{depth:g}"
    base = {pair_key(run): c for run, c in all_counts.items() if run.startswith(baseline)}
    other = {pair_key(run): c for run, c in all_counts.items() if not run.startswith(baseline)}
    if not base or not other:
        raise ValueError(
            f"--baseline {baseline!r}: need runs of the baseline and of another recipe (got {len(base)}, {len(other)})"
        )
    places = sorted({p for c in other.values() for p in c} - {TRAINING}) + [TRAINING]
    lines = [
        f"| place | pairs | baseline patches | baseline split {split} | patches | split {split} | "
        "split vs baseline patches | split vs baseline split |",
        "|---" * 8 + "|",
    ]
    for place in places:
        keys = [k for k in other if k in base and place in other[k] and place in base[k]]
        if not keys:
            continue
        scores = {
            name: {k: f1(source[k][place][variant]) for k in keys}
            for name, source, variant in (
                ("base patches", base, PATCHES),
                ("base split", base, split),
                ("patches", other, PATCHES),
                ("split", other, split),
            )
        }
        means = {name: np.mean(list(v.values())) for name, v in scores.items()}
        cells = []
        for reference in ("base patches", "base split"):
            diff, low, high, _ = paired_interval(scores["split"], scores[reference])
            ratio = f"{means['split'] / means[reference]:.2f}x; " if means[reference] > 0 else ""
            cells.append(f"{ratio}{diff:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(
            f"| {place} | {len(keys)} | "
            + " | ".join(f"{means[n]:.3f}" for n in ("base patches", "base split", "patches", "split"))
            + " | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def counted_runs(runs, files, wanted, count, tool="experiments.shape_split"):
    """{run folder name: counts}: read from the ``--counts`` files, else ``count(run_dir)`` and kept in the last file.

    A run is counted again when its kept counts lack a ``wanted`` variant.
    """
    kept = json.loads(files[-1].read_text()) if files and files[-1].exists() else {}  # the file new counts go to
    saved = {}
    for path in files[:-1]:
        saved.update(json.loads(path.read_text()) if path.exists() else {})
    saved.update(kept)
    all_counts = {}
    for run_dir in runs:
        key = run_name(run_dir)  # runs are named by folder: counts kept in a results/ file serve any clone
        counts = saved.get(key)
        if counts is None or any(v not in counts.get(TRAINING, {}) for v in wanted):
            if not (run_dir / "model.keras").exists():
                raise SystemExit(f"{tool}: {run_dir} has no model.keras; pass finished run folders")
            counts = count(run_dir)
            if files:
                kept[key] = counts
                files[-1].write_text(json.dumps(kept, indent=1))
        all_counts[key] = counts
        print(f"counted {run_dir}", flush=True)
    return all_counts


def main(argv=None):
    parser = runs_parser(__doc__, counts=True)
    parser.add_argument("--depths", type=parse_depths, default=parse_depths("8,12,16"), help="e.g. 8,12,16")
    parser.add_argument("--baseline", help="folder-name prefix of the baseline recipe's runs: compare the others to it")
    args = parser.parse_args(argv)
    from inference.defaults import SPLIT_DEPTH

    if args.baseline and SPLIT_DEPTH not in args.depths:
        parser.error(f"--baseline compares at the default split depth {SPLIT_DEPTH:g}: include it in --depths")
    all_counts = counted_runs(
        args.runs, args.counts or [], [f"{depth:g}" for depth in args.depths], lambda run: run_counts(run, args.depths)
    )
    lines, chosen, own = summary(all_counts, args.depths)
    print("\n".join(lines))
    print("each run's choice on its training images: " + ", ".join(f"{run} {v}" for run, v in own.items()))
    print(f"depth with the highest building F1 on the training images (all runs): {chosen:g}")
    if args.baseline:
        try:
            print(
                "\n".join(
                    [
                        "",
                        f"against {args.baseline} (paired by fold and seed):",
                        *versus(all_counts, args.baseline, SPLIT_DEPTH),
                    ]
                )
            )
        except ValueError as error:
            raise SystemExit(f"experiments.shape_split: {error}") from None


if __name__ == "__main__":
    main()
