"""Every decoder over every encoder: shapes, a real train step, save/load, counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from blocks.upsampling import bilinear_transpose
from models import count_macs, create_model, list_archs, list_encoders

ARCHS = list_archs()
# The default suite covers every arch on effnet-b0, every encoder under U-Net (of the
# scaled EfficientNets only B1 and B3) and the natural classic pairings; `pytest -m slow`
# runs all pairs.
FAST_PAIRS = {("fcn8", "vgg16"), ("fpn", "mobilenetv2"), ("linknet", "resnet18")}
# b1 and b3 stand for the scaled B variants, lite0 and lite4 for the Lite family
GIANTS = {
    "effnet-b2",
    "effnet-b4",
    "effnet-b5",
    "effnet-b6",
    "effnet-b7",
    "effnet-lite1",
    "effnet-lite2",
    "effnet-lite3",
}


def _pairs():
    for encoder in list_encoders():
        for arch in ARCHS:
            fast = encoder == "effnet-b0" or (arch == "unet" and encoder not in GIANTS) or (arch, encoder) in FAST_PAIRS
            marks = () if fast else (pytest.mark.slow,)
            yield pytest.param(arch, encoder, marks=marks, id=f"{arch}-{encoder}")


def test_registries_list_the_promised_names():
    assert ARCHS == ["cnn", "deeplabv3plus", "fcn16", "fcn32", "fcn8", "fpn", "linknet", "unet"]
    assert set(list_encoders()) >= {f"effnet-b{i}" for i in range(8)} | {"vgg16", "mobilenetv2", "resnet18", "resnet34"}
    assert {f"effnet-lite{i}" for i in range(5)} <= set(list_encoders())


@pytest.mark.parametrize("arch,encoder", list(_pairs()))
def test_pair_builds_predicts_and_trains(arch, encoder):
    fixed = arch == "cnn"
    num_classes = 1 if encoder != "resnet18" else 3
    model = create_model(arch, encoder, num_classes=num_classes, input_shape=(64, 96, 3) if fixed else (None, None, 3))
    rng = np.random.RandomState(0)
    sizes = [(64, 96)] if fixed else [(64, 64), (64, 96)]
    for height, width in sizes:
        logits = model(rng.uniform(0, 255, (2, height, width, 3)).astype("float32"), training=False)
        assert logits.shape == (2, height, width, num_classes)
        assert logits.dtype == tf.float32
    # one train step: finite loss, a non-zero gradient for every trainable variable.
    # Batch 8 so that stochastic depth (p <= 0.2) never drops a block for the whole batch.
    x = rng.uniform(0, 255, (8, 64, 96, 3)).astype("float32")
    y = (rng.rand(8, 64, 96, 1) > 0.7).astype("float32")
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        if num_classes == 1:
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
        else:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(y[..., 0], tf.int32), logits))
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(loss.numpy())
    zero = [v.path for v, g in zip(model.trainable_variables, grads) if g is None or not np.any(g.numpy())]
    assert zero == []


@pytest.mark.parametrize("arch,encoder", [("unet", "effnet-lite0"), ("fpn", "resnet18"), ("cnn", "vgg16")])
def test_logits_stay_float32_under_mixed_float16(arch, encoder):
    """The policy train.py --precision mixed_float16 sets: float16 inside the network, float32 logits and loss."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = create_model(arch, encoder, input_shape=(64, 64, 3), num_classes=2)
        computed = {layer.compute_dtype for layer in model.layers[1:-1]}
        logits = model(np.random.RandomState(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert computed == {"float16"}  # the network itself runs in half precision
    assert model.get_layer("logits").compute_dtype == "float32"
    assert logits.dtype == tf.float32 and logits.shape == (1, 64, 64, 2)
    assert np.isfinite(logits.numpy()).all()


def test_cnn_baseline_needs_a_fixed_size():
    with pytest.raises(ValueError, match="fixed input size"):
        create_model("cnn", "effnet-b0", input_shape=(None, None, 3))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(arch="segformer", encoder="effnet-b0"), "Valid archs: cnn, deeplabv3plus, fcn16"),
        (dict(arch="unet", encoder="resnet999"), "Valid encoders: .*effnet-b0"),
        (dict(arch="unet", encoder="effnet-b0", input_shape=(250, 256, 3)), "multiples of 32"),
        (dict(arch="unet", encoder="effnet-b0", num_classes=0), "num_classes"),
        (dict(arch="unet", encoder="resnet18", encoder_weights="imagenet"), "No ImageNet weights for 'resnet18'"),
    ],
)
def test_bad_arguments(kwargs, match):
    arch, encoder = kwargs.pop("arch"), kwargs.pop("encoder")
    with pytest.raises(ValueError, match=match):
        create_model(arch, encoder, **kwargs)


@pytest.mark.parametrize("arch", ["unet", "fcn8", "deeplabv3plus", "cnn"])
def test_keras_save_load_round_trip_is_exact(arch, tmp_path):
    model = create_model(arch, "mobilenetv2", input_shape=(64, 64, 3))
    x = np.random.RandomState(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    # change BN statistics away from their init so the check covers them
    model(x, training=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode stays on, no custom_objects
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())
    assert loaded.count_params() == model.count_params()


@pytest.mark.parametrize("encoder", ["effnet-b0", "resnet18"])
def test_no_two_kernels_start_equal(encoder):
    """Each layer draws its own initial kernel (a shared seeded initializer would repeat it)."""
    model = create_model("unet", encoder, input_shape=(None, None, 3))
    kernels = [w for w in model.weights if "kernel" in w.path]
    assert len(kernels) > 20
    assert len({np.asarray(w.numpy()).tobytes() for w in kernels}) == len(kernels)


# EfficientNet-B0: stem 1 + first block 2 (no expansion) + 15 blocks x 3 + top 1 = 49; U-Net: 5 stages x 2 = 10
BN_COUNT_UNET_B0 = 59


def test_bn_momentum_reaches_nested_encoder():
    model = create_model("unet", "effnet-b0", input_shape=(64, 64, 3), bn_momentum=0.8)
    from models.walk import leaf_layers

    bns = [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == BN_COUNT_UNET_B0 and {layer.momentum for layer in bns} == {0.8}


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_fcn_bilinear_upsampling_matches_bilinear_resize(factor):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, bilinear_transpose(inputs, factor, name="up"))
    yy, xx = np.mgrid[0:8, 0:8]
    x = np.stack([np.sin(yy / 3.0) + np.cos(xx / 4.0), 0.1 * yy + 0.2 * xx], -1)[None].astype("float32")
    ours = model(x).numpy()
    reference = tf.image.resize(x, (8 * factor, 8 * factor), "bilinear").numpy()
    interior = (slice(None), slice(factor, -factor), slice(factor, -factor))
    np.testing.assert_allclose(ours[interior], reference[interior], atol=1e-5)


def test_fcn32_counts_by_hand():
    model = create_model("fcn32", "effnet-b0", input_shape=(64, 64, 3))
    # decoder: 1x1 score conv on P5 (1280 -> 1, bias) + 64x64 transposed kernel (no bias)
    assert model.count_params() == 4_049_571 + (1280 + 1) + 64 * 64
    encoder_macs = count_macs(model.get_layer("effnet-b0"))
    # P5 is 2x2: score conv 4*1280; transposed conv scatters 4 pixels x 64*64 taps
    assert count_macs(model) == encoder_macs + 4 * 1280 + 4 * 64 * 64


def test_fcn8_counts_by_hand():
    model = create_model("fcn8", "effnet-b0", input_shape=(64, 64, 3))
    scores = (1280 + 1) + (112 + 1) + (40 + 1)
    ups = 2 * (4 * 4) + 16 * 16  # two 2x (4x4 kernels) and one 8x (16x16 kernel)
    assert model.count_params() == 4_049_571 + scores + ups
    encoder_macs = count_macs(model.get_layer("effnet-b0"))
    # P5 2x2, P4 4x4, P3 8x8
    score_macs = 4 * 1280 + 16 * 112 + 64 * 40
    up_macs = 4 * 16 + 16 * 16 + 64 * 256
    assert count_macs(model) == encoder_macs + score_macs + up_macs


def test_unet_params_by_hand():
    model = create_model("unet", "resnet18", input_shape=(64, 64, 3))
    skips = [256, 128, 64, 64, 0]  # resnet18 P4..P1 channels, then no skip
    cin, expected = 512, 0
    for filters, skip in zip((256, 128, 64, 32, 16), skips):
        expected += 9 * (cin + skip) * filters + 4 * filters + 9 * filters * filters + 4 * filters
        cin = filters
    expected += 9 * 16 * 1 + 1
    assert model.count_params() == 11_186_119 + expected


def test_info_command_prints_params_and_gmacs(capsys):
    from models.info import main

    main(["effnet-b0", "--arch", "fcn32", "--size", "64"])
    out = capsys.readouterr().out
    assert "fcn32 / effnet-b0" in out
    assert "4,054,948" in out  # as counted by hand above
