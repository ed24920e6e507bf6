"""Input preprocessing that lives inside every model: raw uint8-range RGB (and any further bands) in."""

import numpy as np
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x, *, name="preprocess"):
    """Scale raw 0..255 RGB to [0, 1], then standardise with ImageNet statistics.

    The statistics sit in a Normalization layer's (non-trainable) weights, exactly as in
    keras.applications.EfficientNet, so a weight copy can carry them over. Bands after the
    third (``--bands``) take the mean of the RGB statistics.
    """
    x = layers.Rescaling(1.0 / 255.0, name=f"{name}_rescale")(x)
    norm = layers.Normalization(axis=-1, name=f"{name}_norm")
    x = norm(x)
    bands = int(x.shape[-1])
    set_normalization(norm, extend_bands(IMAGENET_MEAN, bands), extend_bands(np.square(IMAGENET_STD), bands))
    return x


def extend_bands(values, bands, *, axis=0, scale=1.0):
    """``values`` of three RGB bands along ``axis`` extended to ``bands``: every further band is the mean of the
    three, times ``scale``; the RGB values themselves unchanged. Fewer than three bands keep the first ones."""
    values = np.asarray(values)
    if bands <= values.shape[axis]:
        return np.take(values, range(bands), axis=axis)
    extra = np.mean(values, axis=axis, keepdims=True) * scale
    return np.concatenate([values] + [extra] * (bands - values.shape[axis]), axis=axis)


def set_normalization(layer, mean, variance):
    """Assign a Normalization layer's mean and variance and refresh its cached constants."""
    layer.adapt_mean.assign(np.asarray(mean, dtype="float32"))
    layer.adapt_variance.assign(np.asarray(variance, dtype="float32"))
    layer.finalize_state()


def centre_scale(x, *, name="preprocess"):
    """(x - 127) / 128: raw 0..255 RGB to about [-1, 1], as the EfficientNet-Lite checkpoints expect."""
    return layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name=f"{name}_rescale")(x)
