"""Neutral modules below data/, training/ and inference/: image decoding and pixel scores."""
