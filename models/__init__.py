"""The model zoo: encoders, decoders, the segmenter that joins them, and MAC counting."""

from models.flops import count_macs
from models.encoders import create_encoder, list_encoders

__all__ = ["count_macs", "create_encoder", "list_encoders"]
