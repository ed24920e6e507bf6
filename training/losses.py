"""Segmentation losses on building logits, written here.

Every loss takes ``y_true`` in {0, 1} (N, H, W, 1), logits of the same shape and an
optional per-pixel weight (0 marks padding to ignore), and returns a scalar. A model with
several targets (building, border, contact: ``data.targets``) gets the same terms on each
channel, summed with one weight per channel (``SegmentationLoss(target_weights=...)``).
"""

import math
import re

import keras
import tensorflow as tf

EPSILON = 1.0  # additive smoothing of the soft overlap losses


def _flat(y_true, logits, weight):
    y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1])
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1])
    weight = tf.ones_like(y_true) if weight is None else tf.reshape(tf.cast(weight, tf.float32), [-1])
    return y_true, logits, weight


def _weighted_mean(values, weight):
    return tf.reduce_sum(values * weight) / tf.maximum(tf.reduce_sum(weight), 1e-6)


def bce(y_true, logits, weight=None):
    """Binary cross-entropy with logits, averaged over the weighted pixels."""
    y, z, w = _flat(y_true, logits, weight)
    return _weighted_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z), w)


def focal(y_true, logits, weight=None, *, alpha=0.25, gamma=2.0):
    """Focal loss (Lin et al., 2017): BCE scaled by alpha_t * (1 - p_t)^gamma."""
    y, z, w = _flat(y_true, logits, weight)
    p = tf.sigmoid(z)
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = y * alpha + (1 - y) * (1 - alpha)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)
    return _weighted_mean(alpha_t * tf.pow(1 - p_t, gamma) * ce, w)


def dice(y_true, logits, weight=None):
    """1 - soft Dice over the whole batch: 1 - (2 sum(p y) + e) / (sum(p) + sum(y) + e)."""
    y, z, w = _flat(y_true, logits, weight)
    p = tf.sigmoid(z)
    intersection = tf.reduce_sum(w * p * y)
    return 1 - (2 * intersection + EPSILON) / (tf.reduce_sum(w * p) + tf.reduce_sum(w * y) + EPSILON)


def jaccard(y_true, logits, weight=None):
    """1 - soft IoU over the whole batch: 1 - (sum(p y) + e) / (sum(p + y - p y) + e)."""
    y, z, w = _flat(y_true, logits, weight)
    p = tf.sigmoid(z)
    intersection = tf.reduce_sum(w * p * y)
    union = tf.reduce_sum(w * (p + y - p * y))
    return 1 - (intersection + EPSILON) / (union + EPSILON)


def lovasz(y_true, logits, weight=None):
    """Lovasz hinge (Berman et al., 2018) over all weighted pixels of the batch.

    A convex surrogate of 1 - IoU: hinge errors sorted in decreasing order, weighted by
    the gradient of the Lovasz extension of the Jaccard loss.
    """
    y, z, w = _flat(y_true, logits, weight)
    keep = w > 0
    y, z = tf.boolean_mask(y, keep), tf.boolean_mask(z, keep)
    errors = 1.0 - z * (2.0 * y - 1.0)
    order = tf.argsort(errors, direction="DESCENDING")
    errors_sorted = tf.gather(errors, order)
    y_sorted = tf.gather(y, order)
    positives = tf.reduce_sum(y_sorted)
    intersection = positives - tf.cumsum(y_sorted)
    union = positives + tf.cumsum(1.0 - y_sorted)
    jaccard_curve = 1.0 - intersection / tf.maximum(union, 1e-6)
    grad = tf.concat([jaccard_curve[:1], jaccard_curve[1:] - jaccard_curve[:-1]], 0)
    return tf.tensordot(tf.nn.relu(errors_sorted), grad, 1)


LOSSES = {"bce": bce, "dice": dice, "focal": focal, "jaccard": jaccard, "lovasz": lovasz}


def parse_loss(spec):
    """'dice+focal' -> [(1.0, "dice"), (1.0, "focal")]; 'bce+0.5*dice' -> [(1.0, "bce"), (0.5, "dice")].

    Each term is a loss name, optionally after a positive weight and '*'. Raises ValueError naming the
    valid terms, or the weight that is not a positive number.
    """
    terms = []
    for part in spec.split("+"):
        weight, _, name = part.strip().rpartition("*")
        name = name.strip().lower()
        try:
            factor = float(weight) if weight.strip() else 1.0
        except ValueError:
            factor = float("nan")
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(
                f"Loss term {part.strip()!r}: the weight before '*' must be a positive number, e.g. "
                f"'bce+0.5*dice'. Received: loss={spec!r}"
            )
        terms.append((factor, name))
    unknown = [name for _, name in terms if name not in LOSSES]
    if unknown:
        raise ValueError(
            f"Unknown loss term(s) {unknown}. Valid terms: {', '.join(LOSSES)}; combine them with '+', "
            f"each with an optional weight, e.g. 'dice+focal' or 'bce+0.5*dice'. Received: loss={spec!r}"
        )
    return terms


def _name_of(spec):
    """A Keras-safe loss name: 'dice+focal' -> 'dice_focal', 'bce+0.5*dice' -> 'bce_0_5_dice'."""
    return re.sub(r"[^0-9a-z_]+", "_", spec.lower().replace(" ", "")).strip("_")


class SegmentationLoss(keras.losses.Loss):
    """The weighted sum of the named loss terms; ``sample_weight`` is a per-pixel weight map.

    ``target_weights``: one weight per target channel (the building channel first); the loss
    is the weighted sum of the terms on each channel. None: one channel, weight 1.
    """

    def __init__(self, spec="dice+focal", name=None, target_weights=None, **kwargs):
        super().__init__(name=name or _name_of(spec), **kwargs)
        self.spec = spec
        self.terms = parse_loss(spec)
        self.target_weights = None if target_weights is None else [float(w) for w in target_weights]

    def _terms(self, y_true, y_pred, sample_weight):
        return tf.add_n([factor * LOSSES[name](y_true, y_pred, sample_weight) for factor, name in self.terms])

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Overridden on purpose: Keras' Loss.__call__ reduces per-element values with the
        # sample weights, but Dice, Jaccard and Lovasz are ratios over the whole batch that
        # need the per-pixel weight inside (0 on padding). Every term casts to float32
        # itself (_flat) and reduces over the weighted pixels; tests/test_losses_metrics.py
        # checks both against a hand computation, under mixed precision too.
        if self.target_weights is None:
            return self._terms(y_true, y_pred, sample_weight)
        per_target = [
            weight * self._terms(y_true[..., c : c + 1], y_pred[..., c : c + 1], sample_weight)
            for c, weight in enumerate(self.target_weights)
        ]
        return tf.add_n(per_target)

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"spec": self.spec, "name": self.name, "target_weights": self.target_weights}
