"""Analytic multiply-add (MAC) counts, layer by layer.

Convention (the one of the EfficientNet paper's FLOPs column): one multiply-add of a
convolution or dense kernel counts once; biases, batch norm (folded into the conv at
inference), activations, pooling, resizing and element-wise layers count zero. A layer
that owns weights but is not known here raises, so nothing is silently left out.
"""

import math

from keras import layers

from blocks.normalization import ImageStandardization

# Weight-free layers whose arithmetic is negligible next to the convolutions.
_FREE = (
    layers.InputLayer,
    layers.Activation,
    layers.ReLU,
    layers.Add,
    layers.Multiply,
    layers.Concatenate,
    layers.Dropout,
    layers.Rescaling,
    layers.Reshape,
    layers.Flatten,
    layers.ZeroPadding2D,
    layers.Cropping2D,
    layers.MaxPooling2D,
    layers.AveragePooling2D,
    layers.GlobalAveragePooling2D,
    layers.GlobalMaxPooling2D,
    layers.UpSampling2D,
    layers.Resizing,
    layers.Lambda,
    layers.Identity,
    layers.Normalization,
    layers.BatchNormalization,
    ImageStandardization,
)


def _spatial(shape):
    return int(shape[1]) * int(shape[2])


def layer_macs(layer):
    """Multiply-adds of one call of ``layer`` at the shapes it was built with."""
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1])
        out = _spatial(layer.output.shape)
        return out * kh * kw * cin * layer.depth_multiplier + out * cin * layer.depth_multiplier * layer.filters
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1])
        return _spatial(layer.output.shape) * kh * kw * cin * layer.depth_multiplier
    if isinstance(layer, layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1])
        # Every input pixel scatters a kh x kw x filters patch.
        return _spatial(layer.input.shape) * kh * kw * cin * layer.filters
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1])
        return _spatial(layer.output.shape) * kh * kw * (cin // layer.groups) * layer.filters
    if isinstance(layer, layers.Dense):
        cin = int(layer.input.shape[-1])
        positions = math.prod(int(d) for d in layer.output.shape[1:-1])
        return positions * cin * layer.units
    if isinstance(layer, _FREE) or not layer.weights:
        return 0
    raise ValueError(
        f"count_macs does not know layer {layer.name!r} of type {type(layer).__name__}; "
        "add its formula to models/flops.py."
    )


def macs_per_layer(model):
    """[(layer name, MACs)] for every leaf layer, descending into nested models."""
    rows = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            rows.extend((f"{layer.name}/{name}", macs) for name, macs in macs_per_layer(layer))
            continue
        if any(d is None for d in layer.output.shape[1:]) if hasattr(layer, "output") else False:
            raise ValueError(
                f"count_macs needs a fixed input size, but layer {layer.name!r} has output "
                f"shape {layer.output.shape}. Build the model with input_shape=(H, W, 3)."
            )
        rows.append((layer.name, layer_macs(layer)))
    return rows


def count_macs(model, *, per_layer=False):
    """Total multiply-adds of one forward pass for a single image.

    Args:
        model: a built keras.Model with fully defined input size.
        per_layer: also return the [(layer name, MACs)] list.

    Returns:
        The total (int), or (total, rows) when ``per_layer``.
    """
    rows = macs_per_layer(model)
    total = sum(macs for _, macs in rows)
    return (total, rows) if per_layer else total
