"""Input pipeline throughput on the real sample: our TFDS + tf.data vs a PyDataset loader.

The reference is written in the style of the original experiments: a keras.utils.PyDataset
that opens the image and mask files with PIL for every sample, takes a random crop and
applies NumPy flips / rotations / brightness. Both produce batches of 8 crops of 256x256.
A third row is ours with the separation targets (building, border, contact computed from the
building ids after augmentation), so their cost per step shows beside the plain mask.

    python -m benchmarks.bench_pipeline [--sample ../shared/data/buildings_sample] [--batches 30]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from data.pipeline import load_split, train_dataset  # noqa: E402


class NumpyLoader(keras.utils.PyDataset):
    """PIL decode + NumPy augmentation per sample, as in the original notebooks."""

    def __init__(self, root, *, size, batch_size, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.images = sorted((root / "building_data" / "src").iterdir())
        self.root, self.size, self.batch_size = root, size, batch_size
        self.rng = np.random.RandomState(seed)

    def __len__(self):
        return 10_000

    def _sample(self, path):
        image = np.asarray(Image.open(path).convert("RGB"), dtype="float32")
        mask = (
            np.asarray(Image.open(self.root / "building_data" / "label" / f"{path.stem}.png"), dtype="float32")[
                ..., None
            ]
            / 255
        )
        top = self.rng.randint(0, image.shape[0] - self.size + 1)
        left = self.rng.randint(0, image.shape[1] - self.size + 1)
        image = image[top : top + self.size, left : left + self.size]
        mask = mask[top : top + self.size, left : left + self.size]
        if self.rng.rand() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        k = self.rng.randint(4)
        image, mask = np.rot90(image, k), np.rot90(mask, k)
        image = np.clip(image * self.rng.uniform(0.8, 1.2) + self.rng.uniform(-30, 30), 0, 255)
        return image, mask

    def __getitem__(self, index):
        paths = [self.images[self.rng.randint(len(self.images))] for _ in range(self.batch_size)]
        images, masks = zip(*(self._sample(p) for p in paths))
        return np.stack(images), np.stack(masks)


def images_per_second(batches, count, batch_size):
    iterator = iter(batches)
    next(iterator)  # warm-up
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, default=ROOT.parent / "shared" / "data" / "buildings_sample")
    parser.add_argument("--data-dir", default=None, help="TFDS folder (default: a temporary one)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.sample / "building_data" / "src").is_dir():
        sys.exit(f"Sample not found at {args.sample}; pass --sample PATH to the buildings_sample folder.")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench_tfds_")
    examples = load_split("buildings/kaggle", "train", data_dir=data_dir, manual_dir=str(args.sample))
    ours = train_dataset(examples, size=args.size, batch_size=args.batch, seed=0)
    targets = ("building", "border", "contact")
    with_targets = train_dataset(examples, size=args.size, batch_size=args.batch, seed=0, targets=targets)
    with_gaps = train_dataset(examples, size=args.size, batch_size=args.batch, seed=0, gap_weight=10.0)
    reference = NumpyLoader(args.sample, size=args.size, batch_size=args.batch)
    loaders = {
        "tf.data (ours)": ours,
        "tf.data (ours), 3 targets": with_targets,
        "tf.data (ours), gap weights": with_gaps,
    }
    results = {name: [] for name in [*loaders, "PyDataset + PIL/NumPy"]}
    for _ in range(args.repeats):  # interleaved
        for name, batches in loaders.items():
            results[name].append(images_per_second(batches, args.batches, args.batch))
        results["PyDataset + PIL/NumPy"].append(
            images_per_second((reference[i] for i in range(10_000)), args.batches, args.batch)
        )
    print(
        f"real sample, {args.size}x{args.size}, batch {args.batch}, {args.batches} batches x {args.repeats} "
        f"interleaved repeats, {os.cpu_count()} CPUs"
    )
    print("| loader | images/s (median) | runs |")
    print("|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    ratio = statistics.median(results["tf.data (ours)"]) / statistics.median(results["PyDataset + PIL/NumPy"])
    print(f"ratio ours / reference: {ratio:.2f}x")


if __name__ == "__main__":
    main()
