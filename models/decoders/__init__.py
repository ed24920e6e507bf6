"""Decoders: (pyramid, channels, num_classes) -> (logits, stride). Never import an encoder."""

from models.decoders.registry import DECODERS, list_archs, register_decoder
from models.decoders import cnn, deeplabv3plus, fcn, fpn, linknet, unet  # noqa: F401  (registration)

__all__ = ["DECODERS", "list_archs", "register_decoder"]
