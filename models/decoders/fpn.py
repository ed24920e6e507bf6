"""Feature Pyramid Network decoder for segmentation.

Top-down pathway of Lin et al. (2017): 1x1 lateral convolutions, nearest-neighbour 2x
upsampling and element-wise ADDITION, then a 3x3 smoothing conv per level. Segmentation
branches of Kirillov et al. (Panoptic FPN, 2019): each level goes through 3x3
conv-BN-ReLU + 2x upsampling steps until stride 4, the branches are summed, and a 1x1
conv predicts the classes at stride 4.
"""

from keras import layers

from blocks import conv_bn_act
from blocks.upsampling import classifier, upsample
from models.decoders.registry import register_decoder

PYRAMID_CHANNELS = 256
SEGMENTATION_CHANNELS = 128


@register_decoder("fpn")
def fpn(pyramid, channels, num_classes):
    """FPN over P2..P5; returns (logits at stride 4, 4)."""
    # top-down pathway with lateral connections
    merged = {}
    x = layers.Conv2D(PYRAMID_CHANNELS, 1, name="fpn_lateral_p5")(pyramid["P5"])
    merged[5] = x
    for level in (4, 3, 2):
        lateral = layers.Conv2D(PYRAMID_CHANNELS, 1, name=f"fpn_lateral_p{level}")(pyramid[f"P{level}"])
        x = upsample(x, 2, interpolation="nearest", name=f"fpn_topdown_p{level}")
        x = layers.Add(name=f"fpn_merge_p{level}")([x, lateral])
        merged[level] = x
    # smoothing and per-level segmentation branches, all brought to stride 4
    branches = []
    for level, feature in sorted(merged.items()):
        y = layers.Conv2D(PYRAMID_CHANNELS, 3, padding="same", name=f"fpn_smooth_p{level}")(feature)
        for step in range(max(level - 2, 1)):
            y = conv_bn_act(y, SEGMENTATION_CHANNELS, 3, activation="relu", name=f"fpn_seg_p{level}_{step}")
            if level > 2:
                y = upsample(y, 2, name=f"fpn_seg_p{level}_up{step}")
        branches.append(y)
    x = layers.Add(name="fpn_sum")(branches)
    return classifier(x, num_classes, name="fpn_logits"), 4
