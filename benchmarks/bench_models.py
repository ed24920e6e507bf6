"""Train-step and predict throughput: our EfficientNet-B0 vs keras.applications', same decoder.

Both encoders feed the SAME decoder code, and the keras.applications weights are copied
into ours, so the two models compute the same function; runs are interleaved in one
process and the median of each is reported.

    python -m benchmarks.bench_models                       # unet, fpn, fcn8 at 256, batch 8
    python -m benchmarks.bench_models --archs unet --repeats 5 --size 256 --batch 8
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from blocks.calibration import logit_offset
from blocks.upsampling import upsample
from models import create_model
from models.decoders import DECODERS
from models.encoders import copy_keras_applications_weights
from models.segmenter import DEFAULT_BN_MOMENTUM, set_bn_momentum

# keras.applications' layer names at the end of each stride (B0 only; the reference side).
KERAS_B0_TAPS = {
    "P1": "block1a_project_bn",
    "P2": "block2b_add",
    "P3": "block3b_add",
    "P4": "block5c_add",
    "P5": "top_activation",
}


def reference_model(arch, size):
    """The same decoder over keras.applications.EfficientNetB0 (random init)."""
    base = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(size, size, 3))
    pyramid = {level: base.get_layer(name).output for level, name in KERAS_B0_TAPS.items()}
    channels = {level: int(t.shape[-1]) for level, t in pyramid.items()}
    logits, stride = DECODERS[arch](pyramid, channels, 1)
    if stride > 1:
        logits = upsample(logits, stride, name="head_upsample")
    logits = logit_offset(logits, name="logits")
    model = keras.Model(base.input, logits, name=f"{arch}_keras_b0")
    set_bn_momentum(model, DEFAULT_BN_MOMENTUM)
    return base, model


def compiled_steps(model):
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def predict_step(x):
        return model(x, training=False)

    return train_step, predict_step


def timed(fn, *args, steps):
    start = time.perf_counter()
    for _ in range(steps):
        out = fn(*args)
    np.asarray(out)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["unet", "fpn", "fcn8"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed runs per model")
    args = parser.parse_args()

    rng = np.random.RandomState(0)
    x = tf.constant(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32"))
    y = tf.constant((rng.rand(args.batch, args.size, args.size, 1) > 0.8).astype("float32"))
    print(
        f"device: {tf.config.list_logical_devices()[-1].device_type}, size {args.size}, batch {args.batch}, "
        f"{args.steps} steps x {args.repeats} interleaved repeats"
    )
    print(
        "| arch | encoder | train img/s | predict img/s | train ratio ours/ref | predict ratio ours/ref "
        "| max |Δ logits| |"
    )
    print("|---|---|---|---|---|---|---|")
    for arch in args.archs:
        base, reference = reference_model(arch, args.size)
        ours = create_model(arch, "effnet-b0", input_shape=(args.size, args.size, 3))
        copy_keras_applications_weights(base, ours.get_layer("effnet-b0"))
        # copy the decoder too, so both compute exactly the same function
        decoder_src = [
            layer for layer in reference.layers if layer.weights and layer.name not in {x.name for x in base.layers}
        ]
        for layer in decoder_src:
            ours.get_layer(layer.name).set_weights(layer.get_weights())
        diff = float(np.abs(ours.predict(x[:2], verbose=0) - reference.predict(x[:2], verbose=0)).max())
        steps = {name: compiled_steps(model) for name, model in (("ours", ours), ("ref", reference))}
        for name in steps:  # warm-up: trace and compile
            steps[name][0](x, y)
            steps[name][1](x)
        train = {"ours": [], "ref": []}
        predict = {"ours": [], "ref": []}
        for _ in range(args.repeats):
            for name in ("ours", "ref"):
                train[name].append(args.batch * args.steps / timed(steps[name][0], x, y, steps=args.steps))
                predict[name].append(args.batch * args.steps / timed(steps[name][1], x, steps=args.steps))
        med = {k: {n: statistics.median(v[n]) for n in v} for k, v in (("train", train), ("predict", predict))}
        for name, label in (("ours", "effnet-b0 (ours)"), ("ref", "keras.applications B0")):
            print(
                f"| {arch} | {label} | {med['train'][name]:.2f} | {med['predict'][name]:.2f} | "
                + (
                    f"{med['train']['ours'] / med['train']['ref']:.3f} | "
                    f"{med['predict']['ours'] / med['predict']['ref']:.3f} | {diff:.1e} |"
                    if name == "ours"
                    else " | | |"
                )
            )


if __name__ == "__main__":
    main()
