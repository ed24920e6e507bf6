"""The "CNN with fully-connected layers" baseline that FCN is compared against.

encoder -> 1x1 channel reduction -> flatten -> dense -> dense -> reshape to a coarse mask
at stride 8 -> (the segmenter upsamples bilinearly). The dense layers tie the model to
one input size, which is exactly the limitation FCN removed.
"""

from keras import layers

from blocks import conv_bn_act
from models.decoders.registry import register_decoder
from models.registry import OUTPUT_STRIDE

REDUCED_CHANNELS = 32
HIDDEN_UNITS = 512
MASK_STRIDE = 8


@register_decoder("cnn", fixed_size=True)
def cnn(pyramid, channels, num_classes):
    """Dense head on P5 predicting a coarse (H/8, W/8) mask.

    Args:
        pyramid: {"P1".."P5"} feature tensors.
        channels: their channel counts.
        num_classes: output classes.

    Returns:
        (logits at stride 8, 8).
    """
    p5 = pyramid["P5"]
    if p5.shape[1] is None or p5.shape[2] is None:
        raise ValueError(
            "The 'cnn' baseline has dense layers and needs a fixed input size: build it with "
            f"input_shape=(H, W, 3), H and W multiples of {OUTPUT_STRIDE} (e.g. (256, 256, 3)), and feed "
            f"images of exactly that size. Received: a P5 feature map of shape {p5.shape}"
        )
    del channels
    # P5 is at the output stride, the coarse mask at MASK_STRIDE
    mask_h, mask_w = p5.shape[1] * OUTPUT_STRIDE // MASK_STRIDE, p5.shape[2] * OUTPUT_STRIDE // MASK_STRIDE
    x = conv_bn_act(p5, REDUCED_CHANNELS, 1, activation="relu", name="cnn_reduce")
    x = layers.Flatten(name="cnn_flatten")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", name="cnn_fc1")(x)
    x = layers.Dropout(0.2, name="cnn_dropout")(x)
    x = layers.Dense(mask_h * mask_w * num_classes, name="cnn_fc2")(x)
    x = layers.Reshape((mask_h, mask_w, num_classes), name="cnn_mask")(x)
    return x, MASK_STRIDE
