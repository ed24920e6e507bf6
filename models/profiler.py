"""TensorFlow's own float-op count of a model: a cross-check for ``count_macs``.

The profiler counts a multiply-add as two float ops and also counts element-wise work
(bias adds, batch norm, activations), so expect a bit more than 2x the MAC count.
"""

import tensorflow as tf


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
