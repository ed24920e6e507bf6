"""EfficientNet B0..B7: exact parameter counts, exact outputs after a weight copy, MACs."""

import functools

import keras
import numpy as np
import pytest

from models import count_macs
from models.encoders import copy_keras_applications_weights, create_encoder, efficientnet
from models.encoders.efficientnet import SCALING
from models.encoders.registry import pyramid_channels

# Parameter counts of keras.applications.EfficientNetB0..B7 (keras 3.15, weights=None),
# with the 1000-class head and without it (include_top=False).
PUBLISHED_PARAMS = {
    "b0": (5_330_571, 4_049_571),
    "b1": (7_856_239, 6_575_239),
    "b2": (9_177_569, 7_768_569),
    "b3": (12_320_535, 10_783_535),
    "b4": (19_466_823, 17_673_823),
    "b5": (30_562_527, 28_513_527),
    "b6": (43_265_143, 40_960_143),
    "b7": (66_658_687, 64_097_687),
}
# Paper, Table 2: FLOPs (multiply-adds) at the native resolution, in G.
PAPER_GMACS = {"b0": 0.39, "b1": 0.70, "b2": 1.0, "b3": 1.8, "b4": 4.2, "b5": 9.9, "b6": 19, "b7": 37}
SMALL = (64, 64, 3)
VARIANTS = [variant for variant in SCALING if variant.startswith("b")]  # the Lite family: test_pretrained.py
GIANTS = ("b5", "b6", "b7")


def _slow_if_giant(variants):
    return [pytest.param(v, marks=pytest.mark.slow) if v in GIANTS else v for v in variants]


def _keras_app(variant, **kwargs):
    return getattr(keras.applications, f"EfficientNetB{variant[1]}")(weights=None, **kwargs)


@functools.lru_cache(maxsize=4)
def _ours(variant, include_top, input_shape):
    return efficientnet(variant, include_top=include_top, input_shape=input_shape)


@pytest.mark.parametrize("variant", VARIANTS)
def test_param_counts_equal_keras_applications(variant):
    with_head, without_head = PUBLISHED_PARAMS[variant]
    model = efficientnet(variant, include_top=True, input_shape=SMALL)
    assert model.count_params() == with_head
    assert model.count_params() - model.get_layer("predictions").count_params() == without_head


@pytest.mark.parametrize("variant", ["b0", "b3"])
def test_headless_and_encoder_param_counts(variant):
    without_head = PUBLISHED_PARAMS[variant][1]
    assert _ours(variant, False, SMALL).count_params() == without_head
    # the encoder is the headless network, so it has the same count
    assert create_encoder(f"effnet-{variant}", input_shape=SMALL).count_params() == without_head


@pytest.mark.parametrize(
    "variant", ["b0", "b3"] + [pytest.param(v, marks=pytest.mark.slow) for v in ("b1", "b2", "b4", "b5", "b6", "b7")]
)
def test_param_counts_equal_live_keras_applications(variant):
    assert _keras_app(variant, input_shape=SMALL).count_params() == PUBLISHED_PARAMS[variant][0]
    assert _keras_app(variant, include_top=False, input_shape=SMALL).count_params() == PUBLISHED_PARAMS[variant][1]


def test_b0_without_normalization_stats():
    model = _ours("b0", False, SMALL)
    norm = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    assert len(norm) == 1 and norm[0].count_params() == 7
    assert model.count_params() - 7 == 4_049_564


@pytest.mark.parametrize(
    "variant,include_top,shape",
    [("b0", True, (224, 224, 3)), ("b0", False, (96, 128, 3)), ("b2", True, (96, 96, 3)), ("b3", False, (75, 101, 3))],
)
def test_outputs_equal_keras_applications_after_copy(variant, include_top, shape):
    source = (
        _keras_app(variant, include_top=include_top, input_shape=shape, classifier_activation=None)
        if include_top
        else _keras_app(variant, include_top=False, input_shape=shape)
    )
    # a random, non-trivial input normalization and BN statistics so every weight matters
    rng = np.random.RandomState(0)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    gamma * rng.uniform(0.5, 1.5, gamma.shape),
                    beta + rng.normal(0, 0.1, beta.shape),
                    mean + rng.normal(0, 0.1, mean.shape),
                    var * rng.uniform(0.5, 2.0, var.shape),
                ]
            )
    target = efficientnet(variant, include_top=include_top, input_shape=shape)
    if include_top:  # the comparison is on logits, so drop our softmax too
        target.get_layer("predictions").activation = keras.activations.linear
    copy_keras_applications_weights(source, target)
    x = rng.uniform(0, 255, (2,) + shape).astype("float32")
    expected = source(x, training=False).numpy()
    actual = target(x, training=False).numpy()
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)
    assert np.abs(expected).max() > 1e-2  # the outputs are not trivially zero


def test_imagenet_style_normalization_is_folded():
    """keras.applications' ImageNet models add a Rescaling after the norm; the copy folds it."""
    import math

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    norm = keras.layers.Normalization(axis=-1)
    x = norm(x)
    std = [0.229, 0.224, 0.225]
    x = keras.layers.Rescaling([1 / math.sqrt(s) for s in std])(x)
    x = keras.layers.Conv2D(4, 3, use_bias=False)(x)
    source = keras.Model(inputs, x)
    norm.adapt_mean.assign([0.485, 0.456, 0.406])
    norm.adapt_variance.assign(std)  # keras.applications stores the std here
    norm.finalize_state()

    t_in = keras.Input((32, 32, 3))
    from models.encoders.preprocess import imagenet_normalize

    t_norm_out = imagenet_normalize(t_in)
    target = keras.Model(t_in, keras.layers.Conv2D(4, 3, use_bias=False)(t_norm_out))
    copy_keras_applications_weights(source, target)
    x = np.random.RandomState(3).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(target(x).numpy(), source(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(target.layers[2].adapt_variance.numpy(), np.square(std), rtol=1e-6)


def test_copy_refuses_mismatched_variant():
    with pytest.raises(ValueError, match="weighted layers|mismatch"):
        copy_keras_applications_weights(
            _keras_app("b1", include_top=False, input_shape=SMALL), _ours("b0", False, SMALL)
        )


@pytest.mark.parametrize("variant", _slow_if_giant(VARIANTS))
def test_macs_within_5_percent_of_paper(variant):
    resolution = SCALING[variant][2]
    macs = count_macs(efficientnet(variant, input_shape=(resolution, resolution, 3)))
    assert abs(macs / 1e9 / PAPER_GMACS[variant] - 1) < 0.05


def test_b0_macs_exact_value_and_profiler_ratio():
    from tests.helpers import profiler_float_ops

    model = _ours("b0", True, (224, 224, 3))
    macs = count_macs(model)
    assert macs == 385_814_752  # analytic count, stable unless the architecture changes
    ratio = profiler_float_ops(model) / macs
    assert 2.0 <= ratio <= 2.15


@pytest.mark.parametrize("variant", ["b0", "b3"])
def test_encoder_pyramid_strides_and_channels(variant):
    encoder = create_encoder(f"effnet-{variant}", input_shape=(128, 160, 3))
    outputs = encoder(np.zeros((1, 128, 160, 3), "float32"))
    assert sorted(outputs) == ["P1", "P2", "P3", "P4", "P5"]
    for level in range(1, 6):
        tensor = outputs[f"P{level}"]
        assert tensor.shape[1:3] == (128 // 2**level, 160 // 2**level)
        assert tensor.shape[-1] == pyramid_channels(encoder)[f"P{level}"]
    if variant == "b0":
        assert pyramid_channels(encoder) == {"P1": 16, "P2": 24, "P3": 40, "P4": 112, "P5": 1280}
    else:
        assert pyramid_channels(encoder) == {"P1": 24, "P2": 32, "P3": 48, "P4": 136, "P5": 1536}


def test_encoder_accepts_dynamic_size():
    encoder = create_encoder("effnet-b0")
    outputs = encoder(np.zeros((1, 96, 64, 3), "float32"))
    assert outputs["P5"].shape == (1, 3, 2, 1280)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: efficientnet("b9"), "Valid variants: b0, b1, b2, b3, b4, b5, b6, b7"),
        (lambda: create_encoder("effnet-b9"), "Valid names: .*effnet-b0"),
        (lambda: create_encoder("effnet-b0", input_shape=(100, 128, 3)), "multiples of 32"),
        (lambda: create_encoder("effnet-b0", input_shape=(128, 128, 2)), "input_shape must end in 3 or more"),
        (lambda: efficientnet("b0", input_shape=(224, 224, 1)), r"\(H, W, 3\)"),
        (lambda: efficientnet("b0", weights="imagenet21k"), "weights must be None or 'imagenet'"),
    ],
)
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
