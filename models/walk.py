"""Walk a (possibly nested) Keras model through its public ``layers`` attribute."""


def leaf_layers(model):
    """Every leaf layer of ``model``, nested models opened, in build order."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from leaf_layers(layer)
        else:
            yield layer
