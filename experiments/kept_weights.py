"""Why a run ends unsure of its own training images: the calibrated threshold of its kept weights, of its last
weights, and of its kept weights with BatchNorm's statistics measured again on training batches.

    python -m experiments.kept_weights runs/recipe/trainall_f0_s0 [more runs]

For each run (a train.py run folder with model.keras and last.weights.h5, and its dataset built), each
variant is calibrated as train.py calibrates (the best-IoU threshold on the run's first 16 training images,
predict.py's scorer) and printed with its IoU there and its IoU at probability 0.5. A threshold far below
0.5 with the weight average and with the last weights alike puts the cause in training, not in the
average; one that moves towards 0.5 when BatchNorm's statistics are measured again puts part of it in
those statistics (momentum 0.9: the last ten batches of 8 crops).
"""

import argparse
from pathlib import Path

BATCHES = 40  # training batches that measure BatchNorm's statistics again (momentum 0.9: the last ~10 count)


def kept_weights_rows(run_dir):
    """[(variant, calibration)] of one run: kept, last, kept with BatchNorm statistics measured again."""
    from data.pipeline import train_dataset
    from data.splits import run_examples
    from inference.heldout import calibrate_model
    from inference.loading import load_segmenter
    from models import create_model
    from models.segmenter import set_logit_offset
    from training.setup import marks_nodata

    config, train_examples, _ = run_examples(run_dir)
    polygons = marks_nodata(config["dataset"])
    model, fixed = load_segmenter(run_dir)
    set_logit_offset(model, 0.0)
    kept = model.get_weights()

    def calibrated():
        return calibrate_model(model, train_examples, fixed, polygons=polygons)

    rows = [("kept (" + config.get("select", "ema") + ")", calibrated())]
    trained = create_model(config["arch"], config["encoder"], input_shape=model.input_shape[1:],
                           standardize=config.get("standardize") == "image")  # fmt: skip
    trained.load_weights(Path(run_dir) / "last.weights.h5")
    model.set_weights(trained.get_weights())
    set_logit_offset(model, 0.0)
    rows.append(("last weights", calibrated()))
    model.set_weights(kept)
    batches = train_dataset(train_examples, size=config["image_size"], batch_size=config.get("batch_size", 8),
                            seed=123, crops_per_image=config.get("crops_per_image", 8))  # fmt: skip
    for images, *_ in batches.take(BATCHES):
        model(images, training=True)  # BatchNorm measures its statistics; no weight changes
    set_logit_offset(model, 0.0)
    rows.append(("kept, BatchNorm statistics measured again", calibrated()))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| run | weights | calibrated threshold | IoU there | IoU at 0.5 |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        for variant, found in kept_weights_rows(run):
            scores = f"{found['threshold']:.2f} | {found['iou']:.3f} | {found['iou_at_0.5']:.3f}"
            print(f"| {run.name} | {variant} | {scores} |")


if __name__ == "__main__":
    main()
