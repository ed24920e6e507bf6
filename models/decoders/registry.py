"""The decoder registry (the layers decoders share are in blocks/upsampling.py)."""

from models.registry import registrar

DECODERS = {}
# register_decoder(name): registers ``decoder(pyramid, channels, num_classes) -> (logits, stride)``.
# ``pyramid`` maps "P1".."P5" to tensors at strides 2..32 and ``channels`` maps the same keys
# to their channel counts; the segmenter upsamples the logits from ``stride`` to the input.
register_decoder = registrar(DECODERS, "Decoder")


def list_archs():
    """Sorted names of every registered decoder architecture."""
    return sorted(DECODERS)
