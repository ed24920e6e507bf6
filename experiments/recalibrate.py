"""Score finished runs at threshold 0.5 and at the threshold train.py's --calibrate train would pick.

    python -m experiments.recalibrate runs/sample_t8/RUN [RUN ...]

For each run: its kept weights (model.keras), its training images and its held-out scenes
(from config.json, exactly as train.py split them). The threshold is calibrated on the first
16 training images, as train.py does, so a run trained before calibration existed can be
compared with itself: same weights, only the threshold differs. Nothing is written.
"""

import argparse
import sys
from pathlib import Path


def recalibrate(run_dir):
    from data.splits import run_examples
    from inference.heldout import calibrate_model, score_model
    from inference.loading import load_segmenter
    from models import create_model
    from training.recipes import model_options
    from training.setup import marks_nodata

    saved, train_examples, heldout_examples = run_examples(run_dir)
    trained, fixed = load_segmenter(run_dir)
    model = create_model(  # the same weights behind an offset layer (runs from before calibration lack one)
        saved["arch"],
        saved["encoder"],
        num_classes=trained.output_shape[-1],
        input_shape=trained.input_shape[1:],
        **model_options(saved),
    )
    model.set_weights(trained.get_weights())  # the new model's offset is 0: threshold 0.5
    separate = trained.output_shape[-1] > 1
    polygons = marks_nodata(saved["dataset"])  # true buildings and no-data, where the labels have them
    at_half = score_model(model, heldout_examples, fixed, separate=separate, polygons=polygons)["overall"]
    threshold = calibrate_model(model, train_examples, fixed, polygons=polygons)["threshold"]
    calibrated = score_model(model, heldout_examples, fixed, separate=separate, polygons=polygons)["overall"]
    # a list, not a dict keyed by threshold: a calibrated threshold of exactly 0.5 keeps both rows
    return [(0.5, at_half), (threshold, calibrated)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| run | threshold | held-out IoU | precision | recall | building F1 |")
    print("|---|---|---|---|---|---|")
    for run_dir in args.runs:
        if not (run_dir / "config.json").exists() or not (run_dir / "model.keras").exists():
            sys.exit(f"{run_dir}: not a finished train.py run (needs config.json and model.keras).")
        try:
            scores = recalibrate(run_dir)
        except ValueError as error:  # a model refused by safe loading, a dataset that is not there, ...
            sys.exit(f"experiments.recalibrate: {run_dir}: {error}")
        for threshold, o in scores:
            print(
                f"| {run_dir.name} | {threshold:.2f} | {o['iou']:.3f} | {o['precision']:.3f} | {o['recall']:.3f} "
                f"| {o['building_f1']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
