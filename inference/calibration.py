"""The decision threshold that maximises pixel IoU on a set of scored scenes.

Models trained with Dice and focal losses over-predict buildings on whole images at
probability 0.5 (README: U-Net/B0 calls 98% of the held-out tile's buildings and half as
much again of its ground). ``best_threshold`` finds the threshold with the best IoU of the
summed pixel counts from histograms of the predicted probabilities, one scene at a time, and
train.py stores it in the model (the logit offset of ``blocks.calibration``).
"""

import numpy as np

from inference.tiling import predict_probabilities

STEP = 0.01  # thresholds tried: STEP, 2 * STEP, ..., 1 - STEP
EDGES = np.linspace(0.0, 1.0, round(1 / STEP) + 1)
EDGES32 = EDGES.astype("float32")


class ThresholdCounts:
    """Pixel histograms of the probabilities of building and background pixels, scene by scene."""

    def __init__(self):
        self.building = np.zeros(len(EDGES) - 1, dtype="int64")
        self.background = np.zeros(len(EDGES) - 1, dtype="int64")

    def add(self, probabilities, truth, valid=None):
        if valid is not None:  # pixels without data count on neither side
            probabilities, truth = np.asarray(probabilities)[valid], np.asarray(truth)[valid]
        # bin k holds [EDGES[k], EDGES[k+1]) compared in float32, as `probabilities >= threshold` compares
        # (a probability of exactly 1.0 joins the last bin); the product may round across an edge: correct it
        probabilities = np.asarray(probabilities, dtype="float32")
        bins = np.clip((probabilities * (len(EDGES) - 1)).astype("int64"), 0, len(EDGES) - 2)
        bins -= probabilities < EDGES32[bins]
        bins += (probabilities >= EDGES32[bins + 1]) & (bins < len(EDGES) - 2)
        self.building += np.bincount(bins[truth], minlength=len(self.building))
        self.background += np.bincount(bins[~truth], minlength=len(self.background))

    def ious(self):
        """IoU of ``probability >= EDGES[k]`` for every k in 1 .. len(EDGES) - 2."""
        tp = np.cumsum(self.building[::-1])[::-1]  # tp[k]: building pixels at or above EDGES[k]
        fp = np.cumsum(self.background[::-1])[::-1]
        fn = tp[0] - tp
        union = tp + fp + fn
        iou = np.divide(tp, union, out=np.zeros(len(tp)), where=union > 0)
        return {round(float(EDGES[k]), 6): float(iou[k]) for k in range(1, len(EDGES) - 1)}


def best_threshold(counts, *, default=0.5):
    """(threshold, its IoU, the IoU at ``default``); ties go to the threshold nearest ``default``."""
    ious = counts.ious()
    best = max(ious, key=lambda t: (round(ious[t], 12), -abs(t - default)))
    return best, ious[best], ious[min(ious, key=lambda t: abs(t - default))]


def calibrate(logit_fn, scenes, **tiling):
    """{"threshold", "iou", "iou_at_0.5", "scenes", "pixels"} over ``scenes`` ((name, image, truth) triples, or
    (name, image, truth, valid, true building ids) where the labels mark no-data: ``heldout.decoded_scenes``)."""
    counts, sizes = ThresholdCounts(), []
    for _, image, truth, *more in scenes:
        valid = more[0] if more else None
        counts.add(predict_probabilities(logit_fn, image, **tiling), truth, valid)
        sizes.append(truth.size if valid is None else int(valid.sum()))
    if not sizes:
        raise ValueError("No scenes to calibrate the threshold on: the training split is empty.")
    threshold, iou, at_half = best_threshold(counts)
    return {"threshold": threshold, "iou": iou, "iou_at_0.5": at_half, "scenes": len(sizes), "pixels": sum(sizes)}
