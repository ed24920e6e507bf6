"""Fully convolutional networks FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, 2015).

Class scores from 1x1 convolutions on P5 (and P4, P3 for the finer variants); coarse
scores are upsampled 2x with learned Conv2DTranspose layers initialised to bilinear
interpolation and fused with finer scores by summation; a final learned upsampling
(32x, 16x or 8x) returns to the input resolution.
"""

from keras import layers

from blocks.upsampling import bilinear_transpose, classifier
from models.decoders.registry import register_decoder


def _fcn(pyramid, num_classes, finest_level, prefix):
    scores = classifier(pyramid["P5"], num_classes, name=f"{prefix}_score_p5")
    for level in range(4, finest_level - 1, -1):
        scores = bilinear_transpose(scores, 2, name=f"{prefix}_up_to_p{level}")
        skip = classifier(pyramid[f"P{level}"], num_classes, name=f"{prefix}_score_p{level}")
        scores = layers.Add(name=f"{prefix}_fuse_p{level}")([scores, skip])
    factor = 2**finest_level
    return bilinear_transpose(scores, factor, name=f"{prefix}_up{factor}"), 1


@register_decoder("fcn32")
def fcn32(pyramid, channels, num_classes):
    """FCN-32s: scores on P5, one 32x learned upsampling."""
    return _fcn(pyramid, num_classes, 5, "fcn32")


@register_decoder("fcn16")
def fcn16(pyramid, channels, num_classes):
    """FCN-16s: P5 scores up 2x + P4 scores, then 16x upsampling."""
    return _fcn(pyramid, num_classes, 4, "fcn16")


@register_decoder("fcn8")
def fcn8(pyramid, channels, num_classes):
    """FCN-8s: P5 -> +P4 -> +P3 score fusion, then 8x upsampling."""
    return _fcn(pyramid, num_classes, 3, "fcn8")
