"""The model zoo: encoders, decoders, the segmenter that joins them, and MAC counting."""

from models.decoders import list_archs
from models.encoders import create_encoder, list_encoders
from models.flops import count_macs
from models.segmenter import create_model

__all__ = ["count_macs", "create_encoder", "create_model", "list_archs", "list_encoders"]
