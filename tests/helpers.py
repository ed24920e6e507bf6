"""Helpers only the tests use: TensorFlow's own op count, single-image augmentation, building counts, refusals."""

import tensorflow as tf

from common.scores import _components
from data.pipeline import augment_batch


def profiler_float_ops(model, *, batch_size=1):
    """Float ops TensorFlow's profiler counts for one inference pass of ``model``."""
    shape = (batch_size,) + tuple(model.input.shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"profiler_float_ops needs a fixed input size. Received: input shape {shape}")
    # the traced graph reads the weights as variables; the op counts are the same as a frozen graph's
    concrete = tf.function(model.__call__).get_concrete_function(tf.TensorSpec(shape, tf.float32), training=False)
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    stats = tf.compat.v1.profiler.profile(
        graph=concrete.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return stats.total_float_ops


def augment(image, mask, seed, **kwargs):
    """``data.pipeline.augment_batch`` for a single (H, W, 3) image and (H, W, 1) mask."""
    images, masks = augment_batch(image[None], mask[None], seed, **kwargs)
    return images[0], masks[0]


def count_buildings(mask, *, min_area=16):
    """Buildings in a bool mask: 4-connected components of at least ``min_area`` pixels."""
    return len(_components(mask, min_area)[1]) - 1


def assert_train_refuses(run_dir, args, message):
    """``python train.py ARGS --run-dir RUN_DIR`` exits non-zero, says ``message`` and writes nothing there."""
    import subprocess
    import sys
    from pathlib import Path

    cmd = [sys.executable, "train.py", *args, "--run-dir", str(run_dir)]
    done = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
    assert not Path(run_dir).exists()
