"""From-scratch U-Net / EfficientNet-B0 on the real sample, scored on its test scenes.

Trains with train.py on ../shared/data/buildings_sample (random init, 256x256 crops,
batch 8), then evaluates the best checkpoint in inference mode on the sample's 5 large
test scenes (every pixel once, tiles of --eval-size) and prints IoU / F1 / precision /
recall next to the all-building baseline, twice: with training/evaluate.py (zero-padded
--eval-size tiles, the pipeline's evaluation) and with predict.py's blended sliding window
(512 windows, 64 px overlap, mirror padding at the scene border).

    python benchmarks/train_real_sample.py                     # 200 steps (about 25 min on 2 CPU cores)
    python benchmarks/train_real_sample.py --steps 60 --size 128
    python benchmarks/train_real_sample.py --score-only runs/real_sample_unet_b0   # re-score a finished run
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train_and_score(sample, run_dir, *, steps, epochs, size, batch, arch, encoder, data_dir, seed=0, eval_size=256):
    """Train on the sample, then score the exported best model on its test split."""
    import train

    steps_per_epoch = max(steps // epochs, 1)
    train.main([
        "--dataset", "buildings/kaggle", "--manual-dir", str(sample), "--data-dir", str(data_dir),
        "--arch", arch, "--encoder", encoder, "--image-size", str(size), "--batch-size", str(batch),
        "--epochs", str(epochs), "--steps-per-epoch", str(steps_per_epoch), "--warmup-steps", str(min(20, steps // 4)),
        "--seed", str(seed), "--run-dir", str(run_dir), "--tracker", "local",
    ])
    return score_test_split(run_dir, sample, data_dir=data_dir, eval_size=eval_size)


def score_test_split(run_dir, sample, *, data_dir, eval_size=256):
    """training/evaluate.py's scores of RUN/model.keras on the sample's test split."""
    import keras

    from data.pipeline import load_split
    from training.evaluate import evaluate_split

    model = keras.models.load_model(Path(run_dir) / "model.keras")
    test = load_split("buildings/kaggle", "test", data_dir=str(data_dir), manual_dir=str(sample))
    return evaluate_split(model, test, size=eval_size)


def score_with_predictor(run_dir, sample):
    """Overall scores of ``predict.py --labels auto`` (its defaults) on the sample's test scenes.

    The masks, overlays and metrics.json land in RUN/test_predictions.
    """
    import json

    import predict

    out = predict.main(["--model", str(run_dir), str(Path(sample) / "building_data" / "test" / "src"),
                        "--labels", "auto", "--out", str(Path(run_dir) / "test_predictions")])
    return json.loads((out / "metrics.json").read_text())["overall"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, default=ROOT.parent / "shared" / "data" / "buildings_sample")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoder", default="effnet-b0")
    parser.add_argument("--run-dir", default=f"runs/real_sample_{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "buildings_sample_tfds"),
                        help="TFDS folder for the sample build; kept apart from ~/tensorflow_datasets so that "
                             "train.py never mistakes the 70-pair sample for the Kaggle download")
    parser.add_argument("--score-only", metavar="RUN", help="skip training; score this finished run's model.keras")
    args = parser.parse_args()
    if not (args.sample / "building_data" / "src").is_dir():
        sys.exit(f"Sample not found at {args.sample}; pass --sample PATH to the buildings_sample folder.")
    start = time.time()
    run_dir = Path(args.score_only or args.run_dir)
    if args.score_only:
        scores = score_test_split(run_dir, args.sample, data_dir=args.data_dir)
    else:
        scores = train_and_score(args.sample, run_dir, steps=args.steps, epochs=args.epochs, size=args.size,
                                 batch=args.batch, arch=args.arch, encoder=args.encoder, data_dir=args.data_dir)
    tiled = score_with_predictor(run_dir, args.sample)
    print(f"\n{run_dir}: {args.arch} / {args.encoder}, random init, {args.steps} steps x batch {args.batch} at {args.size}, "
          f"{time.time() - start:.0f} s; test scenes of {args.sample.name} ({scores['pixels']:,} pixels), inference mode")
    print("| scoring | IoU | F1 | precision | recall | all-building IoU |")
    print("|---|---|---|---|---|---|")
    for name, row in (("evaluate_split, zero-padded 256 tiles", scores), ("predict.py, blended 512 windows", tiled)):
        print(f"| {name} | {row['iou']:.3f} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | "
              f"{scores['all_building_iou']:.3f} |")


if __name__ == "__main__":
    main()
