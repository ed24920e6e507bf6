"""The model's last layer: logits shifted by a calibrated offset, so 0.5 is the decision threshold.

A model trained with Dice and focal losses is not calibrated: its best threshold on whole
images is often far from probability 0.5 (0.8 for U-Net/B0 on the sample, README). train.py
measures that threshold ``t`` on training images and stores ``offset = log(t / (1 - t))`` in
the last layer, so ``sigmoid(logits - offset) >= 0.5`` exactly where the uncalibrated
probability is ``>= t``, and every tool that reads probabilities at 0.5 uses the calibrated
threshold. The layer is Keras' own ``Rescaling`` (scale 1, offset ``-offset``, float32): the
offset is saved in model.keras's config, not in the weight checkpoints, and the archive still
loads with plain ``keras.models.load_model``, no custom objects.
"""

import math

from keras import layers


def logit_offset(x, *, name="logits"):
    """The final float32 layer, with offset 0 until a run calibrates it (``set_offset``)."""
    return layers.Rescaling(1.0, offset=0.0, dtype="float32", name=name)(x)


def set_offset(layer, offset, separation_offset=0.0):
    """Make ``layer`` (a ``logit_offset`` layer) subtract ``offset`` from the building channel and
    ``separation_offset`` from the separation channels (if any); functions traced before keep the old ones."""
    if not isinstance(layer, layers.Rescaling) or layer.scale != 1.0:
        raise ValueError(
            f"The last layer {layer.name!r} is a {type(layer).__name__}, not the offset layer of blocks.calibration "
            "(the model was built before calibrated thresholds existed); rebuild it with create_model and copy its "
            "weights to calibrate it."
        )
    channels = int(layer.output.shape[-1])
    # the building channel (the first) has its threshold, the separation channels share theirs
    layer.offset = -float(offset) if channels == 1 else [-float(offset)] + [-float(separation_offset)] * (channels - 1)


def threshold_offset(threshold):
    """The logit offset that moves probability ``threshold`` to 0.5."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"A decision threshold must lie in (0, 1). Received: threshold={threshold}")
    return math.log(threshold / (1.0 - threshold))
