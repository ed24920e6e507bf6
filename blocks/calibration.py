"""The model's last layer: logits shifted by a calibrated offset, so 0.5 is the decision threshold."""

import math

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="buildings")
class LogitOffset(layers.Layer):
    """Subtract a fixed ``offset`` from the logits (float32 output).

    A model trained with Dice and focal losses is not calibrated: its best threshold on whole
    images is often far from probability 0.5 (0.8 for U-Net/B0 on the sample, README). train.py
    measures that threshold ``t`` on training images and stores ``offset = log(t / (1 - t))``
    here, so ``sigmoid(logits - offset) >= 0.5`` exactly where the uncalibrated probability is
    ``>= t``. The offset is part of the layer's config (saved in model.keras, not in the weight
    checkpoints), and every tool that reads probabilities at 0.5 then uses the calibrated threshold.
    """

    def __init__(self, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.offset = float(offset)

    def call(self, logits):
        return logits - self.offset if self.offset else logits

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


def logit_offset(x, *, name="logits"):
    return LogitOffset(dtype="float32", name=name)(x)


def threshold_offset(threshold):
    """The logit offset that moves probability ``threshold`` to 0.5."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"A decision threshold must lie in (0, 1). Received: threshold={threshold}")
    return math.log(threshold / (1.0 - threshold))
