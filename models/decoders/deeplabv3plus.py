"""DeepLabV3+ decoder (Chen et al., 2018): ASPP on the deepest features + a low-level skip.

The zoo's encoders are not dilated (output stride 32, not 16), so the atrous rates are
half of the paper's output-stride-16 rates (6, 12, 18 -> 3, 6, 9) to cover the same image
context. The image-pooling branch is added after the projection: a 1x1 projection of a
concatenation equals the sum of the per-branch projections, and the pooled branch is
spatially constant, so a broadcast add reproduces it for any input size.
"""

from keras import layers

from blocks import conv_bn_act
from blocks.conv import batch_norm
from blocks.upsampling import classifier, upsample
from models.decoders.registry import register_decoder

ASPP_CHANNELS = 256
ATROUS_RATES = (3, 6, 9)
LOW_LEVEL_CHANNELS = 48


def aspp(x, *, name):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3, and image pooling."""
    branches = [conv_bn_act(x, ASPP_CHANNELS, 1, activation="relu", name=f"{name}_b0")]
    for rate in ATROUS_RATES:
        y = layers.Conv2D(
            ASPP_CHANNELS, 3, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_r{rate}_conv"
        )(x)
        y = batch_norm(y, name=f"{name}_r{rate}_bn")
        branches.append(layers.Activation("relu", name=f"{name}_r{rate}_act")(y))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn_act(pooled, ASPP_CHANNELS, 1, activation="relu", name=f"{name}_pool_proj")
    pooled = layers.Conv2D(ASPP_CHANNELS, 1, use_bias=False, name=f"{name}_pool_to_out")(pooled)
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    y = layers.Conv2D(ASPP_CHANNELS, 1, use_bias=False, name=f"{name}_out_conv")(y)
    y = layers.Add(name=f"{name}_add_pool")([y, pooled])
    y = batch_norm(y, name=f"{name}_out_bn")
    return layers.Activation("relu", name=f"{name}_out_act")(y)


@register_decoder("deeplabv3plus")
def deeplabv3plus(pyramid, channels, num_classes):
    """ASPP on P5, 8x up to stride 4, concat with projected P2, two 3x3 convs; stride 4."""
    x = aspp(pyramid["P5"], name="aspp")
    x = upsample(x, 8, name="deeplab_up")
    low = conv_bn_act(pyramid["P2"], LOW_LEVEL_CHANNELS, 1, activation="relu", name="deeplab_low")
    x = layers.Concatenate(name="deeplab_concat")([x, low])
    x = conv_bn_act(x, ASPP_CHANNELS, 3, activation="relu", name="deeplab_fuse1")
    x = conv_bn_act(x, ASPP_CHANNELS, 3, activation="relu", name="deeplab_fuse2")
    return classifier(x, num_classes, name="deeplab_logits"), 4
