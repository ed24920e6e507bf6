"""From-scratch U-Net / EfficientNet-B0 on the real sample, scored on a place it never saw.

Trains with train.py on ../shared/data/buildings_sample (random init, batch 8) with the
Dubai tile t8 held out (--holdout: the sample's three test scenes are parts of t8, and six
more t8 parts sit in its training folder; all nine are kept out of training), then prints
train.py's final score of the held-out scenes: predict.py's scorer (blended 512 windows,
inference mode, every pixel once) next to the all-building baseline.

    python -m benchmarks.train_real_sample                           # 200 steps at 256 (about 25 min on 2 CPU cores)
    python -m benchmarks.train_real_sample --steps 60 --size 128
    python -m benchmarks.train_real_sample --holdout ""              # train on every tile; score the (seen) test scenes
    python -m benchmarks.train_real_sample --score-only runs/RUN     # predict.py --labels auto on the test scenes
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]


def train_and_score(
    sample, run_dir, *, steps, epochs, size, batch, arch, encoder, data_dir, seed=0, holdout="dubai_t8", extra=()
):
    """Train on the sample with train.py (a process, as a user runs it); returns its results.json."""

    steps_per_epoch = max(steps // epochs, 1)
    run_cli(
        "train.py",
        [
            "--dataset",
            "buildings/kaggle",
            "--manual-dir",
            str(sample),
            "--data-dir",
            str(data_dir),
            "--arch",
            arch,
            "--encoder",
            encoder,
            "--image-size",
            str(size),
            "--batch-size",
            str(batch),
            "--epochs",
            str(epochs),
            "--steps-per-epoch",
            str(steps_per_epoch),
            "--warmup-steps",
            str(min(20, steps // 4)),
            "--seed",
            str(seed),
            "--run-dir",
            str(run_dir),
            "--tracker",
            "local",
            "--holdout",
            holdout,
            *extra,
        ],
    )
    return json.loads((Path(run_dir) / "results.json").read_text())


def run_cli(script, args):
    """Run one of the project's command-line tools (never imported: they are CLIs); stops on failure."""
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{script} failed (exit {done.returncode}); its output is above")


def score_with_predictor(run_dir, sample):
    """Overall scores of ``predict.py --labels auto`` (its defaults) on the sample's test scenes.

    The masks, overlays and metrics.json land in RUN/test_predictions.
    """
    out = Path(run_dir) / "test_predictions"
    run_cli(
        "predict.py",
        [
            "--model",
            str(run_dir),
            str(Path(sample) / "building_data" / "test" / "src"),
            "--labels",
            "auto",
            "--out",
            str(out),
        ],
    )
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", default="dubai_t8", help="groups kept out of training and scored ('' : none)")
    parser.add_argument("--run-dir", default=f"runs/real_sample_{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument(
        "--data-dir",
        default=str(Path.home() / ".cache" / "buildings_sample_tfds"),
        help="TFDS folder for the sample build; kept apart from ~/tensorflow_datasets so that "
        "train.py never mistakes the 70-pair sample for the Kaggle download",
    )
    parser.add_argument(
        "--score-only", metavar="RUN", help="skip training; score this run's model.keras on the test scenes"
    )
    args, extra = parser.parse_known_args()
    if not (args.sample / "building_data" / "src").is_dir():
        sys.exit(f"Sample not found at {args.sample}; pass --sample PATH to the buildings_sample folder.")
    start = time.time()
    if args.score_only:
        scores = score_with_predictor(args.score_only, args.sample)
        print(
            f"\n{args.score_only}: predict.py --labels auto on the test scenes of {args.sample.name}: "
            f"IoU {scores['iou']:.3f}  "
            f"F1 {scores['f1']:.3f}  precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
        )
        return
    results = train_and_score(
        args.sample,
        args.run_dir,
        steps=args.steps,
        epochs=args.epochs,
        size=args.size,
        batch=args.batch,
        arch=args.arch,
        encoder=args.encoder,
        data_dir=args.data_dir,
        seed=args.seed,
        holdout=args.holdout,
        extra=extra,
    )
    where = f"groups {', '.join(results['heldout_groups'])}" if results["heldout_groups"] else results["heldout_kind"]
    print(
        f"\n{args.run_dir}: {args.arch} / {args.encoder}, random init, {args.steps} steps x batch {args.batch} at "
        f"{args.size}, {time.time() - start:.0f} s; held out: {where} ({results['heldout_scenes']} scenes, "
        f"{results['heldout_pixels']:,} pixels), {results['selection']} weights, predict.py's scorer"
    )
    print("| IoU | F1 | precision | recall | all-building IoU |")
    print("|---|---|---|---|---|")
    print(
        " ".join(f"| {results['heldout_' + k]:.3f}" for k in ("iou", "f1", "precision", "recall", "all_building_iou"))
        + " |"
    )
    if not args.holdout:  # every tile trained on: the test scenes are a seen place, scored for comparison only
        scores = score_with_predictor(args.run_dir, args.sample)
        print(
            f"test scenes (parts of tiles seen in training), predict.py --labels auto: IoU {scores['iou']:.3f}  "
            f"F1 {scores['f1']:.3f}  precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
        )


if __name__ == "__main__":
    main()
