"""Scoring a trained model the way predict.py scores scenes: whole images, the blended window, the one scorer.

train.py scores its held-out places and calibrates its decision threshold with these;
``experiments.recalibrate`` re-scores finished runs with them.
"""

import numpy as np

from inference import defaults

CALIBRATION_IMAGES = 16  # training images the threshold is measured on (the first ones of the shuffled split)


def decoded_scenes(examples, *, polygons=False):
    """(file name, uint8 image, bool truth) of every example, decoded one at a time; with ``polygons`` (labels
    that mark no-data and keep one id per building: the polygons config) also (bool valid, true building ids)."""
    import tensorflow as tf

    from data.pipeline import image_of
    from data.targets import NODATA_ID, NODATA_LABEL

    for example in examples:
        image = image_of(example).numpy()
        mask = tf.io.decode_png(example["mask"], channels=1).numpy()[..., 0]
        name = example["file_name"].numpy().decode("utf-8")
        if not polygons:
            yield name, image, mask > 0
            continue
        ids = tf.io.decode_png(example["instances"], channels=1, dtype=tf.uint16).numpy()[..., 0]
        valid = mask != NODATA_LABEL
        yield name, image, mask == 1, valid, np.where(ids == NODATA_ID, 0, ids)


THRESHOLD = defaults.THRESHOLD
SPLIT_DEPTH = defaults.SPLIT_DEPTH  # predict.py --separate shape's --split-depth


def tiling(fixed):
    """predict.py's scorer at its defaults (a dense-head model of input size ``fixed`` predicts such windows)."""
    from inference import defaults

    return {
        "tile": fixed or defaults.TILE,
        "overlap": defaults.OVERLAP if not fixed or defaults.OVERLAP < fixed else fixed // 4,
        "batch_size": defaults.BATCH_SIZE,
        "fixed_size": fixed,
    }


def calibrate_model(model, train_examples, fixed, *, polygons=False, tta=False):
    """Measure the best-IoU threshold of ``model`` (offset 0) on the first training images and store it in its
    last layer; returns the calibration (``inference.calibration.calibrate`` plus ``logit_offset``). ``tta``:
    measured on the logits averaged over the 8 flips and turns (8x the cost), as a run scored with them predicts."""
    from blocks.calibration import threshold_offset
    from inference.calibration import calibrate
    from inference.tiling import make_logit_fn
    from models.segmenter import set_logit_offset

    scenes = decoded_scenes(train_examples.take(CALIBRATION_IMAGES), polygons=polygons)
    found = calibrate(make_logit_fn(model, tta=tta, fixed_size=fixed), scenes, **tiling(fixed))
    found["logit_offset"] = threshold_offset(found["threshold"])
    set_logit_offset(model, found["logit_offset"])
    return found


def threshold_of(results):
    """The decision threshold a run's model uses (calibrated on training images, or predict.py's default)."""
    from inference import defaults

    return (results.get("calibration") or {}).get("threshold", defaults.THRESHOLD)


def score_model(model, examples, fixed, *, separate=False, depth=None, polygons=False, one_pass=False, tta=False):
    """predict.py's scores of ``model`` on whole ``examples`` (a TFDS split of image / mask examples); ``depth``:
    separate by the mask's shape (``inference.separation.split_by_shape``), not the separation channels;
    ``one_pass``: each image in one call (mirror-padded to the output stride) instead of blended windows;
    ``tta``: the logits averaged over the 8 flips and turns (predict.py --tta)."""
    from inference.evaluation import score_scenes
    from inference.tiling import make_logit_fn

    logit_fn = make_logit_fn(model, tta=tta, fixed_size=fixed, all_channels=separate and depth is None)
    scenes = decoded_scenes(examples, polygons=polygons)
    windows = {**tiling(fixed), **({"tile": ONE_PASS_TILE, "overlap": 0} if one_pass and not fixed else {})}
    return score_scenes(logit_fn, scenes, separate=separate, depth=depth, **windows)


ONE_PASS_TILE = 8192  # larger than any image scored in one pass: one window, padded to the output stride


SEPARATION_THRESHOLDS = (0.5, 0.35, 0.2, 0.1)  # where the separation channels may cut seeds apart


def at_threshold(probabilities, threshold):
    """``probabilities`` moved so that ``threshold`` lands on 0.5: what a model whose logits carry the offset of
    that threshold (``blocks.calibration.threshold_offset``, as train.py stores it) outputs."""
    from scipy.special import expit, logit

    from blocks.calibration import threshold_offset

    if threshold == 0.5:
        return probabilities
    clipped = np.clip(np.asarray(probabilities, dtype="float64"), 1e-7, 1 - 1e-7)
    return expit(logit(clipped) - threshold_offset(threshold)).astype(probabilities.dtype)


def _at_threshold(probabilities, threshold):
    """``probabilities`` with the separation channels moved so that ``threshold`` lands on 0.5 (building kept)."""
    if threshold == 0.5:
        return probabilities
    return np.concatenate([probabilities[..., :1], at_threshold(probabilities[..., 1:], threshold)], axis=-1)


def choose_separation(model, train_examples, fixed, *, polygons=False, tta=False):
    """Whether separating buildings raises building F1 on the calibration images (the first training images), and
    the threshold of the separation channels that does best there.

    ``model`` carries its calibrated building offset already (separation offsets 0). Each of
    ``SEPARATION_THRESHOLDS`` is tried (a weakly trained contact channel rarely reaches 0.5 where
    neighbours meet); ties go to the higher one. Separation is kept only when its building F1 at
    that threshold is higher than that of the mask's connected patches: a choice made on training
    images, never on the places scored.
    """
    from common.scores import building_matches
    from inference.evaluation import building_scores
    from inference.separation import separate
    from inference.tiling import make_logit_fn, predict_probabilities

    logit_fn = make_logit_fn(model, tta=tta, fixed_size=fixed, all_channels=True)
    counts = {threshold: np.zeros(3) for threshold in SEPARATION_THRESHOLDS}
    plain = np.zeros(3)
    scenes = 0
    for _, image, truth, *more in decoded_scenes(train_examples.take(CALIBRATION_IMAGES), polygons=polygons):
        valid, true = more if more else (np.ones(truth.shape, bool), truth)
        probabilities = predict_probabilities(logit_fn, image, **tiling(fixed))
        for threshold in SEPARATION_THRESHOLDS:
            split = np.where(valid, separate(_at_threshold(probabilities, threshold)), 0)
            counts[threshold] += building_matches(true, split, min_area=defaults.MIN_AREA)
        plain += building_matches(true, (probabilities[..., 0] >= THRESHOLD) & valid, min_area=defaults.MIN_AREA)
        scenes += 1
    f1 = {threshold: building_scores(*total)["building_f1"] for threshold, total in counts.items()}
    best = max(SEPARATION_THRESHOLDS, key=lambda threshold: (f1[threshold], threshold))
    unseparated = building_scores(*plain)["building_f1"]
    return {
        "separate": bool(f1[best] > unseparated),
        "threshold": best,
        "building_f1_separated": f1[best],
        "building_f1_unseparated": unseparated,
        "building_f1_by_threshold": {str(threshold): value for threshold, value in f1.items()},
        "scenes": scenes,
    }
