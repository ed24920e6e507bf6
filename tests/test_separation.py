"""Buildings, not blobs: separation targets, the watershed split, streaming equality, building F1 of instances."""

import json

import numpy as np
import pytest
import tensorflow as tf

from common.scores import building_matches
from data.targets import CONTACT_RADIUS, instance_ids, parse_targets, separation_targets
from inference.evaluation import scene_scores
from inference.footprints import StripTracer
from inference.separation import StripSeparator, separate


def _targets(ids):
    out = separation_targets(tf.constant(ids[None, ..., None], tf.float32)).numpy()[0]
    return out[..., 0] > 0, out[..., 1] > 0, out[..., 2] > 0


def _as_probabilities(building, border, contact):
    """A model output equal to the targets (probability 1 where a target is set, 0 elsewhere)."""
    return np.stack([building, border, contact], axis=-1).astype("float32")


def _footprint_areas(probabilities, min_area=1):
    labels = separate(probabilities, min_area=min_area)
    tracer = StripTracer(min_area=min_area)
    buildings = tracer.add(0, labels > 0, probabilities[..., 0], instances=labels) + tracer.finish()
    return sorted(round(b["polygon"].area) for b in buildings)


def test_touching_squares_are_marked_and_separated():
    ids = np.zeros((40, 60), np.int32)
    ids[10:30, 10:30] = 1  # two 20 x 20 buildings sharing an edge (two ids, one patch of mask)
    ids[10:30, 30:50] = 2
    body, border, contact = _targets(ids)
    assert body.sum() == 800
    # contact: the pixels within CONTACT_RADIUS of both buildings, on both sides of the shared edge
    assert contact[20, 30 - CONTACT_RADIUS : 30 + CONTACT_RADIUS].all() and not contact[20, 20] and not contact[20, 40]
    # 2r columns, over the 20 rows of the wall and r rows of background beyond each end
    assert contact.sum() == 2 * CONTACT_RADIUS * (20 + 2 * CONTACT_RADIUS)
    assert border[20, 10] and border[20, 29] and border[20, 30] and not border[20, 20]
    assert _footprint_areas(_as_probabilities(body, border, contact)) == [400, 400]
    # without separation channels the same mask is one building of 800 pixels
    assert _footprint_areas(body.astype("float32")[..., None]) == [800]


def test_bridged_squares_from_a_binary_mask_are_separated():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 8:28] = True  # two 20 x 20 squares ...
    mask[10:30, 32:52] = True
    mask[20, 28:32] = True  # ... joined by a one-pixel bridge of 4 pixels: one 4-connected component
    ids = instance_ids(mask)[..., 0].astype(np.int32)
    assert ids.max() == 1
    body, border, contact = _targets(ids)
    assert border[20, 28:32].all()  # every bridge pixel is border
    areas = _footprint_areas(_as_probabilities(body, border, contact))
    assert len(areas) == 2 and sum(areas) == 804 and all(400 <= a <= 404 for a in areas)


def test_instance_ids_are_the_4_connected_components():
    mask = np.zeros((8, 8), np.uint8)
    mask[1:3, 1:3] = 255
    mask[3, 3] = 255  # touches the first only diagonally: its own building
    ids = instance_ids(mask)
    assert ids.dtype == np.uint16 and ids.shape == (8, 8, 1)
    assert sorted(np.unique(ids).tolist()) == [0, 1, 2] and ids[3, 3, 0] != ids[1, 1, 0]


def test_parse_targets():
    assert parse_targets("building") == ("building",)
    assert parse_targets("building, border,contact") == ("building", "border", "contact")
    for bad in ("border,building", "building,roads", "", "building,building"):
        with pytest.raises(ValueError, match="--targets must start with building"):
            parse_targets(bad)


def _random_scene(seed, height=300, width=90):
    """Probabilities of many small, often touching buildings (random rectangles), border and contact from targets."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((height, width), np.int32)
    for index in range(1, 60):
        top, left = rng.integers(0, height - 12), rng.integers(0, width - 12)
        ids[top : top + rng.integers(4, 12), left : left + rng.integers(4, 12)] = index
    body, border, contact = _targets(ids)
    noise = rng.uniform(0, 0.3, (height, width, 3)).astype("float32")
    return np.clip(_as_probabilities(body, border, contact) * 0.7 + noise, 0, 1)


def _partition(labels):
    """The set of buildings as frozensets of pixel indices (label numbers do not matter)."""
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(flat[order])) + 1)
    return {frozenset(g.tolist()) for g in groups if flat[g[0]] > 0}


@pytest.mark.parametrize("strip_rows", [7, 32, 300])
def test_streaming_separation_equals_the_whole_scene(strip_rows):
    probabilities = _random_scene(0)
    whole = separate(probabilities, min_area=3)
    separator, pieces = StripSeparator(min_area=3), []
    for y in range(0, len(probabilities), strip_rows):
        pieces += separator.add(y, probabilities[y : y + strip_rows])
    pieces += separator.finish()
    assert [y for y, _, _ in pieces] == sorted(y for y, _, _ in pieces)
    streamed = np.concatenate([labels for _, labels, _ in pieces])
    assert streamed.shape == whole.shape
    assert _partition(streamed) == _partition(whole)
    assert len(_partition(whole)) > 40  # the scene really has many buildings, some split
    assert len(_partition(whole)) > len(_partition(instance_ids(probabilities[..., 0] >= 0.5)[..., 0]))
    # the footprints traced strip by strip: one per building, the same count as the whole scene
    tracer = StripTracer(min_area=3)
    found = [b for y, labels, p in pieces for b in tracer.add(y, labels > 0, p, instances=labels)] + tracer.finish()
    assert len(found) == len({b for b in _partition(whole) if len(b) >= 3})


def test_building_f1_of_separated_instances_by_hand():
    truth = np.zeros((20, 40), bool)
    truth[2:12, 2:12] = True  # A
    truth[2:12, 13:23] = True  # B, one pixel column away from A
    predicted = np.zeros((20, 40), bool)
    predicted[2:12, 2:23] = True  # A and B fused into one blob ...
    instances = np.zeros((20, 40), np.int32)
    instances[2:12, 2:13] = 1  # ... which separation splits at column 13
    instances[2:12, 13:23] = 2
    # fused: the blob (210 px) matches neither A nor B (IoU 100/210): 0 found, 1 false, 2 missed
    assert building_matches(truth, predicted, min_area=4) == (0, 1, 2)
    # separated: A (IoU 100/110) and B (IoU 1) both match
    assert building_matches(truth, instances, min_area=4) == (2, 0, 0)
    row = scene_scores("s", truth, predicted, min_area=4, buildings=instances)
    assert row["building_f1"] == 1.0 and row["unseparated_building_f1"] == 0.0
    assert row["iou"] == pytest.approx(200 / 210)


def test_multi_target_pipeline_computes_targets_after_augmentation(synthetic_dir):
    from data.pipeline import eval_dataset, load_split, train_dataset

    examples = load_split("buildings/synthetic", "train", data_dir=synthetic_dir)
    targets = ("building", "border", "contact")
    images, labels = next(iter(train_dataset(examples, size=64, batch_size=4, targets=targets)))
    assert images.shape == (4, 64, 64, 3) and labels.shape == (4, 64, 64, 3)
    body, border, contact = (labels[..., i].numpy() > 0 for i in range(3))
    assert body.any() and not (border & ~body).any()  # border lies inside buildings
    # single-target batches are exactly today's masks
    _, masks = next(iter(train_dataset(examples, size=64, batch_size=4)))
    assert masks.shape == (4, 64, 64, 1) and set(np.unique(masks.numpy())) <= {0.0, 1.0}
    _, tiles, weights = next(iter(eval_dataset(examples, size=64, batch_size=2, targets=targets)))
    assert tiles.shape[-1] == 3 and weights.shape[-1] == 1


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_train_and_predict_with_separation_targets(synthetic_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from models.metadata import read_metadata
    from tests.tiny import TINY_TRAIN

    root = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    args = [*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--epochs", "1"]
    args += ["--targets", "building,border,contact", "--target-weights", "1,0.5,0.5", "--run-dir", str(run)]
    done = subprocess.run([sys.executable, "train.py", *args], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert results["targets"] == ["building", "border", "contact"]
    choice = results["separation"]  # made on the calibration images: separate only when it helps there
    assert results["separated"] is choice["separate"] and choice["scenes"] == 12
    assert (choice["building_f1_separated"] > choice["building_f1_unseparated"]) is choice["separate"]
    kept = "heldout_separated_building_f1" if choice["separate"] else "heldout_unseparated_building_f1"
    assert results["heldout_building_f1"] == results[kept]
    metadata = read_metadata(run / "model.keras")
    assert metadata["targets"] == ["building", "border", "contact"] and metadata["arch"] == "fcn32"
    assert metadata["separate"] is choice["separate"]
    # the separation channels' threshold chosen on the calibration images lives in the logits layer
    from blocks.calibration import threshold_offset
    from inference.heldout import SEPARATION_THRESHOLDS
    from inference.loading import load_segmenter

    assert choice["threshold"] in SEPARATION_THRESHOLDS and metadata["separation_threshold"] == choice["threshold"]
    offsets = load_segmenter(run)[0].get_layer("logits").offset
    assert offsets[1:] == pytest.approx([-threshold_offset(choice["threshold"])] * 2, abs=1e-9)
    assert offsets[0] == pytest.approx(-threshold_offset(results["calibration"]["threshold"]), abs=1e-6)
    scene = tmp_path / "scenes"
    scene.mkdir()
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(scene / "a.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "predict.py", "--model", str(run), str(scene), "--out", str(out), "--instances"]
    cmd += ["--separate", "always"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "buildings separated" in done.stdout
    assert (out / "a.gpkg").exists() and (out / "a_instances.tif").exists() and (out / "a_mask.png").exists()
    auto_cmd = [sys.executable, "predict.py", "--model", str(run), str(scene), "--out", str(tmp_path / "auto")]
    auto = subprocess.run(auto_cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert auto.returncode == 0, auto.stderr[-2000:]
    assert ("buildings separated" in auto.stdout) is choice["separate"]  # --separate auto follows the run's choice


def test_a_weak_contact_channel_gets_a_lower_threshold_chosen_on_training_images():
    """Two buildings two pixels apart that the mask fuses, and a contact channel at 0.3 in the gap: at 0.5 the
    seeds stay one, at 0.2 they split and both buildings match. The choice takes the highest threshold of the
    best F1 (0.2, not 0.1) and keeps separation."""
    import keras
    import tensorflow as tf

    from inference.heldout import _at_threshold, choose_separation

    truth = np.zeros((40, 40), bool)
    truth[10:22, 5:17] = truth[10:22, 19:31] = True
    body = truth.copy()
    body[10:22, 17:19] = True  # the mask covers the gap: one patch of 312 pixels, IoU 144/312 with each
    image = np.zeros((40, 40, 3), np.uint8)
    image[..., 0] = np.where(body, 255, 0)
    image[10:22, 17:19, 1] = 255
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 1, name="logits")])
    contact_logit = np.log(0.3 / 0.7)  # probability 0.3 where G = 255, about 0.0025 elsewhere
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 0], kernel[0, 0, 1, 1] = 12 / 255, (contact_logit + 6) / 255
    model.get_layer("logits").set_weights([kernel, np.array([-6.0, -6.0], np.float32)])
    example = {
        "image": tf.io.encode_png(image),
        "mask": tf.io.encode_png((truth[..., None] * 255).astype(np.uint8)),
        "file_name": tf.constant("a.png"),
    }
    choice = choose_separation(model, tf.data.Dataset.from_tensors(example), None)
    assert choice["building_f1_by_threshold"] == {"0.5": 0.0, "0.35": 0.0, "0.2": 1.0, "0.1": 1.0}
    assert choice["threshold"] == 0.2 and choice["separate"] is True
    assert choice["building_f1_unseparated"] == 0.0 and choice["scenes"] == 1
    # moving the separation channels: 0.3 at threshold 0.2 is 0.3 / 0.7 / (0.2 / 0.8) = 1.714 in odds, the building
    # channel untouched
    moved = _at_threshold(np.array([[[0.9, 0.3]]], np.float32), 0.2)
    assert moved[0, 0, 0] == pytest.approx(0.9) and moved[0, 0, 1] == pytest.approx(1.714286 / 2.714286, abs=1e-6)


def test_scored_scenes_keep_their_order_and_equal_each_scene_scored_alone():
    """score_scenes splits one scene in a second thread while the next is predicted: the rows still come in
    scene order, each equal to the scene's own split and scores."""
    from inference.evaluation import score_scenes
    from inference.separation import separate as split

    def bridged(width):  # two 40-pixel squares joined by a 4-pixel neck: a split by shape gives two buildings
        mask = np.zeros((96, 96 + width), bool)
        mask[20:60, 10:50] = mask[20:60, 50 + width : 90 + width] = True
        mask[38:42, 50 : 50 + width] = True
        return mask

    def logit_fn(windows):  # the image's first channel is the mask: logits +-6
        return tf.where(windows[..., :1] > 0, 6.0, -6.0)

    masks = [bridged(width) for width in (6, 10, 16)]
    masks[1][70:90, 70:80] = True  # a third, separate building in the second scene
    scenes = [(f"s{index}", np.repeat(mask[..., None] * 255, 3, -1).astype("uint8"), mask)
              for index, mask in enumerate(masks)]  # fmt: skip
    report = score_scenes(logit_fn, iter(scenes), separate=True, depth=5.0, tile=128, overlap=32)
    assert [row["scene"] for row in report["scenes"]] == ["s0", "s1", "s2"]
    for (name, _, mask), row in zip(scenes, report["scenes"]):
        probabilities = np.where(mask, 1 / (1 + np.exp(-6.0)), 1 / (1 + np.exp(6.0))).astype("float32")
        alone = scene_scores(name, mask, mask, buildings=split(probabilities, depth=5.0))
        assert row == alone
    assert [row["building_tp"] + row["building_fp"] for row in report["scenes"]] == [2, 3, 2]  # split at the neck
