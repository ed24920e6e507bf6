"""The calibrated decision threshold: the IoU search, the logit offset layer, and its round trip."""

import math

import numpy as np
import pytest

from inference.calibration import ThresholdCounts, best_threshold


def brute_force_iou(probabilities, truth, threshold):
    predicted = probabilities >= threshold
    union = (predicted | truth).sum()
    return (predicted & truth).sum() / union if union else 0.0


def test_hand_case_and_ties_go_to_the_threshold_nearest_one_half():
    probabilities = np.array([0.1, 0.3, 0.6, 0.8, 0.9], "float32")
    truth = np.array([False, False, False, True, True])
    counts = ThresholdCounts()
    counts.add(probabilities, truth)
    threshold, iou, at_half = best_threshold(counts)
    # every threshold in (0.6, 0.8] separates them perfectly; 0.61 is the one nearest 0.5
    assert threshold == pytest.approx(0.61) and iou == 1.0
    assert at_half == pytest.approx(2 / 3)  # at 0.5: two buildings found, one false pixel


def test_histogram_search_equals_brute_force_over_scenes():
    rng = np.random.default_rng(3)
    counts, scenes = ThresholdCounts(), []
    for shape in ((40, 50), (64, 64), (7, 300)):
        probabilities = rng.random(shape).astype("float32")
        probabilities.flat[:20] = np.float32(0.7)  # values on a bin edge
        truth = rng.random(shape) < probabilities**2
        counts.add(probabilities, truth)
        scenes.append((probabilities, truth))
    probabilities = np.concatenate([p.ravel() for p, _ in scenes])
    truth = np.concatenate([t.ravel() for _, t in scenes])
    ious = counts.ious()
    assert len(ious) == 99
    for threshold, iou in ious.items():
        assert iou == pytest.approx(brute_force_iou(probabilities, truth, threshold), abs=1e-12), threshold
    best, best_iou, _ = best_threshold(counts)
    assert best_iou == pytest.approx(max(brute_force_iou(probabilities, truth, k / 100) for k in range(1, 100)))


def test_logit_offset_moves_the_threshold_to_one_half_and_survives_saving(tmp_path):
    import keras

    from blocks.calibration import threshold_offset
    from inference.loading import load_segmenter
    from models import create_model
    from models.segmenter import set_logit_offset

    model = create_model("fcn32", "resnet18", input_shape=(None, None, 3))
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype("float32")
    raw = model(images).numpy()
    set_logit_offset(model, threshold_offset(0.8))
    assert threshold_offset(0.8) == pytest.approx(math.log(4.0))
    shifted = model(images).numpy()
    np.testing.assert_allclose(shifted, raw - math.log(4.0), atol=1e-6)
    # the mask at 0.5 is the uncalibrated probability's mask at 0.8, except within float rounding of it
    calibrated, uncalibrated = 1 / (1 + np.exp(-shifted)) >= 0.5, 1 / (1 + np.exp(-raw)) >= 0.8
    near = np.abs(raw - math.log(4.0)) < 1e-5
    assert np.array_equal(calibrated[~near], uncalibrated[~near])
    model.save(tmp_path / "model.keras")
    loaded, _ = load_segmenter(tmp_path / "model.keras")
    assert -loaded.get_layer("logits").offset == pytest.approx(math.log(4.0), abs=1e-15)  # Rescaling adds it
    np.testing.assert_allclose(loaded(images).numpy(), shifted, atol=1e-5)
    # a model that ends in a plain layer (built before calibration existed) is named, not silently changed
    old = keras.Model(model.input, keras.layers.Activation("linear", name="logits")(model.layers[-2].output))
    with pytest.raises(ValueError, match="not the offset layer"):
        set_logit_offset(old, 1.0)
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 1\)"):
        threshold_offset(1.0)
