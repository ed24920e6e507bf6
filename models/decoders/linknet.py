"""LinkNet decoder (Chaurasia & Culurciello, 2017): ADDITIVE skips, cheap decoder blocks.

Each decoder block: 1x1 conv (C/4) -> 3x3 transposed conv stride 2 (C/4) -> 1x1 conv to
the skip's channel count, then added to the encoder feature of that stride.
"""

from keras import layers

from blocks import conv_bn_act
from blocks.upsampling import classifier
from models.decoders.registry import register_decoder

FINAL_CHANNELS = 32


def _transpose_bn_relu(x, filters, *, name):
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_act")(x)


def linknet_block(x, filters_out, *, name):
    """1x1 reduce -> 2x transposed conv -> 1x1 expand to ``filters_out``."""
    reduced = max(int(x.shape[-1]) // 4, 8)
    x = conv_bn_act(x, reduced, 1, activation="relu", name=f"{name}_reduce")
    x = _transpose_bn_relu(x, reduced, name=f"{name}_up")
    return conv_bn_act(x, filters_out, 1, activation="relu", name=f"{name}_expand")


@register_decoder("linknet")
def linknet(pyramid, channels, num_classes):
    """LinkNet decoder P5 -> P1 with additive skips; returns (logits at stride 1, 1)."""
    x = pyramid["P5"]
    for level in (4, 3, 2, 1):
        x = linknet_block(x, channels[f"P{level}"], name=f"linknet_dec{level}")
        x = layers.Add(name=f"linknet_skip{level}")([x, pyramid[f"P{level}"]])
    # final block: back to the input resolution
    x = _transpose_bn_relu(x, FINAL_CHANNELS, name="linknet_final_up")
    x = conv_bn_act(x, FINAL_CHANNELS, 3, activation="relu", name="linknet_final_conv")
    return classifier(x, num_classes, name="linknet_logits"), 1
