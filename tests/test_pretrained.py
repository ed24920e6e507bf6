"""Offline ImageNet EfficientNet-Lite: the shipped checkpoints, read safely, mapped exactly, classifying photos."""

import json
import os
import pickle
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models import create_model
from models.encoders import create_encoder, efficientnet
from models.encoders.efficientnet import stage_repeats
from models.encoders.lite_checkpoint import (
    PIP_CHECKPOINTS,
    assign_state_dict,
    checkpoint_file,
    pretrained_lite_classifier,
    stage_repeats_of,
    tensor_names,
)
from models.encoders.registry import pyramid_channels
from models.encoders.torch_checkpoint import LEGACY_MAGIC, CheckpointError, read_state_dict
from models.encoders.weights import imagenet_encoders

LITES = sorted(PIP_CHECKPOINTS)
# ImageNet classes that must be in the top 5 of each photo scikit-image bundles
# (281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso; 657 missile; 665 moped, 670 motor scooter).
EXPECTED_TOP5 = {"chelsea": {281, 282, 285}, "coffee": {967}, "rocket": {657}, "motorcycle_left": {665, 670}}


def _photo(name):
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image bundles the test photos")
    return skimage_data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage_data, name)()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BUILDINGS_ZOO_CACHE", str(tmp_path_factory.getbasetemp() / "zoo_cache"))


@pytest.mark.parametrize("encoder", LITES)
def test_every_checkpoint_tensor_maps_to_one_weight_of_the_same_shape(encoder):
    state = read_state_dict(checkpoint_file(encoder))
    variant = encoder.removeprefix("effnet-")
    names = tensor_names(stage_repeats(variant))
    mapped = [tensor for tensors in names.values() for tensor in tensors]
    assert len(mapped) == len(set(mapped))  # each tensor used once
    # everything but PyTorch's BatchNorm step counters is mapped, and nothing else
    assert set(mapped) == {k for k in state if not k.endswith("num_batches_tracked")}
    model = efficientnet(variant, include_top=True)
    assert assign_state_dict(model, state, variant) == len(mapped)
    assert model.count_params() == sum(state[k].size for k in mapped)
    stem = model.get_layer("stem_conv").kernel.numpy()
    np.testing.assert_array_equal(stem, state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    dw = model.get_layer("block2a_dwconv").kernel.numpy()
    np.testing.assert_array_equal(dw, state["_blocks.1._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(model.get_layer("top_bn").moving_variance.numpy(), state["_bn1.running_var"])


def test_lite_architecture_facts():
    # the Lite family keeps the first and last stage at one block and the stem / head at 32 / 1280
    assert stage_repeats("lite0") == [1, 2, 2, 3, 3, 4, 1]
    assert stage_repeats("lite2") == [1, 3, 3, 4, 4, 5, 1]
    assert stage_repeats("b2") == [2, 3, 3, 4, 4, 5, 2]
    assert stage_repeats_of(efficientnet("lite2", include_top=True)) == stage_repeats("lite2")  # read from names
    assert pyramid_channels(create_encoder("effnet-lite0")) == {"P1": 16, "P2": 24, "P3": 40, "P4": 112, "P5": 1280}
    assert pyramid_channels(create_encoder("effnet-lite4")) == {"P1": 24, "P2": 32, "P3": 56, "P4": 160, "P5": 1280}
    model = efficientnet("lite0", include_top=True)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Multiply" not in kinds  # no squeeze-excite
    assert model.get_layer("block2a_expand_act").get_config()["activation"] == "relu6"
    # parameter counts of the shipped ImageNet checkpoints (4.69 M, 5.47 M, 6.15 M)
    assert [efficientnet(v, include_top=True).count_params() for v in ("lite0", "lite1", "lite2")] == [
        4_694_024,
        5_470_344,
        6_150_168,
    ]


@pytest.mark.parametrize("encoder", LITES)
def test_offline_classifier_ranks_the_right_classes_top5(encoder):
    from skimage.transform import resize

    model = efficientnet(encoder.removeprefix("effnet-"), include_top=True, weights="imagenet")
    size = model.input.shape[1]
    photos = np.stack([resize(_photo(n), (size, size), preserve_range=True, anti_aliasing=True) for n in EXPECTED_TOP5])
    probabilities = model.predict(photos.astype("float32"), verbose=0)
    for (name, expected), row in zip(EXPECTED_TOP5.items(), probabilities):
        top5 = set(np.argsort(-row)[:5].tolist())
        assert expected <= top5, f"{encoder} on {name}: top 5 {sorted(top5)} lacks {sorted(expected - top5)}"


def test_cache_equals_a_fresh_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILDINGS_ZOO_CACHE", str(tmp_path))
    converted = pretrained_lite_classifier("effnet-lite0")
    cached_files = list(tmp_path.glob("effnet-lite0_imagenet_*.weights.h5"))
    assert len(cached_files) == 1 and not list(tmp_path.glob(".*"))  # no staging file left
    from_cache = pretrained_lite_classifier("effnet-lite0")
    fresh = pretrained_lite_classifier("effnet-lite0", refresh=True)
    for a, b, c in zip(converted.get_weights(), from_cache.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    cached_files[0].write_bytes(b"damaged")  # a damaged cache is converted again, not trusted
    again = pretrained_lite_classifier("effnet-lite0")
    np.testing.assert_array_equal(again.get_weights()[0], converted.get_weights()[0])


def test_segmenter_gets_the_imagenet_encoder_and_others_are_refused_with_the_list():
    model = create_model("unet", "effnet-lite0", input_shape=(64, 64, 3), encoder_weights="imagenet")
    classifier = pretrained_lite_classifier("effnet-lite0")
    encoder = model.get_layer("effnet-lite0")
    for name in ("stem_conv", "block4c_project_bn", "top_conv"):
        for ours, theirs in zip(encoder.get_layer(name).weights, classifier.get_layer(name).weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert {"effnet-lite0", "effnet-lite1", "effnet-lite2", "effnet-b0"} <= set(imagenet_encoders())
    with pytest.raises(ValueError, match="No ImageNet weights for 'resnet18'.*effnet-lite0"):
        create_model("unet", "resnet18", input_shape=(64, 64, 3), encoder_weights="imagenet")
    with pytest.raises(ValueError, match="No ImageNet weights for 'effnet-lite3'"):
        create_model("unet", "effnet-lite3", input_shape=(64, 64, 3), encoder_weights="imagenet")


def _legacy_file(path, sys_info_payload, state_payload=None):
    """A legacy torch.save layout with chosen pickles in it."""
    with open(path, "wb") as file:
        pickle.dump(LEGACY_MAGIC, file, protocol=2)
        pickle.dump(1001, file, protocol=2)
        file.write(sys_info_payload)
        if state_payload is not None:
            file.write(state_payload)


class _Runs:
    """Pickles to a call of ``func(*args)`` when loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_crafted_checkpoints_are_refused_and_run_nothing(tmp_path):
    import os

    marker = tmp_path / "ran"
    payload = pickle.dumps(_Runs(os.system, f"touch {marker}"), protocol=2)
    info = pickle.dumps({"little_endian": True, "protocol_version": 1001}, protocol=2)
    for name, parts in {"in_header.pth": (payload,), "in_state.pth": (info, payload)}.items():
        _legacy_file(tmp_path / name, *parts)
        with pytest.raises(CheckpointError, match=r"refused: it names (posix|os)\.system.*nothing in the file was run"):
            read_state_dict(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "zipped.pth", "w") as archive:  # the zip layout is checked the same way
        archive.writestr("archive/data.pkl", pickle.dumps(_Runs(eval, "1"), protocol=2))
    with pytest.raises(CheckpointError, match=r"names (__builtin__|builtins)\.eval"):
        read_state_dict(tmp_path / "zipped.pth")
    assert not marker.exists()


def test_truncated_and_foreign_checkpoints_are_named(tmp_path):
    data = checkpoint_file("effnet-lite0").read_bytes()
    for cut in (len(data) // 2, 200, len(data) - 4):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"cut\.pth (is truncated|is damaged)"):
            read_state_dict(tmp_path / "cut.pth")
    (tmp_path / "other.pth").write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_state_dict(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")


def test_cache_entry_records_its_source_is_group_readable_and_is_checked_before_use(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILDINGS_ZOO_CACHE", str(tmp_path))
    previous = os.umask(0o022)
    try:
        converted = pretrained_lite_classifier("effnet-lite0")
    finally:
        os.umask(previous)
    (entry,) = tmp_path.glob("effnet-lite0_imagenet_*.weights.h5")
    record = json.loads(Path(f"{entry}.json").read_text())
    assert record["bytes"] == checkpoint_file("effnet-lite0").stat().st_size and len(record["sha256"]) == 64
    assert stat.S_IMODE(entry.stat().st_mode) == 0o644 and stat.S_IMODE(Path(f"{entry}.json").stat().st_mode) == 0o644
    # an entry made from another checkpoint is not used: the weights are converted again and the record rewritten
    Path(f"{entry}.json").write_text(json.dumps({**record, "sha256": "0" * 64}))
    entry.write_bytes(b"weights of something else")
    again = pretrained_lite_classifier("effnet-lite0")
    np.testing.assert_array_equal(again.get_weights()[0], converted.get_weights()[0])
    assert json.loads(Path(f"{entry}.json").read_text()) == record


def test_an_unwritable_cache_is_a_note_and_the_converted_weights_are_used(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BUILDINGS_ZOO_CACHE", str(blocker / "cache"))  # cannot be made, whoever runs the test
    first = pretrained_lite_classifier("effnet-lite0")
    second = pretrained_lite_classifier("effnet-lite0")
    said = capsys.readouterr().out
    assert said.count("cannot be written") == 1 and str(blocker / "cache") in said  # said once
    np.testing.assert_array_equal(first.get_weights()[0], second.get_weights()[0])
    assert blocker.read_text() == "not a folder"
