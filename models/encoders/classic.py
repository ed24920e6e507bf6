"""The classic encoders the experiments compare against: VGG16, MobileNetV2, ResNet-18/34.

Each records its pyramid taps while it builds: the last tensor before every stride
change, so P_n sits at stride 2**n.
"""

import keras
from keras import layers

from blocks import conv_bn_act, mbconv
from models.encoders.preprocess import imagenet_normalize
from models.encoders.registry import register_encoder


def _pyramid_model(inputs, taps, name, weights):
    model = keras.Model(inputs, taps, name=name)
    if weights is not None:
        from models.encoders.weights import load_encoder_weights

        load_encoder_weights(model, name, weights)
    return model


# --- VGG16 (Simonyan & Zisserman): the encoder of the original FCN-8 -------------------
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


@register_encoder("vgg16")
def vgg16(*, input_shape, weights=None):
    """VGG16 convolutions (3x3, bias, ReLU, no BN) with max-pool downsampling."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = imagenet_normalize(inputs)
    taps = {}
    for stage, (filters, convs) in enumerate(VGG16_STAGES, start=1):
        for index in range(1, convs + 1):
            x = conv_bn_act(x, filters, 3, activation="relu", use_bn=False, name=f"block{stage}_conv{index}")
        if stage > 1:
            taps[f"P{stage - 1}"] = x
        x = layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)
    taps["P5"] = x
    return _pyramid_model(inputs, taps, "vgg16", weights)


# --- MobileNetV2 (Sandler et al.): inverted residuals without squeeze-excite -----------
# (expand_ratio, filters, repeats, stride), paper Table 2.
MOBILENETV2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


@register_encoder("mobilenetv2", imagenet="keras.applications")
def mobilenetv2(*, input_shape, weights=None):
    """MobileNetV2 (width 1.0): the same layer sequence as keras.applications.MobileNetV2."""
    inputs = keras.Input(shape=input_shape, name="image")
    # keras.applications.MobileNetV2 expects inputs scaled to [-1, 1]
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_rescale")(inputs)
    x = conv_bn_act(x, 32, 3, strides=2, activation="relu6", name="stem")
    taps, level, index = {}, 1, 0
    for expand, filters, repeats, stride in MOBILENETV2_STAGES:
        if stride == 2:
            taps[f"P{level}"] = x
            level += 1
        for repeat in range(repeats):
            x = mbconv(
                x,
                filters,
                kernel_size=3,
                strides=stride if repeat == 0 else 1,
                expand_ratio=expand,
                se_ratio=0.0,
                activation="relu6",
                name=f"block{index}",
            )
            index += 1
    taps[f"P{level}"] = conv_bn_act(x, 1280, 1, activation="relu6", name="top")
    return _pyramid_model(inputs, taps, "mobilenetv2", weights)


# --- ResNet-18/34 (He et al.): basic residual blocks, the common baseline ------------
RESNET_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


def basic_block(x, filters, *, strides, name):
    """Two 3x3 conv-BN (ReLU between), plus a 1x1 projection shortcut when the shape changes."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn_act(x, filters, 1, strides=strides, activation=None, name=f"{name}_down")
    x = conv_bn_act(x, filters, 3, strides=strides, activation="relu", name=f"{name}_1")
    x = conv_bn_act(x, filters, 3, activation=None, name=f"{name}_2")
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _resnet(name):
    def build(*, input_shape, weights=None):
        inputs = keras.Input(shape=input_shape, name="image")
        x = imagenet_normalize(inputs)
        x = conv_bn_act(x, 64, 7, strides=2, activation="relu", name="stem")
        taps = {"P1": x}
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
        for stage, repeats in enumerate(RESNET_DEPTHS[name]):
            filters = 64 * 2**stage
            for repeat in range(repeats):
                strides = 2 if stage > 0 and repeat == 0 else 1
                x = basic_block(x, filters, strides=strides, name=f"layer{stage + 1}_{repeat}")
            taps[f"P{stage + 2}"] = x
        return _pyramid_model(inputs, taps, name, weights)

    build.__doc__ = f"{name}: 7x7 stem, max-pool, four stages of basic blocks."
    return build


for _name in RESNET_DEPTHS:
    register_encoder(_name)(_resnet(_name))
