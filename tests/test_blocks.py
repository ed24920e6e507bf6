"""Block shapes, closed-form MAC counts and the compound-scaling helpers."""

import keras
import numpy as np
import pytest

from blocks import conv_bn_act, depthwise_separable_conv, mbconv, round_filters, round_repeats, squeeze_excite
from models import count_macs


def _model(block, shape=(32, 32, 16)):
    inputs = keras.Input(shape=shape)
    return keras.Model(inputs, block(inputs))


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_conv_bn_act_shape(strides, kernel):
    model = _model(lambda x: conv_bn_act(x, 24, kernel, strides=strides, name="c"))
    assert model.output.shape == (None, 32 // strides, 32 // strides, 24)
    # conv kernel + BN (gamma, beta, mean, var)
    assert model.count_params() == kernel * kernel * 16 * 24 + 4 * 24


@pytest.mark.parametrize("strides", [1, 2])
def test_depthwise_separable_shape_params_macs(strides):
    model = _model(lambda x: depthwise_separable_conv(x, 32, 3, strides=strides, name="ds"))
    side = 32 // strides
    assert model.output.shape == (None, side, side, 32)
    assert model.count_params() == 9 * 16 + 4 * 16 + 16 * 32 + 4 * 32
    assert count_macs(model) == side * side * (9 * 16 + 16 * 32)


def test_depthwise_separable_odd_size_rounds_up():
    model = _model(lambda x: depthwise_separable_conv(x, 8, 3, strides=2, name="ds"), shape=(33, 31, 4))
    assert model.output.shape == (None, 17, 16, 8)


def test_squeeze_excite_gates_channels():
    model = _model(lambda x: squeeze_excite(x, 4, name="se"), shape=(8, 8, 16))
    assert model.output.shape == (None, 8, 8, 16)
    assert model.count_params() == (16 * 4 + 4) + (4 * 16 + 16)
    x = np.random.RandomState(0).rand(2, 8, 8, 16).astype("float32")
    y = model.predict(x, verbose=0)
    ratio = y / x  # the same sigmoid gate for every pixel of a channel
    np.testing.assert_allclose(ratio, ratio[:, :1, :1, :].repeat(8, 1).repeat(8, 2), rtol=1e-4)
    # the gate by hand: sigmoid(W2 swish(W1 mean(x) + b1) + b2)
    w1, b1, w2, b2 = (model.get_layer(f"se_{part}").get_weights()[i] for part in ("reduce", "expand") for i in (0, 1))
    hidden = x.mean(axis=(1, 2)) @ w1[0, 0] + b1
    hidden = hidden / (1 + np.exp(-hidden))
    gate = 1 / (1 + np.exp(-(hidden @ w2[0, 0] + b2)))
    np.testing.assert_allclose(ratio[:, 0, 0, :], gate, rtol=1e-4)


def _mbconv_closed_form(h, w, cin, cout, k, s, e, se):
    hidden = cin * e
    ho, wo = -(-h // s), -(-w // s)
    macs = h * w * cin * hidden if e != 1 else 0
    macs += ho * wo * k * k * hidden
    reduced = max(1, int(cin * se))
    macs += hidden * reduced + reduced * hidden if se else 0
    macs += ho * wo * hidden * cout
    params = (cin * hidden + 4 * hidden if e != 1 else 0) + k * k * hidden + 4 * hidden
    params += (hidden * reduced + reduced + reduced * hidden + hidden) if se else 0
    params += hidden * cout + 4 * cout
    return macs, params


@pytest.mark.parametrize(
    "cin,cout,k,s,e,se",
    [
        (16, 16, 3, 1, 1, 0.25),
        (16, 24, 3, 2, 6, 0.25),
        (24, 24, 5, 1, 6, 0.25),
        (24, 40, 5, 2, 4, 0.0),
        (32, 32, 3, 1, 3, 0.0),
    ],
)
def test_mbconv_shape_params_macs(cin, cout, k, s, e, se):
    model = _model(
        lambda x: mbconv(x, cout, kernel_size=k, strides=s, expand_ratio=e, se_ratio=se, drop_rate=0.1, name="mb"),
        shape=(32, 32, cin),
    )
    assert model.output.shape == (None, 32 // s, 32 // s, cout)
    macs, params = _mbconv_closed_form(32, 32, cin, cout, k, s, e, se)
    assert count_macs(model) == macs
    assert model.count_params() == params
    has_skip = any(isinstance(layer, keras.layers.Add) for layer in model.layers)
    assert has_skip == (s == 1 and cin == cout)


def test_mbconv_stochastic_depth_identity_at_inference_and_drops_in_training():
    model = _model(lambda x: mbconv(x, 16, expand_ratio=6, drop_rate=0.5, name="mb"), shape=(8, 8, 16))
    x = np.random.RandomState(1).rand(64, 8, 8, 16).astype("float32")
    a = model(x, training=False).numpy()
    b = model(x, training=False).numpy()
    np.testing.assert_array_equal(a, b)
    trained = model(x, training=True).numpy()
    # some samples see only the identity skip (the whole branch dropped)
    dropped = np.all(np.isclose(trained, x, atol=1e-6), axis=(1, 2, 3))
    assert 5 < dropped.sum() < 59


def test_mbconv_rejects_bad_stride():
    with pytest.raises(ValueError, match="strides"):
        _model(lambda x: mbconv(x, 16, strides=3, name="mb"))


@pytest.mark.parametrize(
    "filters,width,expected",
    [
        (32, 1.0, 32),
        (32, 1.1, 32),
        (32, 1.2, 40),
        (1280, 1.2, 1536),
        (16, 1.4, 24),
        (320, 1.8, 576),
        (1280, 2.0, 2560),
        (40, 1.6, 64),
        (3, 1.0, 8),
    ],
)
def test_round_filters_known_values(filters, width, expected):
    assert round_filters(filters, width) == expected


@pytest.mark.parametrize("repeats,depth,expected", [(1, 1.0, 1), (2, 1.1, 3), (3, 1.4, 5), (4, 3.1, 13), (1, 2.2, 3)])
def test_round_repeats_known_values(repeats, depth, expected):
    assert round_repeats(repeats, depth) == expected


def test_scaling_helpers_reject_nonpositive():
    with pytest.raises(ValueError, match="width_coefficient"):
        round_filters(32, 0)
    with pytest.raises(ValueError, match="depth_coefficient"):
        round_repeats(2, -1.0)


def test_image_standardization_gives_every_image_one_mean_and_spread(tmp_path):
    import keras

    from blocks.normalization import ImageStandardization
    from inference.loading import load_segmenter
    from models import count_macs, create_model

    rng = np.random.default_rng(0)
    dark = rng.uniform(10, 60, (1, 32, 32, 3)).astype("float32")
    bright = dark * 2 + 120  # the same scene, brighter and with more contrast
    out = ImageStandardization()(np.concatenate([dark, bright, np.full_like(dark, 77.0)])).numpy()
    np.testing.assert_allclose(out[:2].mean(axis=(1, 2)), 128.0, atol=1e-3)
    np.testing.assert_allclose(out[:2].std(axis=(1, 2)), 64.0, rtol=1e-4)
    np.testing.assert_allclose(out[0], out[1], atol=1e-3)  # exposure and contrast removed
    np.testing.assert_array_equal(out[2], 128.0)  # a flat image stays finite
    keras.utils.set_random_seed(0)
    model = create_model("unet", "effnet-b0", input_shape=(None, None, 3), standardize=True)
    plain = create_model("unet", "effnet-b0", input_shape=(64, 64, 3))
    assert model.layers[1].name == "standardize" and model.count_params() == plain.count_params()
    fixed = create_model("unet", "effnet-b0", input_shape=(64, 64, 3), standardize=True)
    assert count_macs(fixed) == count_macs(plain)  # an elementwise layer: no multiply-adds counted
    model.save(tmp_path / "model.keras")
    loaded, _ = load_segmenter(tmp_path / "model.keras")  # safe_mode loading knows the layer
    np.testing.assert_allclose(loaded(bright).numpy(), model(bright).numpy(), atol=1e-5)
    np.testing.assert_allclose(model(dark).numpy(), model(bright).numpy(), atol=1e-3)
