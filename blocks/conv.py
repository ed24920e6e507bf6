"""Convolution blocks shared by every encoder and decoder.

Each block is a plain function: a tensor in, a tensor out, with every layer named
``f"{name}_<role>"`` so that weights can be inspected and copied by role.
"""

import keras
from keras import layers


# He-style initialisers, as in the EfficientNet reference implementation. A new instance
# per layer: a Keras 3 initializer instance fixes its seed when created, so one instance
# shared by several layers gives every kernel of the same shape the same initial values.
def conv_init():
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="truncated_normal")


def dense_init():
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_out", distribution="uniform")


# BatchNormalization settings of the published EfficientNet / MobileNet family.
BN_EPSILON = 1e-3


def batch_norm(x, *, name):
    """BatchNormalization over the channel axis with the zoo's epsilon."""
    return layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=name)(x)


def conv_bn_act(x, filters, kernel_size=3, *, strides=1, activation="swish", use_bn=True, name):
    """Conv2D (no bias) -> BatchNorm -> activation.

    Args:
        x: input tensor (N, H, W, C).
        filters: output channels.
        kernel_size: square kernel size.
        strides: 1 or 2; "same" padding, so the output is ceil(H / strides).
        activation: a Keras activation name, or None for a linear output.
        use_bn: when False the conv has a bias and no BatchNorm follows.
        name: prefix of the layer names.

    Returns:
        The output tensor (N, ceil(H / strides), ceil(W / strides), filters).
    """
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=not use_bn,
        kernel_initializer=conv_init(),
        name=f"{name}_conv",
    )(x)
    if use_bn:
        x = batch_norm(x, name=f"{name}_bn")
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_act")(x)
    return x


def depthwise_bn_act(x, kernel_size=3, *, strides=1, activation="swish", name):
    """DepthwiseConv2D (no bias) -> BatchNorm -> activation."""
    x = layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=conv_init(),
        name=f"{name}_dwconv",
    )(x)
    x = batch_norm(x, name=f"{name}_dwbn")
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_dwact")(x)
    return x


def depthwise_separable_conv(x, filters, kernel_size=3, *, strides=1, activation="relu", name):
    """Depthwise kxk conv -> BN -> act, then pointwise 1x1 conv -> BN -> act.

    The MobileNet-v1 block: about ``k*k + filters`` multiply-adds per input channel and
    pixel instead of ``k*k*filters`` for a full convolution.

    Args:
        x: input tensor (N, H, W, C).
        filters: output channels of the pointwise conv.
        kernel_size: depthwise kernel size.
        strides: stride of the depthwise conv.
        activation: activation after each of the two convolutions.
        name: prefix of the layer names.

    Returns:
        The output tensor (N, ceil(H / strides), ceil(W / strides), filters).
    """
    x = depthwise_bn_act(x, kernel_size, strides=strides, activation=activation, name=name)
    return conv_bn_act(x, filters, 1, activation=activation, name=f"{name}_pw")


def squeeze_excite(x, reduced_filters, *, activation="swish", name):
    """Squeeze-and-excitation: rescale channels by a gate computed from their means.

    global average pool -> 1x1 conv (reduce, activation) -> 1x1 conv (expand, sigmoid)
    -> multiply with the input. Layers are named ``{name}_squeeze``, ``{name}_reduce``,
    ``{name}_expand``, ``{name}_excite``.

    Args:
        x: input tensor (N, H, W, C).
        reduced_filters: channels of the bottleneck.
        activation: activation of the reduce conv.
        name: prefix of the layer names.

    Returns:
        A tensor shaped like ``x``.
    """
    channels = x.shape[-1]
    se = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    se = layers.Conv2D(
        reduced_filters,
        1,
        activation=activation,
        kernel_initializer=conv_init(),
        name=f"{name}_reduce",
    )(se)
    se = layers.Conv2D(channels, 1, activation="sigmoid", kernel_initializer=conv_init(), name=f"{name}_expand")(se)
    return layers.Multiply(name=f"{name}_excite")([x, se])
