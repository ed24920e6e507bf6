"""The decoder registry (the layers decoders share are in blocks/upsampling.py)."""

from models.registry import registrar

DECODERS = {}
DECODER_PROPERTIES = {}
# register_decoder(name, fixed_size=False): registers ``decoder(pyramid, channels, num_classes) -> (logits, stride)``.
# ``pyramid`` maps "P1".."P5" to tensors at strides 2..32 and ``channels`` maps the same keys
# to their channel counts; the segmenter upsamples the logits from ``stride`` to the input.
# ``fixed_size``: the decoder only works at the input size it was built for (dense layers).
# ``fine_skip``: the decoder also uses "P0", the input image at stride 1, when the segmenter gives
# it (``create_model(..., fine_skip=True)``).
register_decoder = registrar(DECODERS, "Decoder", DECODER_PROPERTIES, {"fixed_size": False, "fine_skip": False})


def list_archs():
    """Sorted names of every registered decoder architecture."""
    return sorted(DECODERS)


def _property(arch, name):
    if arch not in DECODER_PROPERTIES:
        raise ValueError(f"Unknown arch. Valid archs: {', '.join(list_archs())}. Received: arch={arch!r}")
    return DECODER_PROPERTIES[arch][name]


def needs_fixed_size(arch):
    """True when ``arch`` is tied to the input size it was built with (train.py saves it at the crop size)."""
    return _property(arch, "fixed_size")


def takes_fine_skip(arch):
    """True when ``arch`` can use the input image at full resolution as its last skip (``fine_skip``)."""
    return _property(arch, "fine_skip")
