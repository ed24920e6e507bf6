"""Megapixels/s of predict.py's tiled inference vs the notebooks' naive per-tile loop.

Naive (the original notebooks' style): cut the scene into non-overlapping 256x256 tiles,
zero-pad the ragged ones to 256, call ``model.predict`` once per tile, stitch. Ours: the
blended sliding window of predict.py (``inference.tiling``) at its defaults and at the
naive layout (256 tiles, no overlap), batched through one traced function. Same model,
same scene, one process; runs are interleaved and the median of each is reported.

    python benchmarks/bench_predict.py                               # U-Net/B0, a 2149x1479 sample scene
    python benchmarks/bench_predict.py --model runs/RUN --repeats 5  # a trained model
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from inference.scenes import read_scene  # noqa: E402
from inference.tiling import make_logit_fn, predict_probabilities  # noqa: E402

SCENE = (
    ROOT.parent
    / "shared"
    / "data"
    / "buildings_sample"
    / "building_data"
    / "test"
    / "src"
    / "dubai_image_part_007t8.tiff"
)


def naive_loop(model, image, tile=256):
    """One model.predict call per non-overlapping, zero-padded tile."""
    height, width = image.shape[:2]
    out = np.zeros((height, width), dtype="float32")
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            piece = image[y : y + tile, x : x + tile]
            padded = np.zeros((tile, tile, 3), dtype="float32")
            padded[: piece.shape[0], : piece.shape[1]] = piece
            logits = model.predict(padded[None], verbose=0)[0, ..., 0]
            out[y : y + piece.shape[0], x : x + piece.shape[1]] = 1 / (
                1 + np.exp(-logits[: piece.shape[0], : piece.shape[1]])
            )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path, default=SCENE)
    parser.add_argument("--model", help="run directory or model.keras; default: a random-init U-Net / effnet-b0")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.scene.exists():
        sys.exit(f"Scene not found: {args.scene}; pass --scene PATH (the sample's test scenes are in ../shared).")
    if args.model:
        from inference.loading import load_segmenter

        model, _ = load_segmenter(args.model)
    else:
        from models import create_model

        model = create_model("unet", "effnet-b0", input_shape=(None, None, 3))
    image = read_scene(args.scene).image
    megapixels = image.shape[0] * image.shape[1] / 1e6
    logit_fn = make_logit_fn(model)
    contenders = {
        "naive: model.predict per 256 tile": lambda: naive_loop(model, image),
        "ours: 256 tiles, overlap 0, batch 4": lambda: predict_probabilities(
            logit_fn, image, tile=256, overlap=0, batch_size=4
        ),
        "ours: 256 tiles, overlap 32, batch 4": lambda: predict_probabilities(
            logit_fn, image, tile=256, overlap=32, batch_size=4
        ),
        "ours: defaults (512, overlap 64, batch 4)": lambda: predict_probabilities(
            logit_fn, image, tile=512, overlap=64, batch_size=4
        ),
    }
    for run in contenders.values():  # warm-up: traces and first-call allocations
        run()
    seconds = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    naive = statistics.median(seconds["naive: model.predict per 256 tile"])
    print(
        f"\n{model.name}, scene {args.scene.name} {image.shape[1]}x{image.shape[0]} ({megapixels:.2f} MP), "
        f"median of {args.repeats}"
    )
    print("| method | seconds | MP/s | vs naive |")
    print("|---|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {megapixels / median:.3f} | {naive / median:.2f}x |")


if __name__ == "__main__":
    main()
