"""Hand-written building blocks: plain functions from tensor to tensor."""

from blocks.conv import conv_bn_act, depthwise_separable_conv, squeeze_excite
from blocks.mbconv import mbconv
from blocks.scaling import round_filters, round_repeats

__all__ = [
    "conv_bn_act",
    "depthwise_separable_conv",
    "squeeze_excite",
    "mbconv",
    "round_filters",
    "round_repeats",
]
