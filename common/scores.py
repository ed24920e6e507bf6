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
