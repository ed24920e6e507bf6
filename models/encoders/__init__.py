"""Encoders: image batch -> feature pyramid {"P1": .., "P5": ..} at strides 2..32."""

from models.encoders import classic  # noqa: F401  (registers vgg16, mobilenetv2, resnet18/34)
from models.encoders.efficientnet import efficientnet
from models.encoders.registry import ENCODERS, create_encoder, list_encoders, register_encoder
from models.encoders.weights import copy_keras_applications_weights

__all__ = [
    "ENCODERS",
    "create_encoder",
    "list_encoders",
    "register_encoder",
    "efficientnet",
    "copy_keras_applications_weights",
]
