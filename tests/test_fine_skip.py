"""U-Net's full-resolution skip: the input image joins the last decoder stage (``create_model(fine_skip=True)``)."""

import numpy as np
import pytest

from models import create_model
from tests.helpers import assert_train_refuses


@pytest.mark.parametrize("standardize", [True, False])
def test_the_image_joins_the_full_resolution_stage(standardize):
    plain = create_model("unet", "effnet-lite0", input_shape=(64, 64, 3), standardize=standardize)
    fine = create_model("unet", "effnet-lite0", input_shape=(64, 64, 3), standardize=standardize, fine_skip=True)
    # the last stage's first 3x3 convolution (16 filters) sees 3 more input channels: 3 x 16 x 9 weights
    assert fine.count_params() - plain.count_params() == 3 * 16 * 9
    concat = fine.get_layer("unet_stage5_concat")
    assert [tuple(t.shape) for t in concat.input] == [(None, 64, 64, 32), (None, 64, 64, 3)]
    with pytest.raises(ValueError):
        plain.get_layer("unet_stage5_concat")  # without it the last stage has no skip, as before
    assert fine.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0).shape == (1, 64, 64, 1)


def test_a_one_pixel_change_reaches_the_output_through_the_skip_alone():
    """With the last stage's first convolution reading the image alone, a one-pixel change moves the output
    exactly within the 5 x 5 window the two 3 x 3 layers after it reach, and nowhere else."""
    model = create_model("unet", "effnet-lite0", input_shape=(64, 64, 3), fine_skip=True)
    conv = model.get_layer("unet_stage5_conv1_conv")
    kernel = conv.get_weights()[0]
    only_skip = np.zeros_like(kernel)
    only_skip[1, 1, 32:, :] = 1.0  # the centre tap of the 3 image channels
    conv.set_weights([only_skip, *conv.get_weights()[1:]])
    image = np.full((1, 64, 64, 3), 100.0, "float32")
    changed = image.copy()
    changed[0, 31, 31] = 200.0
    diff = np.abs(model.predict(changed, verbose=0) - model.predict(image, verbose=0))[0, ..., 0]
    window = np.zeros_like(diff, bool)
    window[29:34, 29:34] = True
    assert diff[window].max() > 1e-3 and diff[~window].max() == 0.0


def test_only_decoders_with_a_full_resolution_stage_take_it(tmp_path):
    with pytest.raises(ValueError, match="fpn decoder has no full-resolution stage; use it with unet"):
        create_model("fpn", "effnet-lite0", input_shape=(64, 64, 3), fine_skip=True)
    assert_train_refuses(
        tmp_path / "run", ["--arch", "fpn", "--fine-skip"], "--fine-skip: the fpn decoder has no full-resolution stage"
    )


def test_recipe_label_names_the_fine_skip():
    from experiments.report import recipe_label

    recipe = {"augment": "basic", "calibrate": "train", "standardize": "none", "lr": 2e-3, "steps": 210}
    assert recipe_label({**recipe, "fine_skip": True, "gap_weight": 10.0}, "ema") == "basic/ema/gap weight 10/fine skip"
    assert recipe_label({**recipe, "fine_skip": False}, "ema") == "basic/ema"
