"""Which half of a run loses to the yardstick: the network, or the data and loop around it (issue #34, fold 1).

The project's U-Net / Lite0 (as train.py's default builds it: P5 before the top conv, no stochastic depth,
raw colours) is trained two ways, each scored by the yardstick's own scorer (whole images, cut at 0.5):

- ``--data yardstick``: inside ``../shared/baselines/plain_unet.py`` itself (imported from there at run time,
  never copied): its image reading, crop sampler, loss, optimiser and fit; only its ``build_model`` is
  replaced by ``models.create_model``;
- ``--data ours``: this project's examples and input pipeline (``data.splits.split_examples`` with
  ``--train-on all``, ``data.pipeline.train_dataset``, flips only), ``training.losses`` BCE + Dice and a bare
  ``model.fit`` with constant Adam 1e-3: train.py's recipe without train.py around it;
- ``--data sampler``: the same as ``ours`` but for the batches, drawn by a NumPy sampler written here after the
  yardstick's description (images as the yardstick reads them, each crop from an image drawn at random, a
  uniform crop, a random turn and flip): the one difference left between ``ours`` and ``yardstick``. At the same
  seed both start from the same weights, so their runs pair. ``--data ours --draw random`` draws each image at
  random with replacement in our pipeline (``train_dataset(draw="random")``), as the sampler does.

Both at train.py's budget (210 steps of 8 crops at 128). The yardstick's own runs
(``results/recipe/baseline``) and train.py's (``results/recipe/ablation/plainnosd_*``) are the two ends.

    python -m experiments.yardstick_swap --data yardstick --holdout dubai_t1,dubai_t5 --seed 0 \
        --json results/recipe/swap/swapnetwork_f1_s0.json
    python -m experiments.yardstick_swap --data ours --holdout dubai_t1,dubai_t5 --seed 0 \
        --json results/recipe/swap/swappipeline_f1_s0.json
    python -m experiments.yardstick_swap --data sampler --holdout dubai_t1,dubai_t5 --seed 0 \
        --json results/recipe/swap/swapsampler_f1_s0.json
"""

import argparse
import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
YARDSTICK = ROOT.parent / "shared" / "baselines"
SAMPLE = ROOT.parent / "shared" / "data" / "buildings_sample"
STEPS, SIZE, BATCH = 210, 128, 8


def yardstick_module():
    """``plain_unet``, imported from ../shared/baselines (a clear error when it is not there)."""
    if not (YARDSTICK / "plain_unet.py").exists():
        raise SystemExit(f"experiments.yardstick_swap: the yardstick {YARDSTICK / 'plain_unet.py'} is not there")
    sys.path.insert(0, str(YARDSTICK))
    import plain_unet

    return plain_unet


def our_network():
    """train.py's default U-Net / Lite0 for a pretrained start, with the yardstick's raw colours."""
    from models import create_model

    return create_model("unet", "effnet-lite0", num_classes=1, input_shape=(None, None, 3), encoder_weights="imagenet",
                        bn_momentum=0.9, standardize=False, encoder_top=False, drop_connect=0.0)  # fmt: skip


def bare_fit(batches):
    """Our network fitted on ``batches`` with BCE + Dice and a constant Adam 1e-3 at train.py's budget."""
    import keras

    from training.losses import SegmentationLoss

    model = our_network()
    model.compile(keras.optimizers.Adam(1e-3), SegmentationLoss("bce+dice"))
    model.fit(batches, steps_per_epoch=STEPS // 10, epochs=10, verbose=2)
    return model


def train_with_our_pipeline(holdout, seed, data_dir, draw="pass", feed="dataset"):
    """Our network, fitted on our examples and input pipeline (images drawn as ``draw`` says) with a bare
    model.fit, which reads the tf.data dataset itself (``feed`` "dataset") or its batches as NumPy arrays from a
    Python generator ("numpy", as the yardstick feeds its own)."""
    import types

    import keras

    from data.groups import DEFAULT_GROUP_PATTERN
    from data.pipeline import train_dataset
    from data.splits import split_examples

    keras.utils.set_random_seed(seed)
    config = types.SimpleNamespace(data_dir=data_dir, manual_dir=str(SAMPLE), holdout=holdout, folds=0, fold=0,
                                   group_pattern=DEFAULT_GROUP_PATTERN, train_on="all", bands="",
                                   encoder="effnet-lite0")  # fmt: skip
    train, *_ = split_examples(config, "buildings/kaggle", Path(data_dir))
    batches = train_dataset(train, size=SIZE, batch_size=BATCH, seed=seed, crops_per_image=1, augmentation="flips",
                            draw=draw)  # fmt: skip
    if feed == "numpy":
        batches = (batch for batch in batches.as_numpy_iterator())
    return bare_fit(batches)


def train_with_a_plain_sampler(yardstick, holdout, seed):
    """Our network, loss and bare model.fit as ``train_with_our_pipeline``, fed by a NumPy sampler written here
    after the yardstick's description (each crop from an image drawn at random, a uniform crop, a random
    90-degree turn and flip) over the images as the yardstick reads them: only the batches' source differs."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    pairs = [pair for pair in yardstick.pairs_of(str(SAMPLE)) if yardstick.place_of(pair[0]) not in holdout]
    images = [(yardstick.read_rgb(image), yardstick.read_mask(label).astype(np.float32)[..., None])
              for image, label in pairs]  # fmt: skip
    draw = np.random.default_rng(seed)

    def batches():
        while True:
            crops, masks = [], []
            for _ in range(BATCH):
                image, mask = images[draw.integers(len(images))]
                top, left = draw.integers(0, mask.shape[0] - SIZE + 1), draw.integers(0, mask.shape[1] - SIZE + 1)
                turns = draw.integers(4)
                crop = np.rot90(image[top : top + SIZE, left : left + SIZE], turns)
                label = np.rot90(mask[top : top + SIZE, left : left + SIZE], turns)
                if draw.random() < 0.5:
                    crop, label = crop[:, ::-1], label[:, ::-1]
                crops.append(crop)
                masks.append(label)
            yield np.stack(crops), np.stack(masks)

    return bare_fit(batches())


def score(yardstick, model, holdout):
    """The yardstick's scores of ``model`` on the held-out places (its reading, padding and matching), and over
    them all."""
    import numpy as np

    totals = collections.defaultdict(lambda: np.zeros(5))
    for image_path, label_path in yardstick.pairs_of(str(SAMPLE)):
        place = yardstick.place_of(image_path)
        if place not in holdout:
            continue
        image, truth = yardstick.read_rgb(image_path), yardstick.read_mask(label_path)
        height, width = truth.shape
        padded = np.pad(image, ((0, -height % 32), (0, -width % 32), (0, 0)), mode="reflect")
        predicted = model.predict(padded[None], verbose=0)[0, :height, :width, 0] > 0
        matched, found, true = yardstick.building_matches(predicted, truth)
        totals[place] += [(predicted & truth).sum(), (predicted | truth).sum(), matched, found, true]
    places = {place: yardstick.summary(total) for place, total in sorted(totals.items())}
    return places, yardstick.summary(sum(totals.values()))


def main(argv=None):
    from data.pipeline import DRAWS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("yardstick", "ours", "sampler"), required=True)
    parser.add_argument("--holdout", required=True, help="comma-separated places, e.g. dubai_t1,dubai_t5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    parser.add_argument("--draw", choices=DRAWS, default="pass",
                        help="--data ours: each image once per pass, or drawn with replacement")  # fmt: skip
    parser.add_argument("--feed", choices=("dataset", "numpy"), default="dataset",
                        help="--data ours: model.fit reads the dataset, or its batches as NumPy arrays")  # fmt: skip
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "buildings_sample_tfds"),
                        help="where the sample's TFDS build is (--data ours)")  # fmt: skip
    args = parser.parse_args(argv)
    yardstick = yardstick_module()
    holdout = set(args.holdout.split(","))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.data == "yardstick":  # its own main, with our network in place of its U-Net
        yardstick.build_model = lambda _weights: our_network()
        command = ["plain_unet", "--sample", str(SAMPLE), "--holdout", args.holdout, "--seed", str(args.seed),
                   "--size", str(SIZE), "--steps", str(STEPS), "--json", str(out)]  # fmt: skip
        saved, sys.argv = sys.argv, command
        try:
            yardstick.main()
        finally:
            sys.argv = saved
        return
    if args.data == "ours":
        model = train_with_our_pipeline(args.holdout, args.seed, args.data_dir, args.draw, args.feed)
    else:
        model = train_with_a_plain_sampler(yardstick, holdout, args.seed)
    places, pooled = score(yardstick, model, holdout)
    summary = {"seed": args.seed, "steps": STEPS, "size": SIZE, "data": args.data, "draw": args.draw,
               "feed": args.feed, "places": places, "all": pooled}  # fmt: skip
    out.write_text(json.dumps(summary, indent=1))
    for place, row in places.items():
        print(f"{place:10s} pixel IoU {row['pixel_iou']:.3f}  building F1 {row['building_f1']:.3f}")


if __name__ == "__main__":
    main()
