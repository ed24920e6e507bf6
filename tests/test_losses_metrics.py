"""Losses and metrics against hand-computed values on small arrays."""

import math

import numpy as np
import pytest
import tensorflow as tf

from common.scores import confusion_counts, scores_from_counts
from training.losses import SegmentationLoss, bce, dice, focal, jaccard, lovasz, parse_loss
from training.metrics import BinarySegmentationScore

Y = np.array([1, 0, 1, 1, 0, 0], "float32").reshape(1, 2, 3, 1)
Z = np.array([2.0, -1.0, -0.5, 3.0, 0.2, -2.0], "float32").reshape(1, 2, 3, 1)


def _sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_bce_by_hand():
    expected = np.mean(
        [-math.log(_sigmoid(z)) if y else -math.log(1 - _sigmoid(z)) for y, z in zip(Y.ravel(), Z.ravel())]
    )
    assert float(bce(Y, Z)) == pytest.approx(expected, rel=1e-5)


def test_focal_by_hand():
    terms = []
    for y, z in zip(Y.ravel(), Z.ravel()):
        p = _sigmoid(z)
        p_t, alpha_t = (p, 0.25) if y else (1 - p, 0.75)
        terms.append(-alpha_t * (1 - p_t) ** 2 * math.log(p_t))
    assert float(focal(Y, Z)) == pytest.approx(np.mean(terms), rel=1e-5)


def test_dice_and_jaccard_by_hand():
    p = np.array([_sigmoid(z) for z in Z.ravel()])
    y = Y.ravel()
    inter = (p * y).sum()
    assert float(dice(Y, Z)) == pytest.approx(1 - (2 * inter + 1) / (p.sum() + y.sum() + 1), rel=1e-5)
    assert float(jaccard(Y, Z)) == pytest.approx(1 - (inter + 1) / ((p + y - p * y).sum() + 1), rel=1e-5)


def test_lovasz_by_hand():
    # hinge errors 1 - z*sign: sorted 1.5 (y=1), 1.2 (y=0), 0, ... ; Jaccard-extension
    # gradient 1/3, 1/6 for the two positive errors -> 1.5/3 + 1.2/6 = 0.7
    assert float(lovasz(Y, Z)) == pytest.approx(0.7, rel=1e-6)


def test_perfect_prediction_has_near_zero_overlap_losses():
    logits = (Y * 2 - 1) * 20
    assert float(lovasz(Y, logits)) == 0.0
    assert float(dice(Y, logits)) < 1e-6 and float(jaccard(Y, logits)) < 1e-6


def test_weights_ignore_padding():
    weight = np.array([1, 1, 1, 0, 0, 0], "float32").reshape(1, 2, 3, 1)
    assert float(bce(Y, Z, weight)) == pytest.approx(float(bce(Y[:, :1], Z[:, :1])), rel=1e-6)
    assert float(lovasz(Y, Z, weight)) == pytest.approx(float(lovasz(Y[:, :1], Z[:, :1])), rel=1e-6)


def test_loss_sum_and_bad_names():
    total = SegmentationLoss("dice+focal")(Y, Z)
    assert float(total) == pytest.approx(float(dice(Y, Z)) + float(focal(Y, Z)), rel=1e-6)
    assert parse_loss("bce + lovasz") == [(1.0, "bce"), (1.0, "lovasz")]
    with pytest.raises(ValueError, match="Valid terms: bce, dice, focal, jaccard, lovasz"):
        parse_loss("dice+hinge")


def test_weighted_terms():
    assert parse_loss("bce + 0.5*Dice") == [(1.0, "bce"), (0.5, "dice")]
    weighted = SegmentationLoss("bce+0.5*dice")
    assert weighted.name == "bce_0_5_dice"
    assert float(weighted(Y, Z)) == pytest.approx(float(bce(Y, Z)) + 0.5 * float(dice(Y, Z)), rel=1e-6)
    two_targets = SegmentationLoss("2*bce", target_weights=[1.0, 0.25])
    y2, z2 = np.concatenate([Y, 1 - Y], -1), np.concatenate([Z, -Z], -1)
    expected = 2 * float(bce(Y, Z)) + 0.25 * 2 * float(bce(1 - Y, -Z))
    assert float(two_targets(y2, z2)) == pytest.approx(expected, rel=1e-6)
    for bad in ("0*bce+dice", "-1*dice", "x*dice", "inf*bce"):
        with pytest.raises(ValueError, match="must be a positive number"):
            parse_loss(bad)


def test_metrics_accumulate_over_batches_not_average():
    # batch 1: tp=1 fp=1 fn=0 (IoU 0.5); batch 2: tp=1 fp=0 fn=3 (IoU 0.25)
    y1, z1 = np.array([[1, 0]], "float32"), np.array([[1.0, 1.0]], "float32")
    y2, z2 = np.array([[1, 1, 1, 1]], "float32"), np.array([[1.0, -1, -1, -1]], "float32")
    metrics = {kind: BinarySegmentationScore(kind) for kind in ("iou", "f1", "precision", "recall")}
    for metric in metrics.values():
        metric.update_state(y1, z1)
        metric.update_state(y2, z2)
    # totals tp=2 fp=1 fn=3
    assert float(metrics["iou"].result()) == pytest.approx(2 / 6)
    assert float(metrics["f1"].result()) == pytest.approx(4 / 8)
    assert float(metrics["precision"].result()) == pytest.approx(2 / 3)
    assert float(metrics["recall"].result()) == pytest.approx(2 / 5)
    assert scores_from_counts(2, 1, 3) == pytest.approx({"iou": 2 / 6, "f1": 0.5, "precision": 2 / 3, "recall": 0.4})
    assert confusion_counts([1, 0, 1, 1], [1, 1, 0, 0]) == (1.0, 1.0, 2.0)


def test_metric_respects_weights():
    metric = BinarySegmentationScore("iou")
    metric.update_state(
        tf.constant([[1.0, 0.0, 1.0]]), tf.constant([[1.0, 1.0, -1.0]]), sample_weight=tf.constant([[1.0, 0.0, 1.0]])
    )
    assert float(metric.result()) == pytest.approx(0.5)


def test_segmentation_loss_weights_and_precision_by_hand():
    """The overridden __call__: padding weight 0 removes pixels exactly; half-precision logits give a float32 loss."""
    loss = SegmentationLoss("bce+dice")
    weight = np.array([1, 1, 1, 0, 0, 0], "float32").reshape(1, 2, 3, 1)  # the second row is padding
    kept = float(loss(Y[:, :1], Z[:, :1]))  # the first row alone, no weights
    assert float(loss(Y, Z, sample_weight=weight)) == pytest.approx(kept, rel=1e-6)
    p = np.array([_sigmoid(z) for z in Z[:, :1].ravel()])
    y = Y[:, :1].ravel()
    expected = np.mean([-math.log(q) if t else -math.log(1 - q) for t, q in zip(y, p)])
    expected += 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    assert kept == pytest.approx(expected, rel=1e-5)
    half = loss(tf.constant(Y, tf.float16), tf.constant(Z, tf.float16))
    assert half.dtype == tf.float32
    assert float(half) == pytest.approx(float(loss(Y, Z)), abs=2e-3)  # float16 rounding of the logits only


def test_multi_target_loss_and_metrics_use_the_right_channels():
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=(2, 8, 8, 3)) > 0.6).astype("float32")
    z = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    loss = SegmentationLoss("dice+focal", target_weights=[1.0, 0.5, 0.25])(y, z)
    expected = sum(
        w * (float(dice(y[..., c : c + 1], z[..., c : c + 1])) + float(focal(y[..., c : c + 1], z[..., c : c + 1])))
        for c, w in enumerate([1.0, 0.5, 0.25])
    )
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    iou = BinarySegmentationScore("iou")
    iou.update_state(y, z)  # the building channel only
    single = BinarySegmentationScore("iou")
    single.update_state(y[..., :1], z[..., :1])
    assert float(iou.result()) == pytest.approx(float(single.result()))
    assert float(iou.result()) != pytest.approx(float(BinarySegmentationScore("iou")(y[..., 1:2], z[..., 1:2])))
