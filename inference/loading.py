"""Load a model written by train.py (a run directory or its model.keras) and check it is ours."""

from pathlib import Path


def resolve_model_path(path):
    """A run directory -> its model.keras; a .keras file -> itself; anything else -> ValueError."""
    path = Path(path)
    if path.is_dir():
        model_file = path / "model.keras"
        if not model_file.exists():
            raise ValueError(
                f"--model {path}: the folder holds no model.keras. train.py writes it when a run finishes; "
                f"finish an interrupted run with `python train.py --run-dir {path} --resume`."
            )
        return model_file
    if not path.exists():
        raise ValueError(f"--model {path} does not exist. Pass a run directory of train.py or its model.keras.")
    if path.suffix != ".keras":
        raise ValueError(
            f"--model {path} is not a .keras model file. Pass a run directory of train.py or its model.keras "
            "(checkpoints such as best.weights.h5 hold weights only)."
        )
    return path


def load_segmenter(path):
    """(model, fixed_size) of a saved segmentation model; fixed_size is None for any-size models.

    The archive's metadata (``models.metadata``, written by train.py) says what the model is; an
    archive from before it is recognised by its ``logits`` layer and its input shape.
    """
    import zipfile

    import keras

    import blocks.normalization  # noqa: F401  (registers the layer a --standardize image model holds)

    model_file = resolve_model_path(path)
    if not zipfile.is_zipfile(model_file):
        raise ValueError(
            f"--model {model_file} is not a Keras archive (a .keras file is a zip; this one is not, so it "
            "is damaged or something else renamed). Pass a model.keras written by train.py."
        )
    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for foreign or damaged archives
        raise ValueError(
            f"--model {model_file} could not be loaded as a Keras model ({type(error).__name__}: "
            f"{str(error)[:300]}). Pass a model.keras written by train.py."
        ) from error
    from models.metadata import read_metadata

    metadata = read_metadata(model_file)
    shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    channels = len(metadata["targets"])
    if "format" in metadata:  # written by train.py: the archive says what it is
        fixed = metadata["fixed_size"]
        if (
            len(shape_in) != 4
            or shape_in[-1] != len(metadata["bands"])
            or shape_out[-1] != channels
            or (fixed and tuple(shape_in[1:3]) != (fixed, fixed))
        ):
            raise ValueError(
                f"--model {model_file}: its metadata ({metadata.get('arch')} / {metadata.get('encoder')}, targets "
                f"{', '.join(metadata['targets'])}, fixed size {fixed}, bands {metadata['bands']}) does not match the "
                "model it holds "
                f"({shape_in} -> {shape_out}); the archive is damaged. Use the model.keras a run wrote."
            )
        return model, fixed
    # archives from before the metadata: recognised by their last layer and their shapes
    names = {layer.name for layer in model.layers}
    if "logits" not in names or len(shape_in) != 4 or shape_in[-1] != 3 or shape_out[-1] != channels:
        raise ValueError(
            f"--model {model_file} is not one of this project's building models (expected raw RGB (N, H, W, 3) in, "
            f"one 'logits' channel per target ({channels}) out; it maps {shape_in} -> {shape_out}). "
            "Train one with train.py."
        )
    height, width = shape_in[1:3]
    if height is None and width is None:
        return model, None
    if height != width or height is None:
        raise ValueError(
            f"--model {model_file} has an input size {height}x{width}; only square or any-size models are supported."
        )
    return model, height


def model_bands(path):
    """The bands of their training images a saved model reads, 1-based, RGB first (``models.metadata``)."""
    from models.metadata import read_metadata

    return tuple(read_metadata(resolve_model_path(path))["bands"])


def model_targets(path):
    """The targets of a saved model's output channels, building first (``models.metadata``)."""
    from models.metadata import read_metadata

    return tuple(read_metadata(resolve_model_path(path))["targets"])


def separates(path):
    """Whether ``--separate auto`` separates this model's buildings: it has separation channels and its run
    kept separation (archives from before that choice: whenever it has the channels)."""
    from models.metadata import read_metadata

    metadata = read_metadata(resolve_model_path(path))
    return len(metadata["targets"]) > 1 and bool(metadata.get("separate", True))


def scored_with_tta(path):
    """Whether predict.py averages the 8 flips and turns for this model unless told: its run scored its held-out
    places so (train.py --tta; archives from before that option: no)."""
    from models.metadata import read_metadata

    return bool(read_metadata(resolve_model_path(path)).get("tta", False))


def splits_by_shape(path):
    """Whether ``--separate auto`` splits this model's mask by its shape: a model without separation channels
    whose run chose it (train.py --split shape, the default; archives from before that option: no)."""
    from models.metadata import read_metadata

    metadata = read_metadata(resolve_model_path(path))
    return len(metadata["targets"]) == 1 and metadata.get("split") == "shape"
