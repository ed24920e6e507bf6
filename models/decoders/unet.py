"""U-Net decoder (Ronneberger et al., 2015) over any encoder pyramid.

Each stage upsamples 2x, CONCATENATES the encoder feature of that stride, and applies
two 3x3 conv-BN-ReLU. Five stages walk from P5 (stride 32) to the input resolution; the
last one has no skip because encoders start at stride 2, unless the segmenter hands over the
input image itself as "P0" (``create_model(..., fine_skip=True)``), as the original U-Net's
full-resolution skip: then details finer than the encoder's first stride (one-pixel gaps
between buildings) reach the last stage.
"""

from keras import layers

from blocks import conv_bn_act
from blocks.upsampling import classifier, upsample
from models.decoders.registry import register_decoder

DECODER_FILTERS = (256, 128, 64, 32, 16)


@register_decoder("unet", fine_skip=True)
def unet(pyramid, channels, num_classes):
    """Symmetric U-Net decoder; returns (logits at stride 1, 1)."""
    x = pyramid["P5"]
    for index, filters in enumerate(DECODER_FILTERS):
        level = 4 - index  # P4, P3, P2, P1, then P0 when given
        name = f"unet_stage{index + 1}"
        x = upsample(x, 2, interpolation="nearest", name=f"{name}_up")
        if f"P{level}" in pyramid:
            x = layers.Concatenate(name=f"{name}_concat")([x, pyramid[f"P{level}"]])
        x = conv_bn_act(x, filters, 3, activation="relu", name=f"{name}_conv1")
        x = conv_bn_act(x, filters, 3, activation="relu", name=f"{name}_conv2")
    return classifier(x, num_classes, kernel_size=3, name="unet_logits"), 1
