"""Score predicted scenes against label masks: per scene and overall (summed counts).

This is the project's one scorer: ``predict.py --labels``, train.py's final held-out
scores and the real-sample benchmark all predict whole scenes with the blended sliding
window (``inference.tiling``) and count here: pixels (IoU, F1, precision, recall) and
buildings (precision, recall and F1 of buildings matched one-to-one at IoU >= 0.5, the
SpaceNet rule; ``common.scores.building_matches``).
"""

import time

import numpy as np

from common.scores import building_matches, confusion_counts, scores_from_counts
from inference import defaults


def building_scores(tp, fp, fn):
    """{"building_precision", "building_recall", "building_f1"} from matched-building counts."""
    scores = scores_from_counts(tp, fp, fn)
    return {f"building_{key}": scores[key] for key in ("precision", "recall", "f1")}


COUNTS = ("tp", "fp", "fn", "building_tp", "building_fp", "building_fn")
# with separation, the same scene's buildings counted as the mask's connected patches too (paired)
UNSEPARATED = ("unseparated_building_tp", "unseparated_building_fp", "unseparated_building_fn")


def _scores(counts, pixels):
    """Pixel and building scores from the six counts, with the counts and the pixel total."""
    tp, fp, fn, b_tp, b_fp, b_fn = (counts[key] for key in COUNTS)
    scores = {**scores_from_counts(tp, fp, fn), **building_scores(b_tp, b_fp, b_fn), **counts, "pixels": pixels}
    if all(key in counts for key in UNSEPARATED):
        plain = building_scores(*(counts[key] for key in UNSEPARATED))
        scores.update({f"unseparated_{key}": value for key, value in plain.items()})
    return scores


def scene_scores(name, truth, predicted, *, min_area=defaults.MIN_AREA, buildings=None, valid=None,
                 true_buildings=None):  # fmt: skip
    """Pixel and building scores of one scene's bool masks, with the counts behind them.

    ``buildings``: the predicted buildings as integer ids (separated, ``inference.separation``);
    None counts the 4-connected components of ``predicted``. ``valid``: the pixels that hold data
    (None: all); no-data pixels are left out of every count (a true building is cut at their edge).
    ``true_buildings``: the true buildings as integer ids (one per polygon), where the labels have them;
    None counts the 4-connected components of ``truth``, which merge touching buildings.
    """
    if valid is not None:
        truth, predicted = truth & valid, predicted & valid
        buildings = None if buildings is None else np.where(valid, buildings, 0)
        true_buildings = None if true_buildings is None else np.where(valid, true_buildings, 0)
    found = predicted if buildings is None else buildings
    true = truth if true_buildings is None else true_buildings
    counts = dict(zip(COUNTS, (*confusion_counts(truth, predicted), *building_matches(true, found, min_area=min_area))))
    if buildings is not None:
        counts.update(zip(UNSEPARATED, building_matches(true, predicted, min_area=min_area)))
    return {"scene": name, **_scores(counts, int(truth.size if valid is None else valid.sum()))}


def evaluation_report(rows, **meta):
    """Per-scene rows plus the overall scores of the summed counts (large scenes weigh more)."""
    keys = COUNTS + (UNSEPARATED if rows and all(UNSEPARATED[0] in row for row in rows) else ())
    overall = _scores({key: sum(row[key] for row in rows) for key in keys}, sum(row["pixels"] for row in rows))
    return {**meta, "scenes": rows, "overall": overall}


def format_table(report):
    """A Markdown table of the report, overall last."""
    lines = [
        "| scene | IoU | F1 | precision | recall | buildings (true / found / matched) | building P | building R "
        "| building F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["scenes"] + [{**report["overall"], "scene": "overall"}]:
        true, found = row["building_tp"] + row["building_fn"], row["building_tp"] + row["building_fp"]
        lines.append(
            f"| {row['scene']} | {row['iou']:.3f} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | "
            f"{true} / {found} / {row['building_tp']} | {row['building_precision']:.3f} | "
            f"{row['building_recall']:.3f} | {row['building_f1']:.3f} |"
        )
    return "\n".join(lines)


def score_scenes(
    logit_fn, scenes, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA, separate=False, depth=None, **tiling
):
    """Predict and score ``scenes``, an iterable of (name, uint8 (H, W, 3) image, (H, W) bool truth).

    ``logit_fn`` returns building logits, or every channel of a multi-target model; with
    ``separate`` the buildings counted are those ``inference.separation`` splits (as predict.py
    writes them), else the mask's 4-connected components; with ``depth`` too, separation splits
    the mask by its shape (``inference.separation.split_by_shape``).

    Returns the ``evaluation_report`` of the scenes plus ``megapixels_per_second`` (the
    predictor's pace over all of them) and ``all_building_iou`` (the IoU of calling every
    pixel a building: the floor a useful model must beat).
    """
    from concurrent.futures import ThreadPoolExecutor

    from inference.separation import separate as split_buildings
    from inference.tiling import predict_probabilities

    def scored(name, probabilities, truth, valid, true_buildings):
        building = probabilities if probabilities.ndim == 2 else probabilities[..., 0]
        buildings = (
            split_buildings(probabilities, threshold=threshold, min_area=min_area, depth=depth) if separate else None
        )
        return scene_scores(name, truth, building >= threshold, min_area=min_area, buildings=buildings, valid=valid,
                            true_buildings=true_buildings)  # fmt: skip

    # a scene is split and scored in a second thread while the model predicts the next one (the split by shape
    # and the matching are numpy / scikit-image work, the prediction TensorFlow's); at most one scene waits
    rows, seconds, pending = [], 0.0, None
    with ThreadPoolExecutor(max_workers=1) as worker:
        for name, image, truth, *more in scenes:  # (valid, true building ids) where the labels mark them
            valid, true_buildings = more if more else (None, None)
            started = time.perf_counter()
            probabilities = predict_probabilities(logit_fn, image, **tiling)
            seconds += time.perf_counter() - started
            if pending is not None:
                rows.append(pending.result())
            pending = worker.submit(scored, name, probabilities, truth, valid, true_buildings)
        if pending is not None:
            rows.append(pending.result())
    if not rows:
        raise ValueError("No scenes to score: the held-out set is empty. Check --holdout / --fold and the dataset.")
    report = evaluation_report(
        rows, threshold=threshold, separated=bool(separate), **({"shape_depth": depth} if separate and depth else {})
    )
    overall = report["overall"]
    report["all_building_iou"] = (overall["tp"] + overall["fn"]) / overall["pixels"]
    report["megapixels_per_second"] = overall["pixels"] / 1e6 / seconds if seconds else 0.0
    return report
