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


def choose_separation(model, train_examples, fixed):
    """Whether separating buildings raises building F1 on the calibration images (the first training images).

    ``model`` carries its calibrated offset already. Separation is kept only when its building F1
    there is higher than that of the mask's connected patches: a choice made on training images,
    never on the places scored.
    """
    import numpy as np

    from common.scores import building_matches
    from inference.evaluation import building_scores
    from inference.separation import separate
    from inference.tiling import make_logit_fn, predict_probabilities

    logit_fn = make_logit_fn(model, fixed_size=fixed, all_channels=True)
    counts = {True: np.zeros(3), False: np.zeros(3)}
    scenes = 0
    for _, image, truth in decoded_scenes(train_examples.take(CALIBRATION_IMAGES)):
        probabilities = predict_probabilities(logit_fn, image, **tiling(fixed))
        counts[True] += building_matches(truth, separate(probabilities), min_area=defaults.MIN_AREA)
        counts[False] += building_matches(truth, probabilities[..., 0] >= THRESHOLD, min_area=defaults.MIN_AREA)
        scenes += 1
    f1 = {choice: building_scores(*total)["building_f1"] for choice, total in counts.items()}
    return {
        "separate": bool(f1[True] > f1[False]),
        "building_f1_separated": f1[True],
        "building_f1_unseparated": f1[False],
        "scenes": scenes,
    }
