"""Input preprocessing that lives inside every model: raw uint8-range RGB in."""

import numpy as np
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x, *, name="preprocess"):
    """Scale raw 0..255 RGB to [0, 1], then standardise with ImageNet statistics.

    The statistics sit in a Normalization layer's (non-trainable) weights, exactly as in
    keras.applications.EfficientNet, so a weight copy can carry them over.
    """
    x = layers.Rescaling(1.0 / 255.0, name=f"{name}_rescale")(x)
    norm = layers.Normalization(axis=-1, name=f"{name}_norm")
    x = norm(x)
    set_normalization(norm, IMAGENET_MEAN, np.square(IMAGENET_STD))
    return x


def set_normalization(layer, mean, variance):
    """Assign a Normalization layer's mean and variance and refresh its cached constants."""
    layer.adapt_mean.assign(np.asarray(mean, dtype="float32"))
    layer.adapt_variance.assign(np.asarray(variance, dtype="float32"))
    layer.finalize_state()


def centre_scale(x, *, name="preprocess"):
    """(x - 127) / 128: raw 0..255 RGB to about [-1, 1], as the EfficientNet-Lite checkpoints expect."""
    return layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name=f"{name}_rescale")(x)
