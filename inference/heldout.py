"""Scoring a trained model the way predict.py scores scenes: whole images, the blended window, the one scorer.

train.py scores its held-out places and calibrates its decision threshold with these;
``experiments.recalibrate`` re-scores finished runs with them.
"""

from inference import defaults

CALIBRATION_IMAGES = 16  # training images the threshold is measured on (the first ones of the shuffled split)


def decoded_scenes(examples):
    """(file name, uint8 image, bool truth) of every example, decoded one at a time."""
    import tensorflow as tf

    for example in examples:
        image = tf.io.decode_png(example["image"], channels=3).numpy()
        truth = tf.io.decode_png(example["mask"], channels=1).numpy()[..., 0] > 0
        yield example["file_name"].numpy().decode("utf-8"), image, truth


THRESHOLD = defaults.THRESHOLD


def tiling(fixed):
    """predict.py's scorer at its defaults (a dense-head model of input size ``fixed`` predicts such windows)."""
    from inference import defaults

    return {
        "tile": fixed or defaults.TILE,
        "overlap": defaults.OVERLAP if not fixed or defaults.OVERLAP < fixed else fixed // 4,
        "batch_size": defaults.BATCH_SIZE,
        "fixed_size": fixed,
    }


def calibrate_model(model, train_examples, fixed):
    """Measure the best-IoU threshold of ``model`` (offset 0) on the first training images and store it in its
    last layer; returns the calibration (``inference.calibration.calibrate`` plus ``logit_offset``)."""
    from blocks.calibration import threshold_offset
    from inference.calibration import calibrate
    from inference.tiling import make_logit_fn
    from models.segmenter import set_logit_offset

    scenes = decoded_scenes(train_examples.take(CALIBRATION_IMAGES))
    found = calibrate(make_logit_fn(model, fixed_size=fixed), scenes, **tiling(fixed))
    found["logit_offset"] = threshold_offset(found["threshold"])
    set_logit_offset(model, found["logit_offset"])
    return found


def threshold_of(results):
    """The decision threshold a run's model uses (calibrated on training images, or predict.py's default)."""
    from inference import defaults

    return (results.get("calibration") or {}).get("threshold", defaults.THRESHOLD)


def score_model(model, examples, fixed, *, separate=False):
    """predict.py's scores of ``model`` on whole ``examples`` (a TFDS split of image / mask examples)."""
    from inference.evaluation import score_scenes
    from inference.tiling import make_logit_fn

    logit_fn = make_logit_fn(model, fixed_size=fixed, all_channels=separate)
    return score_scenes(logit_fn, decoded_scenes(examples), separate=separate, **tiling(fixed))
