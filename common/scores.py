"""Pixel scores from confusion counts: the arithmetic every printed score goes through."""

import numpy as np


def scores_from_counts(tp, fp, fn):
    """{"iou", "f1", "precision", "recall"} from pixel counts (1.0 when nothing to find or predict)."""

    def ratio(num, den):
        return float(num / den) if den > 0 else 1.0

    return {
        "iou": ratio(tp, tp + fp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def confusion_counts(y_true, predicted, weight=None):
    """(tp, fp, fn) pixel counts of binary arrays, NumPy."""
    y_true = np.asarray(y_true).astype(bool)
    predicted = np.asarray(predicted).astype(bool)
    weight = np.ones(y_true.shape) if weight is None else np.asarray(weight, dtype="float64")
    tp = float((weight * (predicted & y_true)).sum())
    fp = float((weight * (predicted & ~y_true)).sum())
    fn = float((weight * (~predicted & y_true)).sum())
    return tp, fp, fn


# Buildings, the SpaceNet rule: a predicted building matches a true one when their IoU is at
# least 0.5, each building matched at most once. Buildings are 4-connected pixel components
# (the pieces a footprint polygon traced along pixel edges keeps without self-touching);
# components smaller than ``min_area`` pixels are specks and left out on both sides.
MATCH_IOU = 0.5


def _components(mask, min_area):
    """(labels, sizes): buildings numbered 1..n, specks removed; sizes[i] is building i's area.

    ``mask`` is a bool mask (its 4-connected components are the buildings) or an integer array
    of building ids, 0 for the background (separated buildings, ``inference.separation``).
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    if mask.dtype == bool:
        labels, count = ndimage.label(mask)
    else:
        ids, inverse = np.unique(mask, return_inverse=True)
        labels = inverse.reshape(mask.shape) + (0 if ids[0] == 0 else 1)
        count = len(ids) - (1 if ids[0] == 0 else 0)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    kept = sizes >= min_area
    kept[0] = False  # the background
    new_ids = np.zeros(count + 1, dtype=labels.dtype)
    new_ids[kept] = np.arange(1, int(kept.sum()) + 1)
    return new_ids[labels], np.concatenate([[0], sizes[kept]])


def building_matches(truth, predicted, *, min_area=16, match_iou=MATCH_IOU):
    """(tp, fp, fn) buildings of two masks, matched one-to-one at IoU >= ``match_iou``.

    Each is a bool mask (buildings: its 4-connected components) or an integer array of building ids.

    Candidate pairs are taken in decreasing IoU, so each building is matched at most once.
    """
    truth_labels, truth_sizes = _components(truth, min_area)
    pred_labels, pred_sizes = _components(predicted, min_area)
    n_truth, n_pred = len(truth_sizes) - 1, len(pred_sizes) - 1
    both = (truth_labels > 0) & (pred_labels > 0)
    pairs, overlap = (
        np.unique(np.stack([pred_labels[both], truth_labels[both]]), axis=1, return_counts=True)
        if both.any()
        else (np.zeros((2, 0), int), np.zeros(0, int))
    )
    union = pred_sizes[pairs[0]] + truth_sizes[pairs[1]] - overlap
    iou = overlap / np.maximum(union, 1)
    matched_pred, matched_truth = set(), set()
    for index in np.argsort(-iou, kind="stable"):
        if iou[index] < match_iou:
            break
        p, t = int(pairs[0, index]), int(pairs[1, index])
        if p not in matched_pred and t not in matched_truth:
            matched_pred.add(p)
            matched_truth.add(t)
    tp = len(matched_pred)
    return tp, n_pred - tp, n_truth - tp
