"""Upsampling and the per-pixel classifier: the layers the decoders share."""

import numpy as np
from keras import layers


def upsample(x, factor, *, interpolation="bilinear", name):
    """Resize by an integer factor (works for unknown spatial sizes)."""
    return layers.UpSampling2D(size=factor, interpolation=interpolation, name=name)(x)


def classifier(x, num_classes, *, kernel_size=1, name):
    """The per-pixel class-score convolution (with bias, linear)."""
    return layers.Conv2D(num_classes, kernel_size, padding="same", name=name)(x)


def bilinear_kernel(factor, channels):
    """A Conv2DTranspose kernel (2f x 2f x C x C) that performs bilinear upsampling by f.

    Each channel maps onto itself with the tent filter of Long et al.'s FCN; with stride f
    and "same" padding this reproduces half-pixel bilinear resizing away from the borders.
    """
    size = 2 * factor
    center = factor - 0.5
    taps = 1 - np.abs(np.arange(size) - center) / factor
    tent = np.outer(taps, taps).astype("float32")
    kernel = np.zeros((size, size, channels, channels), dtype="float32")
    for channel in range(channels):
        kernel[:, :, channel, channel] = tent
    return kernel


def bilinear_transpose(x, factor, *, name):
    """Learned upsampling by ``factor``: Conv2DTranspose initialised to bilinear interpolation."""
    channels = int(x.shape[-1])
    layer = layers.Conv2DTranspose(channels, 2 * factor, strides=factor, padding="same", use_bias=False, name=name)
    y = layer(x)
    layer.kernel.assign(bilinear_kernel(factor, channels))
    return y
