"""The network on an enlarged image: ``create_model(zoom=2)`` and ``train.py --zoom``."""

import keras
import numpy as np
import pytest

from models import create_model
from tests.helpers import assert_train_refuses


def test_zoom_adds_no_weights_and_keeps_the_input_resolution():
    plain = create_model("unet", "effnet-lite0", input_shape=(None, None, 3), standardize=True)
    zoomed = create_model("unet", "effnet-lite0", input_shape=(None, None, 3), standardize=True, zoom=2)
    assert zoomed.count_params() == plain.count_params()
    assert zoomed.get_layer("zoom_in").output.shape[1:] == (None, None, 3)
    assert zoomed.predict(np.zeros((1, 64, 96, 3), "float32"), verbose=0).shape == (1, 64, 96, 1)
    fixed = create_model("fcn8", "effnet-lite0", input_shape=(64, 64, 3), zoom=2)  # the encoder sees 128 x 128
    assert fixed.get_layer("zoom_in").output.shape[1:] == (128, 128, 3)
    assert fixed.get_layer("zoom_out").output.shape[1:] == (64, 64, 1)


def test_zoomed_logits_are_the_plain_network_on_the_enlarged_image_pooled_back():
    """Same weights: the zoom-2 model's logits equal the plain model run on the bilinear 2x image, averaged 2 x 2."""
    plain = create_model("unet", "effnet-lite0", input_shape=(None, None, 3))
    zoomed = create_model("unet", "effnet-lite0", input_shape=(None, None, 3), zoom=2)
    zoomed.set_weights(plain.get_weights())
    image = np.random.default_rng(0).uniform(0, 255, (2, 32, 64, 3)).astype("float32")
    enlarged = keras.layers.UpSampling2D(2, interpolation="bilinear")(image)
    expected = keras.layers.AveragePooling2D(2)(plain(enlarged, training=False))
    got = zoomed(image, training=False)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-4)
    assert float(np.abs(np.asarray(got) - np.asarray(plain(image, training=False))).max()) > 1e-2  # not the plain net


@pytest.mark.parametrize("zoom", [0, -1, 1.5])
def test_a_zoom_that_is_not_a_positive_int_is_refused(zoom):
    with pytest.raises(ValueError, match="zoom must be a positive int"):
        create_model("unet", "effnet-lite0", input_shape=(64, 64, 3), zoom=zoom)


def test_train_py_refuses_a_zoom_out_of_range_before_any_write(tmp_path):
    assert_train_refuses(tmp_path / "run", ["--zoom", "5"], "--zoom 5: use 1 (the image as it is) to 4")


def test_recipe_label_names_the_zoom():
    from experiments.report import recipe_label

    recipe = {"augment": "basic", "calibrate": "train", "standardize": "none", "lr": 2e-3, "steps": 210}
    assert recipe_label({**recipe, "zoom": 2}, "ema") == "basic/ema/zoom 2x"
    assert recipe_label({**recipe, "zoom": 1}, "ema") == "basic/ema"
    assert recipe_label(recipe, "ema") == "basic/ema"  # runs from before the option
