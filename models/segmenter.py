"""Compose encoder -> decoder -> head into one segmentation model. The only place that does.

The model takes raw 0..255 RGB (preprocessing lives inside the encoder) and returns
logits at the input resolution. The final layer computes in float32, so mixed precision
never hands the loss half-precision logits.
"""

import keras
from keras import layers

from blocks.calibration import logit_offset, set_offset
from blocks.normalization import standardize_image
from blocks.upsampling import upsample
from models.decoders import DECODERS, list_archs, takes_fine_skip
from models.encoders import create_encoder, list_encoders
from models.encoders.registry import pyramid_channels
from models.walk import leaf_layers

# BatchNorm momentum for the whole model. Keras' 0.99 lets the moving statistics lag the
# weights for thousands of steps, so a short from-scratch run evaluates badly in inference
# mode; 0.9 tracks them within a few dozen steps.
DEFAULT_BN_MOMENTUM = 0.9


def create_model(
    arch,
    encoder,
    *,
    num_classes=1,
    input_shape=(256, 256, 3),
    encoder_weights=None,
    bn_momentum=DEFAULT_BN_MOMENTUM,
    standardize=False,
    fine_skip=False,
    zoom=1,
    encoder_top=True,
    drop_connect=None,
):
    """Build a segmentation model from a registered decoder and encoder.

    Args:
        arch: decoder name, one of ``list_archs()`` ("unet", "fpn", "fcn8", ...).
        encoder: encoder name, one of ``list_encoders()`` ("effnet-b0", "vgg16", ...).
        num_classes: 1 for a single sigmoid building logit, >1 for softmax classes.
        input_shape: (H, W, 3); H and W multiples of 32, or None for any size (not "cnn").
        encoder_weights: None, "imagenet" (via keras.applications; needs internet once) or
            a ``.weights.h5`` file of the same encoder.
        bn_momentum: momentum of every BatchNormalization layer.
        standardize: give each input image one per-channel mean and spread before the
            encoder (``blocks.normalization.ImageStandardization``).
        fine_skip: also hand the decoder the input image at stride 1 ("P0": the standardised
            image, or the raw one scaled to -1..1), for decoders that use it (``takes_fine_skip``:
            U-Net).
        zoom: the network sees the image enlarged this many times (bilinear), so its finest
            features are finer than the image's pixels, and its logits are averaged back onto
            them (``zoom`` x ``zoom`` pooling): same contract, ``zoom ** 2`` times the compute.
        encoder_top: False: the decoder's P5 is the encoder's last block before its top conv (EfficientNet
            B0 / Lite0: 320 channels instead of the top conv's 1280), as U-Nets over EfficientNet often take it.
        drop_connect: the encoder's stochastic depth while training (EfficientNets: the last block's drop rate,
            0.2 by default; 0: none); None: the encoder's own.

    Returns:
        A keras.Model: raw RGB (N, H, W, 3) -> logits (N, H, W, num_classes), float32.
    """
    if arch not in DECODERS:
        raise ValueError(f"Unknown arch. Valid archs: {', '.join(list_archs())}. Received: arch={arch!r}")
    if encoder not in list_encoders():
        raise ValueError(
            f"Unknown encoder. Valid encoders: {', '.join(list_encoders())}. Received: encoder={encoder!r}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int. Received: num_classes={num_classes!r}")
    if fine_skip and not takes_fine_skip(arch):
        archs = ", ".join(a for a in list_archs() if takes_fine_skip(a))
        raise ValueError(f"fine_skip: the {arch} decoder has no full-resolution stage; use it with {archs}")
    if not isinstance(zoom, int) or zoom < 1:
        raise ValueError(f"zoom must be a positive int (1: the image as it is). Received: zoom={zoom!r}")
    zoomed = tuple(None if side is None else side * zoom for side in input_shape[:2]) + tuple(input_shape[2:])
    backbone = create_encoder(
        encoder, input_shape=zoomed, weights=encoder_weights, top=encoder_top, drop_connect=drop_connect
    )
    inputs = keras.Input(shape=input_shape, name="image")
    image = standardize_image(inputs) if standardize else inputs
    if zoom > 1:
        image = layers.UpSampling2D(zoom, interpolation="bilinear", name="zoom_in")(image)
    pyramid = backbone(image)
    if fine_skip:
        fine = image if standardize else layers.Rescaling(1 / 127.5, -1.0, name="fine_skip")(image)
        pyramid = {**pyramid, "P0": fine}
    logits, stride = DECODERS[arch](pyramid, pyramid_channels(pyramid), num_classes)
    if stride > 1:
        logits = upsample(logits, stride, name="head_upsample")
    if zoom > 1:
        logits = layers.AveragePooling2D(zoom, name="zoom_out")(logits)
    logits = logit_offset(logits, name="logits")  # float32; train.py may calibrate its offset
    model = keras.Model(inputs, logits, name=f"{arch}_{encoder}")
    set_bn_momentum(model, bn_momentum)
    return model


def set_bn_momentum(model, momentum, *, synchronized=None):
    """Set momentum (and optionally cross-replica sync) of every BatchNormalization layer.

    ``synchronized=True`` makes batch statistics global under a tf.distribute strategy, so
    every replica and worker keeps the same moving statistics.
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"bn_momentum must lie in [0, 1). Received: bn_momentum={momentum}")
    for layer in leaf_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
            if synchronized is not None:
                layer.synchronized = synchronized


def set_logit_offset(model, offset, separation_offset=0.0):
    """Make the model's last layer (named "logits", ``blocks.calibration``) subtract ``offset`` from the building
    logits and ``separation_offset`` from the separation channels' (border, contact), if the model has them.

    Functions traced before the call keep the old offset: trace again (``make_logit_fn``).
    """
    set_offset(model.get_layer("logits"), offset, separation_offset)
