"""The gap-weighted building loss: weights from the building ids, through tf.data and Keras into the loss."""

import numpy as np
import pytest
import tensorflow as tf

from data.targets import gap_weights, separation_targets
from tests.helpers import assert_train_refuses


def _two_bars():
    """12 x 12 ids: building 1 in columns 2-4, building 2 in columns 7-9, rows 2-9; a 2-pixel gap."""
    ids = np.zeros((12, 12), np.float32)
    ids[2:10, 2:5] = 1
    ids[2:10, 7:10] = 2
    return tf.constant(ids[None, ..., None])


def test_gap_weights_by_hand():
    weights = gap_weights(_two_bars(), 10.0).numpy()[0, ..., 0]
    # the contact band (both bars within 3 pixels, a 7 x 7 window) is columns 4-7 on every row; its
    # background pixels are the gap columns 5-6 on every row and columns 4 and 7 above and below the bars
    expected = np.ones((12, 12), np.float32)
    expected[:, 5:7] = 11.0
    expected[[0, 1, 10, 11], 4] = expected[[0, 1, 10, 11], 7] = 11.0
    np.testing.assert_array_equal(weights, expected)
    assert weights.sum() == 144 + 10 * (24 + 8)
    band = separation_targets(_two_bars(), ("contact",)).numpy()[0, ..., 0]
    on_buildings = (band == 1) & (_two_bars().numpy()[0, ..., 0] > 0)
    assert band.sum() == 48 and on_buildings.sum() == 16 and (weights[on_buildings] == 1).all()
    # one building alone has no gap: every weight is 1
    alone = np.where(_two_bars().numpy() == 2, 0, _two_bars().numpy())
    assert (gap_weights(tf.constant(alone), 10.0).numpy() == 1).all()
    with pytest.raises(ValueError, match="at least 0"):
        gap_weights(_two_bars(), -1.0)


def test_pipeline_yields_weights_equal_to_one_plus_weight_on_the_gaps(synthetic_dir):
    from data.pipeline import load_split, train_dataset

    examples = load_split("buildings/synthetic", "train", data_dir=synthetic_dir)
    images, labels = next(iter(train_dataset(examples, size=64, batch_size=4, seed=3, targets=("building", "contact"))))
    gap_images, masks, weights = next(iter(train_dataset(examples, size=64, batch_size=4, seed=3, gap_weight=4.0)))
    np.testing.assert_array_equal(gap_images.numpy(), images.numpy())  # same crops and augmentation
    np.testing.assert_array_equal(masks.numpy(), labels.numpy()[..., :1])
    background_contact = labels.numpy()[..., 1:] * (1 - labels.numpy()[..., :1])
    np.testing.assert_array_equal(weights.numpy(), 1.0 + 4.0 * background_contact)
    assert weights.shape == (4, 64, 64, 1) and (weights.numpy() == 5.0).sum() > 0
    # without a gap weight the batches stay (image, mask) pairs, as before
    assert len(next(iter(train_dataset(examples, size=64, batch_size=4, seed=3)))) == 2
    with pytest.raises(ValueError, match="gap_weight must be at least 0"):
        train_dataset(examples, size=64, batch_size=4, gap_weight=-2.0)


def test_keras_hands_the_pixel_weights_to_the_loss_unchanged():
    import keras

    from training.losses import SegmentationLoss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 12, 12, 1)).astype("float32")
    y = np.repeat((_two_bars().numpy() > 0).astype("float32"), 2, axis=0)
    w = np.repeat(gap_weights(_two_bars(), 10.0).numpy(), 2, axis=0)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(1, 3, padding="same")])
    model.compile(loss=SegmentationLoss("dice+focal"))
    logits = model.predict(x, verbose=0)
    expected = float(SegmentationLoss("dice+focal")(y, logits, w))
    unweighted = float(SegmentationLoss("dice+focal")(y, logits))
    assert abs(expected - unweighted) > 1e-3  # the weights change the loss ...
    loss = model.test_on_batch(x, y, sample_weight=w, return_dict=True)["loss"]
    assert loss == pytest.approx(expected, rel=1e-5)  # ... and fit's loss is the weighted one


def test_recipe_label_names_the_gap_weight():
    from experiments.report import recipe_label

    recipe = {"augment": "basic", "calibrate": "train", "standardize": "none", "lr": 2e-3, "steps": 210}
    assert recipe_label({**recipe, "gap_weight": 10.0}, "ema") == "basic/ema/gap weight 10"
    assert recipe_label({**recipe, "gap_weight": 0.0}, "ema") == recipe_label(recipe, "ema") == "basic/ema"


def test_train_refuses_a_negative_gap_weight_before_any_write(tmp_path):
    assert_train_refuses(tmp_path / "run", ["--gap-weight", "-1"], "--gap-weight -1.0: must be at least 0")


def test_a_dataset_without_building_ids_is_refused_with_what_to_do():
    from data.pipeline import train_dataset

    png = tf.io.encode_png(tf.zeros((32, 32, 1), tf.uint8))
    old = tf.data.Dataset.from_tensors({"image": tf.io.encode_png(tf.zeros((32, 32, 3), tf.uint8)), "mask": png})
    assert len(next(iter(train_dataset(old, size=32, batch_size=1, crops_per_image=1)))) == 2  # building alone: fine
    with pytest.raises(ValueError, match=r"--gap-weight need the building ids.*python -m data.build"):
        train_dataset(old, size=32, batch_size=1, gap_weight=1.0)
