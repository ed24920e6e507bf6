"""Fine-tuning: start from another run's building model, and train the decoder alone first.

``--init RUN_OR_MODEL`` copies every weight of a finished run (its ``model.keras``) into the
new model; the two must be the same architecture and encoder, which is checked from the
archive's own config before anything is written. ``--freeze-encoder N`` trains only the
decoder and head for the first N epochs, with the encoder's BatchNorm statistics frozen too
(a non-trainable Keras layer normalises in inference mode), then unfreezes the encoder.
This is how building mappers adapt a base model to a few hundred labelled chips of their area.
"""

import json
import zipfile
from pathlib import Path

import keras


def init_model_file(path):
    """A run directory -> its model.keras; a .keras file -> itself; else a ValueError naming --init."""
    path = Path(path)
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file() or model_file.suffix != ".keras":
        raise ValueError(
            f"--init {path}: no model.keras there. Pass a finished run directory of train.py or its model.keras "
            "(a run writes model.keras when it finishes)."
        )
    return model_file


def init_identity(path):
    """(arch, encoder) of the model in ``--init``, read from the archive's config.json (nothing is built or run)."""
    model_file = init_model_file(path)
    try:
        with zipfile.ZipFile(model_file) as archive:
            name = json.loads(archive.read("config.json"))["config"]["name"]
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as error:
        raise ValueError(
            f"--init {model_file} is not a Keras archive written by train.py ({type(error).__name__}). "
            "Pass a finished run directory or its model.keras."
        ) from None
    arch, _, encoder = str(name).partition("_")
    return arch, encoder


def check_init(path, arch, encoder):
    """Refuse an ``--init`` model of another arch or encoder; the message names both."""
    theirs = init_identity(path)
    if theirs != (arch, encoder):
        raise ValueError(
            f"--init {path} is a {theirs[0]} / {theirs[1]} model, but this run trains {arch} / {encoder}. "
            f"Pass --arch {theirs[0]} --encoder {theirs[1]} to fine-tune it, or another --init."
        )


# options of the run an --init model comes from that decide whether its weights fit (as config.json keeps them)
INIT_OPTIONS = ("targets", "standardize", "fine_skip", "zoom", "encoder_top")


def check_init_fits(config):
    """Everything that decides whether ``--init`` fits this run, checked before anything is written: the
    options its run was trained with (its folder's config.json, when there is one), its targets (the archive's
    metadata), then its weights loaded into the model this run builds. A ValueError names what differs."""
    from data.bands import bands_of
    from data.targets import parse_targets
    from models import create_model
    from models.metadata import read_metadata
    from training.recipes import model_options

    if not config.init:
        return
    model_file = init_model_file(config.init)
    saved = {}
    try:
        saved = json.loads((model_file.parent / "config.json").read_text())
    except (OSError, ValueError):
        pass  # a model.keras alone: its metadata and weights still decide
    differs = [
        f"--{name.replace('_', '-')} {saved[name]!r} (this run: {getattr(config, name)!r})"
        for name in INIT_OPTIONS
        if isinstance(saved, dict) and name in saved and saved[name] != getattr(config, name)
    ]
    metadata = read_metadata(model_file)
    if list(metadata["bands"]) != list(bands_of(config)):
        theirs, ours = (",".join(map(str, bands)) for bands in (metadata["bands"], bands_of(config)))
        differs.append(f"--bands {theirs} (this run: {ours})")
    theirs = metadata["targets"]
    if not differs and list(theirs) != list(parse_targets(config.targets)):
        differs.append(f"--targets {','.join(theirs)!r} (this run: {config.targets!r})")
    if differs:
        raise ValueError(f"--init {config.init} was trained with {'; '.join(differs)}. Pass the same to fine-tune it.")
    model = create_model(
        config.arch,
        config.encoder,
        num_classes=len(parse_targets(config.targets)),
        input_shape=(config.image_size, config.image_size, len(bands_of(config))),
        **model_options(config),
    )
    try:
        load_init_weights(model, config.init)
    except ValueError:
        raise
    except Exception as error:  # a damaged archive: Keras and h5py raise many kinds
        raise ValueError(
            f"--init {model_file} could not be loaded ({type(error).__name__}: {str(error)[:200]}). Pass a finished "
            "run directory of train.py or its model.keras."
        ) from None


def load_init_weights(model, path):
    """Copy the weights of the ``--init`` model into ``model`` (same structure, every shape checked)."""
    model_file = init_model_file(path)
    source = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    theirs, ours = source.weights, model.weights
    mismatch = [
        f"{a.path} {tuple(a.shape)} vs {b.path} {tuple(b.shape)}"
        for a, b in zip(theirs, ours)
        if tuple(a.shape) != tuple(b.shape)
    ]
    if len(theirs) != len(ours) or mismatch:
        raise ValueError(
            f"--init {model_file} does not fit this model ({len(theirs)} weights against {len(ours)}"
            + (f"; first difference: {mismatch[0]}" if mismatch else "")
            + "). Use the same --arch, --encoder, --standardize and --fine-skip as the run it comes from."
        )
    model.set_weights(source.get_weights())
    return len(ours)


def encoder_of(model):
    """The encoder inside a segmenter built by ``create_model``: its one nested keras.Model."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(f"{model.name}: expected one nested encoder model, found {len(nested)}")
    return nested[0]


def start_frozen(model, freeze_epochs, initial_epoch):
    """Before fit: build the optimizer over every weight, then freeze the encoder if its epochs are not over.

    Building the optimizer while everything is trainable lets one optimizer (one schedule, one
    weight average) serve both phases.
    """
    if freeze_epochs <= 0:
        return
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if initial_epoch < freeze_epochs:
        encoder_of(model).trainable = False


class UnfreezeEncoder(keras.callbacks.Callback):
    """Make the encoder trainable again at the start of epoch ``freeze_epochs`` (0-based)."""

    def __init__(self, freeze_epochs):
        super().__init__()
        self.freeze_epochs = freeze_epochs

    def on_epoch_begin(self, epoch, logs=None):
        encoder = encoder_of(self.model)
        if epoch >= self.freeze_epochs and not encoder.trainable:
            encoder.trainable = True
            self.model.make_train_function(force=True)  # the traced step fixed the trainable list
            print(f"epoch {epoch + 1}: encoder unfrozen (it trained frozen for {self.freeze_epochs} epochs)")

    def on_epoch_end(self, epoch, logs=None):
        # A run that ends with the encoder still frozen (--freeze-encoder equal to --epochs) makes it trainable
        # again before fit writes the weight average back: Keras pairs the model's trainable weights with the
        # averages one to one, and the optimizer averaged every weight (``start_frozen``).
        encoder = encoder_of(self.model)
        if not encoder.trainable and (epoch + 1 >= self.params.get("epochs", 0) or self.model.stop_training):
            encoder.trainable = True
