"""Decoders: (pyramid, channels, num_classes) -> (logits, stride). Never import an encoder."""

from models.decoders import cnn, deeplabv3plus, fcn, fpn, linknet, unet  # noqa: F401  (registration)
from models.decoders.registry import DECODERS, list_archs, needs_fixed_size, register_decoder, takes_fine_skip

__all__ = ["DECODERS", "list_archs", "needs_fixed_size", "register_decoder", "takes_fine_skip"]
