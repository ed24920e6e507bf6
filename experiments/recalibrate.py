"""Score finished runs at threshold 0.5 and at the threshold train.py's --calibrate train would pick.

    python -m experiments.recalibrate runs/sample_t8/RUN [RUN ...]

For each run: its kept weights (model.keras), its training images and its held-out scenes
(from config.json, exactly as train.py split them). The threshold is calibrated on the first
16 training images, as train.py does, so a run trained before calibration existed can be
compared with itself: same weights, only the threshold differs. Nothing is written.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def recalibrate(run_dir):
    import train
    from inference.evaluation import score_scenes
    from inference.loading import load_segmenter
    from inference.tiling import make_logit_fn
    from models import create_model

    saved = json.loads((run_dir / "config.json").read_text())
    config = train.Config(**{f.name: saved[f.name] for f in dataclasses.fields(train.Config) if f.name in saved})
    train_examples, _, heldout_examples, _, _ = train.split_examples(config, saved["dataset"], run_dir)
    trained, fixed = load_segmenter(run_dir)
    model = create_model(  # the same weights behind an offset layer (runs from before calibration lack one)
        config.arch,
        config.encoder,
        input_shape=trained.input_shape[1:],
        bn_momentum=config.bn_momentum,
        standardize=config.standardize == "image",
    )
    model.set_weights(trained.get_weights())  # the new model's offset is 0: threshold 0.5

    def held_out_scores():
        logit_fn = make_logit_fn(model, fixed_size=fixed)
        return score_scenes(logit_fn, train.decoded_scenes(heldout_examples), **train.scorer_tiling(fixed))["overall"]

    scores = {0.5: held_out_scores()}
    threshold = train.calibrate_model(model, train_examples, fixed)["threshold"]
    scores[threshold] = held_out_scores()
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| run | threshold | held-out IoU | precision | recall | building F1 |")
    print("|---|---|---|---|---|---|")
    for run_dir in args.runs:
        if not (run_dir / "config.json").exists() or not (run_dir / "model.keras").exists():
            sys.exit(f"{run_dir}: not a finished train.py run (needs config.json and model.keras).")
        for threshold, o in recalibrate(run_dir).items():
            print(
                f"| {run_dir.name} | {threshold:.2f} | {o['iou']:.3f} | {o['precision']:.3f} | {o['recall']:.3f} "
                f"| {o['building_f1']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
