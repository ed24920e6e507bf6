"""MBConv: the inverted residual block of MobileNetV2 and EfficientNet."""

from keras import layers

from blocks.conv import conv_bn_act, depthwise_bn_act, squeeze_excite


def mbconv(
    x,
    filters_out,
    *,
    kernel_size=3,
    strides=1,
    expand_ratio=6,
    se_ratio=0.25,
    drop_rate=0.0,
    activation="swish",
    name,
):
    """Inverted residual: expand 1x1 -> depthwise kxk -> squeeze-excite -> project 1x1.

    The projection is linear (no activation). An identity skip is added only when the
    block keeps the resolution and the channel count; stochastic depth then drops the
    whole residual branch per sample with probability ``drop_rate`` during training.

    Args:
        x: input tensor (N, H, W, C_in).
        filters_out: output channels.
        kernel_size: depthwise kernel size (3 or 5 in EfficientNet).
        strides: depthwise stride, 1 or 2.
        expand_ratio: hidden channels = C_in * expand_ratio; 1 skips the expand conv.
        se_ratio: squeeze-excite bottleneck = max(1, int(C_in * se_ratio)); 0 disables SE.
        drop_rate: stochastic-depth probability of the residual branch.
        activation: activation of expand, depthwise and SE-reduce.
        name: prefix of the layer names.

    Returns:
        The output tensor (N, ceil(H / strides), ceil(W / strides), filters_out).
    """
    if strides not in (1, 2):
        raise ValueError(f"mbconv strides must be 1 or 2. Received: strides={strides}")
    if not 0.0 <= se_ratio <= 1.0:
        raise ValueError(f"se_ratio must lie in [0, 1]. Received: se_ratio={se_ratio}")
    inputs = x
    filters_in = x.shape[-1]
    hidden = filters_in * expand_ratio

    # expand
    if expand_ratio != 1:
        x = conv_bn_act(x, hidden, 1, activation=activation, name=f"{name}_expand")
    # depthwise
    x = depthwise_bn_act(x, kernel_size, strides=strides, activation=activation, name=name)
    # squeeze-excite
    if se_ratio > 0:
        reduced = max(1, int(filters_in * se_ratio))
        x = squeeze_excite(x, reduced, activation=activation, name=f"{name}_se")
    # project (linear)
    x = conv_bn_act(x, filters_out, 1, activation=None, name=f"{name}_project")

    if strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # Stochastic depth: one Bernoulli draw per sample, broadcast over H, W, C.
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x
