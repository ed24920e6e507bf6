"""IoU, F1, precision and recall at a 0.5 threshold, accumulated over a whole dataset.

They score the building channel (the first) of models with several targets.

Each metric keeps running true-positive, false-positive and false-negative pixel counts
and computes its ratio from the totals, so the value is the dataset-level score, not an
average of per-batch scores. Pixels with weight 0 (padding) are ignored.
"""

import time

import keras
import tensorflow as tf

KINDS = ("iou", "f1", "precision", "recall")


class BinarySegmentationScore(keras.metrics.Metric):
    """One of iou / f1 / precision / recall of sigmoid(logits) > 0.5 (i.e. logits > 0)."""

    def __init__(self, kind="iou", name=None, **kwargs):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}. Received: kind={kind!r}")
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.fn = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_pred.shape) == 4 and y_pred.shape[-1] > 1:  # several targets: score the building channel
            y_true, y_pred = y_true[..., :1], y_pred[..., :1]
        y = tf.cast(y_true > 0.5, tf.float32)
        p = tf.cast(y_pred > 0.0, tf.float32)
        w = (
            tf.ones_like(y)
            if sample_weight is None
            else tf.broadcast_to(tf.cast(sample_weight, tf.float32), tf.shape(y))
        )
        self.tp.assign_add(tf.reduce_sum(w * p * y))
        self.fp.assign_add(tf.reduce_sum(w * p * (1 - y)))
        self.fn.assign_add(tf.reduce_sum(w * (1 - p) * y))

    def result(self):
        tp, fp, fn = self.tp, self.fp, self.fn
        num = {"iou": tp, "f1": 2 * tp, "precision": tp, "recall": tp}[self.kind]
        den = {"iou": tp + fp + fn, "f1": 2 * tp + fp + fn, "precision": tp + fp, "recall": tp + fn}[self.kind]
        return tf.where(den > 0, num / tf.maximum(den, 1e-12), 1.0)

    def reset_state(self):
        for variable in (self.tp, self.fp, self.fn):
            variable.assign(0.0)

    def get_config(self):
        return {"kind": self.kind, "name": self.name}


def segmentation_metrics():
    """The four metrics train.py reports, named iou, f1, precision, recall."""
    return [BinarySegmentationScore(kind) for kind in KINDS]


class ThroughputMeter(keras.callbacks.Callback):
    """Training images/s over timed train batches (the first two, tracing and warm-up, skipped)."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.batches, self.seconds, self._start, self._seen = 0, 0.0, 0.0, 0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if self._seen > 2:
            self.batches += 1
            self.seconds += time.perf_counter() - self._start

    def images_per_second(self):
        return self.batch_size * self.batches / self.seconds if self.seconds else 0.0
