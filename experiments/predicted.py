"""One loop for the studies of a run folder: its kept model predicts what train.py scored, scene by scene.

Every study of finished runs (``separation_bound``, ``shape_split``, ``level_split``, ``separation``,
``kampala --gaps``) goes through here: ``runs_parser`` reads the run folders (and the ``--counts`` files of
the studies that keep counts), ``run_name`` names a run (its folder's name: the key of committed counts),
and ``predicted_scenes`` loads the run's kept model and yields its held-out scenes (and, when asked, the
first training images train.py calibrated on) with the building probabilities as train.py scored them. A
study is then a function over those scenes.
"""

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np

TRAINING = "training images"  # the place of the calibration images (a run's first training images)


class Scene(NamedTuple):
    """One predicted scene: ``place`` (its group, or ``TRAINING``), its file name, float32 (H, W) building
    probabilities (train.py's calibrated offset in them unless asked otherwise), the bool truth, and where the
    labels have them (the polygons config) the bool valid pixels and the true building ids (else None)."""

    place: str
    name: str
    probabilities: np.ndarray
    truth: np.ndarray
    valid: np.ndarray | None = None
    ids: np.ndarray | None = None


def run_name(run_dir):
    """How every study names a run: its folder's name (``grid_unet_effnet-lite0_f0_s0``)."""
    return Path(run_dir).name


def predicted_scenes(run_dir, *, training=False, raw=False, polygons=False, channels=False):
    """Yield a ``Scene`` for each of a run's held-out scenes, predicted by its kept model as train.py scored them
    (predict.py's scorer at its defaults), after its first training images when ``training``.

    ``raw``: the model's own probabilities (the calibrated offset removed); ``polygons``: also the valid pixels
    and true building ids where the run's labels have them; ``channels``: every output channel, (H, W, C)."""
    from data.groups import DEFAULT_GROUP_PATTERN, group_of
    from data.splits import run_examples
    from inference.heldout import CALIBRATION_IMAGES, decoded_scenes, tiling
    from inference.loading import load_segmenter
    from inference.tiling import make_logit_fn, predict_probabilities
    from training.setup import marks_nodata

    config, train_examples, heldout = run_examples(run_dir)
    model, fixed = load_segmenter(run_dir)
    if raw:
        from models.segmenter import set_logit_offset

        set_logit_offset(model, 0.0)
    logit_fn = make_logit_fn(model, fixed_size=fixed, all_channels=channels)
    pattern = config.get("group_pattern") or DEFAULT_GROUP_PATTERN
    with_ids = polygons and marks_nodata(config["dataset"])
    sources = ([(TRAINING, train_examples.take(CALIBRATION_IMAGES))] if training else []) + [(None, heldout)]
    for where, examples in sources:
        for name, image, truth, *more in decoded_scenes(examples, polygons=with_ids):
            probabilities = predict_probabilities(logit_fn, image, **tiling(fixed))
            yield Scene(where or group_of(name, pattern), name, probabilities, truth, *more)


def runs_parser(description, *, counts=False):
    """The command line of a study of runs: run folders, and with ``counts`` the ``--counts`` files that keep each
    run's counts (read again on a rerun, so committed counts need no model)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with model.keras and a held-out split")
    if counts:
        parser.add_argument(
            "--counts",
            type=Path,
            action="append",
            help="JSON file that keeps each run's counts (read again on a rerun); give several to read them all, "
            "new counts go to the last",
        )
    return parser
