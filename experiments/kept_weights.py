"""Why a run ends unsure of its own training images: the calibrated threshold of its kept weights, of its last
weights, and of its kept weights with BatchNorm's statistics measured again on training batches.

    python -m experiments.kept_weights runs/recipe/trainall_f0_s0 [more runs]
    python -m experiments.kept_weights --heldout runs/recipe/plainflips_f0_s0 [more runs]
    python -m experiments.kept_weights --one-pass runs/recipe/plainflips_f0_s0 [more runs]
    python -m experiments.kept_weights --windows runs/recipe/allplaces/start0_s0 [more runs]

For each run (a train.py run folder with model.keras and last.weights.h5, and its dataset built), each
variant is calibrated as train.py calibrates (the best-IoU threshold on the run's first 16 training images,
predict.py's scorer) and printed with its IoU there and its IoU at probability 0.5. A threshold far below
0.5 with the weight average and with the last weights alike puts the cause in training, not in the
average; one that moves towards 0.5 when BatchNorm's statistics are measured again puts part of it in
those statistics (momentum 0.9: the last ten batches of 8 crops).

``--heldout`` asks whether measuring them again would help where it counts: the run's held-out places
scored as train.py scored them (its kept model, its threshold), then with BatchNorm's statistics measured
again on training batches, one row per run with both pixel IoU and building F1. ``--one-pass`` scores them in
predict.py's blended windows and with each image in one call, as the yardstick scores (the scoring, not the
weights, as the difference). ``--windows`` calibrates the kept weights in prediction windows of 1024 pixels
(train.py's and predict.py's), 256 and 128 (the training crops' sizes), none overlapping but the first: a best
cut that moves towards 0.5 in small windows would put the offset in the gap between training crops and whole
scenes.
"""

import argparse
from pathlib import Path

from inference import defaults

BATCHES = 40  # training batches that measure BatchNorm's statistics again (momentum 0.9: the last ~10 count)


def kept_model(run_dir):
    """(config, training examples, polygons, model with its calibrated offset set to 0, fixed input size)."""
    from data.splits import run_examples
    from inference.loading import load_segmenter
    from models.segmenter import set_logit_offset
    from training.setup import marks_nodata

    config, train_examples, _ = run_examples(run_dir)
    model, fixed = load_segmenter(run_dir)
    set_logit_offset(model, 0.0)
    return config, train_examples, marks_nodata(config["dataset"]), model, fixed


def kept_weights_rows(run_dir):
    """[(variant, calibration)] of one run: kept, last, kept with BatchNorm statistics measured again."""
    from inference.heldout import calibrate_model
    from models import create_model
    from models.segmenter import set_logit_offset
    from training.recipes import model_options

    config, train_examples, polygons, model, fixed = kept_model(run_dir)
    kept = model.get_weights()

    def calibrated():
        return calibrate_model(model, train_examples, fixed, polygons=polygons)

    rows = [("kept (" + config.get("select", "ema") + ")", calibrated())]
    trained = create_model(config["arch"], config["encoder"], input_shape=model.input_shape[1:],
                           **model_options(config))  # fmt: skip
    trained.load_weights(Path(run_dir) / "last.weights.h5")
    model.set_weights(trained.get_weights())
    set_logit_offset(model, 0.0)
    rows.append(("last weights", calibrated()))
    model.set_weights(kept)
    remeasure_batchnorm(model, config, train_examples)
    set_logit_offset(model, 0.0)
    rows.append(("kept, BatchNorm statistics measured again", calibrated()))
    return rows


def remeasure_batchnorm(model, config, train_examples, batches=BATCHES):
    """Measure ``model``'s BatchNorm statistics again on ``batches`` training batches of the run's own crops and
    augmentation (no weight changes)."""
    from data.pipeline import train_dataset

    crops = train_dataset(train_examples, size=config["image_size"], batch_size=config.get("batch_size", 8),
                          seed=123, crops_per_image=config.get("crops_per_image", 8),
                          augmentation=config.get("augment", "basic"))  # fmt: skip
    for images, *_ in crops.take(batches):
        model(images, training=True)


def heldout_row(run_dir):
    """(held-out scores as kept, with BatchNorm's statistics measured again): {"iou", "building_f1"} each."""
    from data.splits import run_examples
    from inference.heldout import score_model
    from inference.loading import load_segmenter
    from training.setup import marks_nodata

    config, train_examples, heldout = run_examples(run_dir)
    polygons = marks_nodata(config["dataset"])
    model, fixed = load_segmenter(run_dir)
    rows = []
    for remeasured in (False, True):
        if remeasured:
            remeasure_batchnorm(model, config, train_examples)
        overall = score_model(model, heldout, fixed, polygons=polygons)["overall"]
        rows.append({"iou": overall["iou"], "building_f1": overall["building_f1"]})
    return rows


WINDOWS = ((defaults.TILE, defaults.OVERLAP), (256, 0), (128, 0))  # (tile, overlap): predict.py's, then the crops'


def window_rows(run_dir):
    """[(window, calibration)] of one run's kept weights (offset 0), calibrated in each of ``WINDOWS``."""
    from inference.calibration import calibrate
    from inference.heldout import CALIBRATION_IMAGES, decoded_scenes, tiling
    from inference.tiling import make_logit_fn

    _, train_examples, polygons, model, fixed = kept_model(run_dir)
    logit_fn = make_logit_fn(model, fixed_size=fixed)
    scenes = list(decoded_scenes(train_examples.take(CALIBRATION_IMAGES), polygons=polygons))  # decoded once
    rows = []
    for tile, overlap in WINDOWS:
        found = calibrate(logit_fn, scenes, **{**tiling(fixed), "tile": tile, "overlap": overlap})
        rows.append((f"{tile} pixels" + (f", {overlap} overlap" if overlap else ""), found))
    return rows


def scoring_row(run_dir):
    """The run's held-out scores as train.py scored them (blended 1024-pixel windows) and with each image in one
    pass, as the yardstick scores: {"iou", "building_f1"} each."""
    from data.splits import run_examples
    from inference.heldout import score_model
    from inference.loading import load_segmenter
    from training.setup import marks_nodata

    config, _, heldout = run_examples(run_dir)
    model, fixed = load_segmenter(run_dir)
    polygons = marks_nodata(config["dataset"])
    rows = []
    for one_pass in (False, True):
        overall = score_model(model, heldout, fixed, polygons=polygons, one_pass=one_pass)["overall"]
        rows.append({"iou": overall["iou"], "building_f1": overall["building_f1"]})
    return rows


def print_pairs(runs, row, first, second):
    """A Markdown table of ``row(run)`` -> two {"iou", "building_f1"} for each run, side by side."""
    print(f"| run | held-out pixel IoU, {first} | {second} | building F1, {first} | {second} |")
    print("|---|---|---|---|---|")
    for run in runs:
        a, b = row(run)
        print(f"| {run.name} | {a['iou']:.3f} | {b['iou']:.3f} | {a['building_f1']:.3f} | {b['building_f1']:.3f} |",
              flush=True)  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--heldout", action="store_true", help="score the held-out places, kept vs measured again")
    parser.add_argument("--one-pass", action="store_true",
                        help="held-out scores in blended windows and with each image in one pass")  # fmt: skip
    parser.add_argument("--windows", action="store_true", help="the kept weights calibrated in windows of 3 sizes")
    args = parser.parse_args(argv)
    for wanted, row, (first, second) in ((args.one_pass, scoring_row, ("windows", "one pass")),
                                         (args.heldout, heldout_row, ("kept", "measured again"))):  # fmt: skip
        if wanted:
            print_pairs(args.runs, row, first, second)
            return
    rows = window_rows if args.windows else kept_weights_rows
    print(f"| run | {'window' if args.windows else 'weights'} | calibrated threshold | IoU there | IoU at 0.5 |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        for variant, found in rows(run):
            scores = f"{found['threshold']:.2f} | {found['iou']:.3f} | {found['iou_at_0.5']:.3f}"
            print(f"| {run.name} | {variant} | {scores} |")


if __name__ == "__main__":
    main()
