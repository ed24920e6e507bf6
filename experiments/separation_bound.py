"""How far could separating touching buildings raise building F1? A bound from the truth, on held-out places.

    python -m experiments.separation_bound runs/questions/grid_unet_effnet-lite0_f0_s0 ...   (folders with model.keras)

For each run: its kept weights predict its held-out scenes as train.py scored them (predict.py's
scorer, the calibrated threshold), and the mask is counted three ways, per place (the true buildings:
the 4-connected parts of a raster mask, or one per polygon where the labels keep them, pixels without
data left out):

- **patches**: the mask's 4-connected patches are the buildings (predict.py without separation);
- **split by the truth**: every predicted patch is cut along the true buildings' nearest-neighbour
  cells (each predicted pixel goes to the true building nearest to it). Separation only splits
  what the mask covers, and this split is guided by the answer itself, so it is about the best any
  separation of the same pixels can do: if it does not double building F1, no separation channel will;
- **at most**: a strict bound on any split: a true building can be matched only if the mask covers
  at least half of it (its best piece is the mask's part of it), and a patch touching no true
  building stays a false one;
- **merged**: the share of true buildings whose pixels fall in a predicted patch that covers two
  or more true buildings (the errors separation exists to fix);
- **close**: the share of true buildings with another one at most 1 (and 4) pixels away, the gaps
  the contact target marks (``data.targets.CONTACT_RADIUS``);
- **gaps bridged**: the share of the true gaps between neighbouring buildings (the background
  pixels of the ``contact`` target, what ``--gap-weight`` weights) that the mask covers;
- **pixel IoU** of the mask, over the place's scenes together.

Nothing is written; the table is printed.
"""

import numpy as np

from common.scores import building_matches, confusion_counts, scores_from_counts
from experiments.predicted import predicted_scenes, run_name, runs_parser


def split_by_truth(predicted, truth):
    """Integer building ids: each 4-connected patch of ``predicted`` cut by the nearest-true-building cells.
    ``truth``: a bool mask (its 4-connected parts are the buildings) or the true buildings' ids."""
    from scipy import ndimage

    patches, _ = ndimage.label(predicted)
    if truth.dtype == bool:
        truth_ids, count = ndimage.label(truth)
    else:
        truth_ids, count = truth.astype("int64"), int(truth.max())
    if count == 0:
        return patches
    _, (rows, cols) = ndimage.distance_transform_edt(truth_ids == 0, return_indices=True)
    nearest = truth_ids[rows, cols].astype("int64")
    return np.where(predicted, patches.astype("int64") * (count + 1) + nearest, 0)


def merged_share(predicted, truth, min_area):
    """(true buildings in patches covering two or more of them, true buildings), specks left out on both sides."""
    from common.scores import _components

    truth_ids, truth_sizes = _components(truth, min_area)
    patches, _ = _components(predicted, min_area)
    both = (truth_ids > 0) & (patches > 0)
    pairs = np.unique(np.stack([patches[both], truth_ids[both]]), axis=1) if both.any() else np.zeros((2, 0), int)
    per_patch = np.bincount(pairs[0], minlength=int(patches.max()) + 1)
    merged = np.unique(pairs[1][per_patch[pairs[0]] >= 2])
    return len(merged), len(truth_sizes) - 1


def best_split_counts(predicted, truth, min_area, match_iou=0.5):
    """(tp, fp, fn) no split of ``predicted`` can beat: tp = true buildings the mask covers at IoU >= ``match_iou``
    when its piece is exactly its part of the building, fp = patches touching no true building."""
    from common.scores import _components

    truth_ids, truth_sizes = _components(truth, min_area)
    patches, patch_sizes = _components(predicted, min_area)
    covered = np.bincount(truth_ids[predicted], minlength=len(truth_sizes))[1:]
    tp = int(np.sum((covered >= match_iou * truth_sizes[1:]) & (covered >= min_area)))
    touching = np.unique(patches[(truth_ids > 0) & (patches > 0)])
    return tp, len(patch_sizes) - 1 - len(touching), len(truth_sizes) - 1 - tp


def close_counts(truth, min_area, gaps=(1, 4)):
    """(true buildings with another one at most g pixels away, for each g in ``gaps``; true buildings)."""
    from scipy import ndimage

    from common.scores import _components

    ids, sizes = _components(truth, min_area)
    none = int(ids.max()) + 1  # the background, for the minimum (int64's own maximum wraps in scipy's filters)
    far = np.where(ids > 0, ids, none)
    close = []
    for gap in gaps:
        # a (gap + 2)-pixel window holds two different buildings where they are at most ``gap`` pixels apart
        highest, lowest = ndimage.maximum_filter(ids, size=gap + 2), ndimage.minimum_filter(far, size=gap + 2)
        both = (highest > 0) & (lowest != none) & (highest != lowest)
        close.append(len(np.unique(np.concatenate([highest[both], lowest[both]]))))
    return (*close, len(sizes) - 1)


def gap_counts(predicted, truth, ids=None, valid=None):
    """(gap pixels the mask covers, gap pixels): the background pixels the contact target marks in ``truth``;
    ``ids``: the true buildings' own ids (polygons; default: the 4-connected parts of ``truth``), ``valid``: the
    pixels holding data (default: all)."""
    import tensorflow as tf

    from data.targets import instance_ids, separation_targets

    ids = instance_ids(truth)[..., 0] if ids is None else ids  # (H, W)
    contact = separation_targets(tf.constant(ids[None, ..., None].astype("float32")), ("contact",))
    gaps = (contact.numpy()[0, ..., 0] > 0) & ~truth & (True if valid is None else valid)
    return int(np.sum(gaps & predicted)), int(np.sum(gaps))


def scene_counts(predicted, truth, min_area, ids=None, valid=None):
    """{"patches", "split", "bound": (tp, fp, fn), "merged": (merged, true)} of one scene. Where the labels keep
    one id per building (polygons), ``ids`` are the true buildings (touching ones apart) and ``valid`` the pixels
    with data (the mask is counted there only)."""
    if valid is not None:
        predicted = predicted & valid
    buildings = truth if ids is None else ids
    return {
        "patches": np.array(building_matches(buildings, predicted, min_area=min_area)),
        "split": np.array(building_matches(buildings, split_by_truth(predicted, buildings), min_area=min_area)),
        "bound": np.array(best_split_counts(predicted, buildings, min_area)),
        "merged": np.array(merged_share(predicted, buildings, min_area)),
        "close": np.array(close_counts(buildings, min_area)),
        "gaps": np.array(gap_counts(predicted, truth, ids, valid)),
        "pixels": np.array(confusion_counts(truth, predicted, None if valid is None else valid)),
    }


def f1(counts):
    """Building F1 of (tp, fp, fn), as every score here (``inference.evaluation.building_scores``)."""
    from inference.evaluation import building_scores

    return building_scores(*counts)["building_f1"]


def _against(value, base):
    return f"{value:.3f} ({value / base:.2f}x)" if base > 0 else f"{value:.3f}"


def run_counts(run_dir, threshold=None):
    """{place: summed scene_counts} of one run's held-out scenes, predicted with its kept weights.

    ``threshold``: None scores the mask as train.py did (its calibrated threshold); a probability
    removes the calibration and cuts the model's own probabilities there instead.
    """
    from inference import defaults
    from inference.heldout import THRESHOLD
    from training.results import finished_results

    results = finished_results(run_dir, "experiments.separation_bound")
    if results.get("separated"):
        raise SystemExit(f"experiments.separation_bound: {run_dir} separates its buildings already; pass runs without")
    cut = THRESHOLD if threshold is None else threshold
    totals = {}
    for scene in predicted_scenes(run_dir, raw=threshold is not None, polygons=True):
        counts = scene_counts(scene.probabilities >= cut, scene.truth, defaults.MIN_AREA, scene.ids, scene.valid)
        total = totals.setdefault(scene.place, {key: np.zeros_like(value) for key, value in counts.items()})
        for key, value in counts.items():
            total[key] += value
    return totals


def main(argv=None):
    parser = runs_parser(__doc__)
    parser.add_argument(
        "--raw-threshold",
        type=float,
        help="cut the uncalibrated probabilities here (e.g. 0.5) instead of at the run's calibrated threshold",
    )
    args = parser.parse_args(argv)
    if args.raw_threshold is not None and not 0 < args.raw_threshold < 1:
        parser.error(f"--raw-threshold {args.raw_threshold}: a probability between 0 and 1, e.g. 0.5")
    print(
        "| run | place | true buildings | building F1, patches | split by the truth | at most | merged "
        "| close (1 px / 4 px) | gaps bridged | pixel IoU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run_dir in args.runs:
        for place, counts in sorted(run_counts(run_dir, args.raw_threshold).items()):
            plain, split, bound = f1(counts["patches"]), f1(counts["split"]), f1(counts["bound"])
            merged, true = counts["merged"]
            print(
                f"| {run_name(run_dir)} | {place} | {true} | {plain:.3f} | {_against(split, plain)} | "
                f"{_against(bound, plain)} | "
                f"{merged / max(true, 1):.0%} | {counts['close'][0] / max(true, 1):.0%} / "
                f"{counts['close'][1] / max(true, 1):.0%} | {counts['gaps'][0] / max(counts['gaps'][1], 1):.0%} | "
                f"{scores_from_counts(*counts['pixels'])['iou']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
