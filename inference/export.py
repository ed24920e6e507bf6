"""Export a trained model for serving: a SavedModel and TFLite models, raw uint8 RGB in.

Both take what a camera or a GeoTIFF hands over - uint8 (N, H, W, 3) RGB - and return
building probabilities (N, H, W, 1) in float32; normalisation lives inside the model.

- SavedModel (signature ``serving_default``): any H and W; the input is mirror-padded to
  the output stride inside the graph and the result cropped back.
- TFLite: a fixed (1, tile, tile, 3) input, as mobile runtimes want, in float32 and with
  dynamic-range int8 weights (``Optimize.DEFAULT`` without a representative dataset:
  weights stored as int8, activations computed in float).
"""

import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from inference.tiling import input_bands
from models.registry import OUTPUT_STRIDE

TFLITE_KINDS = ("float32", "int8")


def _probabilities(model, images):
    """uint8 (N, H, W, 3) -> float32 probabilities; pads to the output stride and crops back."""
    x = tf.cast(images, tf.float32)
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    pad_h = (OUTPUT_STRIDE - height % OUTPUT_STRIDE) % OUTPUT_STRIDE
    pad_w = (OUTPUT_STRIDE - width % OUTPUT_STRIDE) % OUTPUT_STRIDE
    x = tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="SYMMETRIC")
    logits = tf.cast(model(x, training=False), tf.float32)
    return tf.sigmoid(logits[:, :height, :width, :])


def _write_saved_model(model, path, input_shape):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda images: {"probabilities": _probabilities(model, images)},
        input_signature=[tf.TensorSpec(input_shape, tf.uint8, name="images")],
    )
    archive.write_out(str(path), verbose=False)
    return Path(path)


def export_saved_model(model, path, *, fixed_size=None):
    """SavedModel at ``path``: uint8 (N, H, W, 3) -> {"probabilities": (N, H, W, 1)}."""
    return _write_saved_model(model, path, [None, fixed_size, fixed_size, input_bands(model)])


def export_tflite(model, path, *, tile, kind="float32"):
    """TFLite flatbuffer at ``path`` for uint8 (1, tile, tile, 3) input; kind float32 or int8."""
    if kind not in TFLITE_KINDS:
        raise ValueError(f"Unknown TFLite kind. Valid kinds: {', '.join(TFLITE_KINDS)}. Received: kind={kind!r}")
    staging = Path(tempfile.mkdtemp(prefix="tflite_export_"))
    try:
        _write_saved_model(model, staging / "saved_model", [1, tile, tile, input_bands(model)])
        converter = tf.lite.TFLiteConverter.from_saved_model(str(staging / "saved_model"))
        if kind == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        Path(path).write_bytes(converter.convert())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Path(path)


def run_tflite(path, images):
    """Probabilities of a TFLite model on a uint8 (1, tile, tile, 3) batch (for checks and tests)."""
    try:  # LiteRT is TFLite's successor; tf.lite.Interpreter still works but warns
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
