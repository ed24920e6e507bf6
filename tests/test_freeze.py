"""The frozen prediction graph: when TensorFlow's private freezing API fails, predict.py says so and still predicts."""

import numpy as np
import pytest
import tensorflow as tf

from inference import tiling


def test_a_failed_freeze_warns_and_keeps_the_unfrozen_function(monkeypatch):
    from tensorflow.python.framework import convert_to_constants

    def broken(function):
        raise AttributeError("moved in a newer TensorFlow")

    monkeypatch.setattr(convert_to_constants, "convert_variables_to_constants_v2", broken)
    function = tf.function(lambda x: x * 2.0).get_concrete_function(tf.TensorSpec([None, 2], tf.float32))
    with pytest.warns(RuntimeWarning, match="Could not freeze the prediction graph .*moved in a newer TensorFlow"):
        kept = tiling.freeze(function)
    assert kept is function
    np.testing.assert_array_equal(kept(tf.constant([[1.0, 2.0]])).numpy(), [[2.0, 4.0]])
