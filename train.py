"""Train a building segmentation model.

    python train.py                                   # U-Net / ImageNet EfficientNet-Lite1 on the synthetic set
    python train.py --arch fcn8 --encoder effnet-b0   # choose the model (B0 starts from random weights)
    python train.py --dataset buildings/kaggle --manual-dir ~/Downloads/buildings --epochs 30
    python train.py --run-dir runs/my_run --resume    # continue a killed run
    python train.py --dataset buildings/kaggle --manual-dir DIR --holdout dubai_t8   # score a place never trained on
    python train.py --dataset buildings/kaggle --manual-dir DIR --folds 4 --fold 0   # fold 0 of a 4-fold group split

Without a Kaggle download the default dataset ("auto") is the procedural synthetic set, so
the command runs on a fresh machine. Every run writes one directory (see --run-dir): the
resolved config, history.csv, TensorBoard logs, best and last checkpoints, model.keras
(the selected weights, --select), results.json and plots. The last line printed is that
directory.

The final scores come from predict.py's scorer (whole images, blended windows, inference
mode): on the held-out groups with --holdout or --folds/--fold (every image of those places,
from every split, kept out of training), else on the validation split. Before scoring, the
decision threshold is calibrated (--calibrate train): the threshold with the best pixel IoU on
the first 16 training images is stored in model.keras as a logit offset, so probability 0.5
is that threshold in every tool. A model from a pretrained encoder is scored with the 8 flips and
90-degree turns of each image averaged (--tta; recorded in model.keras, so predict.py averages
them too); a random-init one without them.
A model without separation channels counts its buildings as predict.py --separate shape cuts its
mask (at narrow necks; --split shape, the default, recorded in model.keras so predict.py's
--separate auto does the same); --split none counts the mask's connected patches.
"""

import argparse
import dataclasses
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from data.bands import bands_of
from data.groups import DEFAULT_GROUP_PATTERN
from data.pipeline import AUGMENTATIONS, DRAWS
from models import list_archs, list_encoders
from models.segmenter import DEFAULT_BN_MOMENTUM
from training.checkpoints import MONITOR
from training.finish import SELECTIONS
from training.recipes import recipe_line
from training.rundir import make_run_dir
from training.setup import target_weights
from training.trackers import create_trackers, parse_trackers

DATASETS = ("auto", "buildings/synthetic", "buildings/kaggle", "buildings/polygons")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "plateau", "constant")
CALIBRATIONS = ("train", "none")  # where the decision threshold comes from: see training/finish.py
SPLITS = ("shape", "none")  # how a model without separation channels counts buildings: see training/finish.py
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")  # built by training.distribute.make_strategy
SYNTHETIC_NOTE = "  (no Kaggle download found: training on the procedural synthetic set)"


@dataclasses.dataclass(frozen=True)
class Config:
    arch: str = "unet"
    encoder: str = "effnet-lite1"
    encoder_weights: str = "auto"  # auto: imagenet where it ships offline (Lite0..2), else none; none; imagenet; .h5
    dataset: str = "auto"  # auto: kaggle when its download is in place, else synthetic
    data_dir: str = ""  # TFDS folder; empty: ~/tensorflow_datasets
    manual_dir: str = ""  # folder holding the Kaggle zip or extracted folder
    image_size: int = 128
    batch_size: int = 8
    epochs: int = 6
    steps_per_epoch: int = 35
    start_recipe: str = "auto"  # auto: pretrained or random by the encoder's weights (training/recipes.py)
    lr: float = 1e-3  # peak of the cosine schedule (the start recipe's: 1e-3 pretrained, 2e-3 random init)
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 20
    loss: str = "dice+focal"  # terms joined by +, each with an optional weight: bce+dice, bce+0.5*dice
    bn_momentum: float = DEFAULT_BN_MOMENTUM
    precision: str = "float32"
    strategy: str = "default"
    tracker: str = "local,tensorboard"
    run_dir: str = ""  # empty: runs/<time>_<arch>_<encoder>
    resume: bool = False
    seed: int = 0
    model_seed: int = -1  # the seed of the initial weights (and dropout) alone; -1: --seed seeds them with the data
    # bit-identical runs at one seed: TensorFlow's deterministic kernels and one CPU thread per op (slower). Without
    # it, multi-threaded kernels sum in varying order, and Adam turns those 1e-8 differences into other runs.
    deterministic: bool = False
    crops_per_image: int = 8
    draw: str = "pass"  # pass: each training image once per pass, in a new order; random: drawn with replacement
    standardize: str = "image"  # image: each input's colours standardised by its own mean and spread; none: raw
    # (lr and standardize follow --start-recipe unless given: raw colours for a random-init encoder)
    augment: str = "basic"  # a preset of data.pipeline.AUGMENTATIONS; "aerial" scored lower on an unseen tile (README)
    select: str = "ema"  # ema: moving average of the weights; last: last step; best: best epoch on validation
    ema_fraction: float = 0.1  # the weight average spans about this fraction of the run's steps
    holdout: str = ""  # comma-separated groups kept out of training and scored at the end
    folds: int = 0  # > 1: split the groups into this many folds and hold out fold --fold
    fold: int = 0
    group_pattern: str = DEFAULT_GROUP_PATTERN  # regex naming an image's group (data/groups.py)
    train_on: str = "train"  # all (with --holdout/--folds): every image not held out trains, no validation split
    score_selections: bool = False  # also score the other --select choices (results.json "selections")
    calibrate: str = "train"  # train: the decision threshold with the best IoU on training images; none: 0.5
    # score held-out places as predict.py --tta predicts, the 8 flips and turns averaged (the threshold is measured
    # without them); the model records it, so predict.py averages them too (the start recipe's: on pretrained, off
    # random init)
    tta: bool = False
    targets: str = "building"  # building,border,contact: also learn outlines and gaps, to separate buildings
    split: str = "shape"  # a building-only model's buildings: its mask's patches cut at narrow necks (shape), or none
    target_weights: str = ""  # loss weight per target, comma-separated; empty: 1 each
    fine_skip: bool = False  # U-Net: the input image joins the last, full-resolution stage (one-pixel gaps)
    encoder_top: str = "keep"  # drop: the decoder's P5 is the encoder's last block, before its top conv
    drop_connect: str = "auto"  # EfficientNets: stochastic depth of the last block while training; auto: 0.2; 0: none
    zoom: int = 1  # > 1: the network sees the image enlarged this many times, its logits pooled back (zoom**2 compute)
    gap_weight: float = 0.0  # > 0: pixels between neighbouring buildings count 1 + this in the loss (data.targets)
    bands: str = ""  # bands of the dataset's images the model reads, 1-based, RGB first, e.g. 1,2,3,4; empty: 1,2,3
    init: str = ""  # a finished run (or its model.keras) of the same arch and encoder to fine-tune
    freeze_encoder: int = (
        0  # train the decoder alone (encoder weights and BatchNorm statistics frozen) this many epochs
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = {
        "arch": list_archs(),
        "dataset": DATASETS,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "precision": PRECISIONS,
        "strategy": STRATEGIES,
        "select": SELECTIONS,
        "augment": tuple(AUGMENTATIONS),
        "standardize": ("none", "image"),
        "calibrate": CALIBRATIONS,
        "split": SPLITS,
        "train_on": ("train", "all"),
        "draw": DRAWS,
        "start_recipe": ("auto", "pretrained", "random"),
        "encoder_top": ("keep", "drop"),
    }
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool" or isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)  # --no-<flag> too
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default, choices=choices.get(field.name))
    args = parser.parse_args(argv)
    # the options given on the command line: a second pass whose defaults are suppressed sees only them
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_known_args(argv)[0]))
    config = Config(**vars(args))
    if config.encoder not in list_encoders():  # check_config names it; no recipe to choose
        return config
    from training.recipes import resolve_start_recipe

    return resolve_start_recipe(config, given)


def group_pattern_problems(pattern):
    """A --group-pattern that is not a regular expression, named (before anything is written)."""
    import re

    try:
        re.compile(pattern)
    except re.error as error:
        return [f"--group-pattern {pattern!r} is not a regular expression ({error}); e.g. '^(.+)_\\d+$'"]
    return []


def parsing_problems(config):
    """What the options written in small languages (--loss, --tracker, --targets, --init) say is wrong."""
    from data.targets import parse_targets
    from training.finetune import check_init
    from training.losses import parse_loss

    problems = []
    for option, check in (
        ("--loss", lambda: parse_loss(config.loss)),
        ("--tracker", lambda: parse_trackers(config.tracker)),
    ):
        try:
            check()
        except ValueError as error:
            problems.append(f"{option}: {error}")
    try:
        targets = parse_targets(config.targets)
        weights = target_weights(config)
        if config.target_weights and len(weights) != len(targets):
            problems.append(f"--target-weights {config.target_weights!r}: give one weight per target ({len(targets)})")
        if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
            problems.append(
                f"--target-weights {config.target_weights!r}: each weight must be a finite number of at least 0, "
                "and one above 0 (a negative weight would train that target backwards)"
            )
        if config.init:
            check_init(config.init, config.arch, config.encoder)
    except ValueError as error:
        problems.append(str(error))
    return problems


def data_dir_problems(data_dir):
    """A --data-dir that is a file, or that cannot be made (a read-only or missing parent), named before the run
    folder exists; a missing one that can be made is made (the dataset is built there)."""
    if not data_dir:
        return []
    folder = Path(data_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        return [f"--data-dir {data_dir}: a file, not a folder; pass the folder the datasets are built in"]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return [f"--data-dir {data_dir}: cannot be made ({error.strerror}); pass a folder you can write to"]
    return []


def weight_problems(config):
    """--encoder-weights FILE and --init, loaded into the model this run builds before anything is written:
    a missing, damaged or unfitting file is named here, not after the run folder exists."""
    from training.finetune import check_init_fits
    from training.setup import check_encoder_weights

    problems = []
    for option, check in (("--encoder-weights", check_encoder_weights), ("--init", check_init_fits)):
        try:
            check(config)
        except ValueError as error:
            problems.append(f"{option}: {error}" if not str(error).startswith(option) else str(error))
    return problems


def number_problems(config):
    """Numbers checked for meaning, not just form (nan and inf too): counts, rates and --bands."""
    problems = []
    for name in ("batch_size", "epochs", "steps_per_epoch"):
        if getattr(config, name) < 1:
            problems.append(f"--{name.replace('_', '-')} {getattr(config, name)}: must be at least 1")
    for option, value, low, high, rule in (
        ("--lr", config.lr, 0.0, math.inf, "a finite number above 0"),
        ("--weight-decay", config.weight_decay, 0.0, math.inf, "a finite number of at least 0"),
        ("--bn-momentum", config.bn_momentum, 0.0, 1.0, "a number in [0, 1)"),
    ):
        if not (math.isfinite(value) and low <= value < high) or (option == "--lr" and value == 0):
            problems.append(f"{option} {value}: must be {rule}")
    for option, value in (("--warmup-steps", config.warmup_steps), ("--crops-per-image", config.crops_per_image)):
        if value < (0 if option == "--warmup-steps" else 1):
            problems.append(f"{option} {value}: must be at least {0 if option == '--warmup-steps' else 1}")
    if config.model_seed < -1:
        problems.append(
            f"--model-seed {config.model_seed}: must be at least 0 (or -1: the initial weights follow --seed)"
        )
    try:
        bands_of(config)
    except ValueError as error:
        problems.append(str(error))
    return problems


def drop_connect_problems(config):
    """--drop-connect: auto, or a rate in [0, 1) for an encoder with stochastic depth."""
    from models.encoders.registry import check_drop_connect

    if config.drop_connect == "auto" or config.encoder not in list_encoders():
        return []
    try:
        rate = float(config.drop_connect)
    except ValueError:
        return [f"--drop-connect {config.drop_connect!r}: use auto (the encoder's own) or a number in [0, 1)"]
    try:
        check_drop_connect(config.encoder, rate)
    except ValueError as error:
        return [f"--drop-connect {config.drop_connect}: {error}"]
    return []


def check_config(config):
    """Reject unknown or contradictory values before any work."""
    from models.decoders import takes_fine_skip
    from models.registry import OUTPUT_STRIDE

    problems = number_problems(config)
    if config.encoder not in list_encoders():
        problems.append(f"--encoder {config.encoder!r}: valid encoders are {', '.join(list_encoders())}")
    if config.image_size <= 0 or config.image_size % OUTPUT_STRIDE:
        problems.append(f"--image-size {config.image_size}: use a positive multiple of {OUTPUT_STRIDE} (e.g. 128, 256)")
    if config.fine_skip and not takes_fine_skip(config.arch):
        problems.append(f"--fine-skip: the {config.arch} decoder has no full-resolution stage; use --arch unet")
    if config.zoom < 1 or config.zoom > 4:
        problems.append(f"--zoom {config.zoom}: use 1 (the image as it is) to 4; each step costs zoom**2 times as much")
    if not (math.isfinite(config.gap_weight) and config.gap_weight >= 0):
        problems.append(f"--gap-weight {config.gap_weight}: must be at least 0 (0: every pixel counts once)")
    problems += drop_connect_problems(config)
    if config.encoder_weights not in ("none", "imagenet", "auto") and not config.encoder_weights.endswith(
        ".weights.h5"
    ):
        problems.append(f"--encoder-weights {config.encoder_weights!r}: use none, imagenet, auto or a .weights.h5 file")
    if config.strategy == "multiworker" and "TF_CONFIG" not in os.environ:
        problems.append("--strategy multiworker needs the TF_CONFIG environment variable (see the README)")
    if config.warmup_steps >= config.epochs * config.steps_per_epoch and config.schedule == "cosine":
        problems.append(f"--warmup-steps {config.warmup_steps}: must be smaller than epochs x steps-per-epoch")
    if config.manual_dir and not Path(config.manual_dir).is_dir():
        problems.append(
            f"--manual-dir {config.manual_dir}: no such folder; pass the folder holding the Kaggle zip or "
            "its extracted folder"
        )
    if config.train_on == "all" and not (config.holdout or config.folds):
        problems.append("--train-on all trains on every image that is not held out: pass --holdout or --folds")
    if config.holdout and config.folds:
        problems.append("--holdout and --folds both choose the held-out groups; pass one of them")
    if config.folds and not 0 <= config.fold < config.folds:
        problems.append(f"--fold {config.fold}: must lie in [0, --folds) = [0, {config.folds})")
    if config.folds == 1 or config.folds < 0:
        problems.append(f"--folds {config.folds}: use 0 (no folds) or at least 2")
    if not 0 < config.ema_fraction <= 1:
        problems.append(f"--ema-fraction {config.ema_fraction}: must lie in (0, 1]")
    if not 0 <= config.freeze_encoder <= config.epochs:
        problems.append(f"--freeze-encoder {config.freeze_encoder}: must lie in [0, --epochs] = [0, {config.epochs}]")
    problems += group_pattern_problems(config.group_pattern) + parsing_problems(config)
    if not problems:  # the weights are loaded, and the data folder made, only when all options make sense
        problems += weight_problems(config) + data_dir_problems(config.data_dir)
    if problems:
        raise SystemExit("train.py: invalid arguments:\n  " + "\n  ".join(problems))


def resolve_dataset(config):
    """'auto' -> kaggle when its download or build is in place, else synthetic."""
    if config.dataset != "auto":
        return config.dataset
    import tensorflow_datasets as tfds

    import data.buildings  # noqa: F401

    builder = tfds.builder("buildings/kaggle", data_dir=config.data_dir or None)
    if builder.is_prepared() or (config.manual_dir and Path(config.manual_dir).exists()):
        return "buildings/kaggle"
    return "buildings/synthetic"


def main(argv=None):
    config = parse_args(argv)
    check_config(config)
    dataset = resolve_dataset(config)
    print(f"dataset: {dataset}" + (SYNTHETIC_NOTE if dataset.endswith("synthetic") else ""))
    print(recipe_line(config))
    run_dir, finished = make_run_dir(config)  # refuses a folder it must not write into
    if finished:
        return run_dir
    started = time.time()

    from inference import heldout as scorer
    from training.checkpoints import atomic_write_json, resume_state
    from training.distribute import make_strategy, worker_run_dir
    from training.finetune import start_frozen
    from training.finish import finish_run, heldout_line
    from training.fit import fit
    from training.setup import build_model, make_callbacks, make_datasets, seed_model, start_tensorflow

    start_tensorflow(config)
    strategy = make_strategy(config.strategy)
    is_chief, run_dir = worker_run_dir(config.strategy, run_dir)  # other workers write aside, never over the chief
    resolved = {**dataclasses.asdict(config), "dataset": dataset, "run_dir": str(run_dir)}
    atomic_write_json(resolved, run_dir / "config.json")
    print(f"run directory: {run_dir}")

    train_ds, val_ds, train_examples, heldout_examples, heldout = make_datasets(config, dataset, run_dir)
    seed_model(config)
    model, params, gmacs = build_model(config, strategy, train_ds)
    initial_epoch, best_value, history = 0, None, []
    if config.resume:
        initial_epoch, best_value, history = resume_state(run_dir, model)
        print(f"resuming after epoch {initial_epoch} of {config.epochs} (best {MONITOR} {best_value})")
    start_frozen(model, config.freeze_encoder, initial_epoch)
    trackers = create_trackers(parse_trackers(config.tracker), run_dir) if is_chief else []
    callbacks, throughput = make_callbacks(config, run_dir, trackers, resolved, best_value=best_value, history=history)
    fit(config, model, run_dir, train_ds, val_ds, initial_epoch=initial_epoch, callbacks=callbacks)
    ema_weights = model.get_weights() if model.optimizer.use_ema else None  # fit() ends by swapping the average in
    facts = {
        "dataset": dataset,
        "params": int(params),
        "gmacs": round(gmacs, 4),
        # None when this process trained no step (a resumed run that had finished its epochs)
        "train_images_per_sec": round(throughput.images_per_second(), 3) or None,
        "wall_seconds": time.time() - started,
        "initial_epoch": initial_epoch,
    }
    results = finish_run(
        config, run_dir, model, ema_weights=ema_weights, train_examples=train_examples,
        heldout_examples=heldout_examples, heldout=heldout, val_ds=val_ds,
        shape=(config.image_size, config.image_size, len(bands_of(config))), facts=facts, scorer=scorer,
    )  # fmt: skip
    for tracker in trackers:
        tracker.finish(results, artifacts=[run_dir / "results.json", run_dir / "learning_curves.png"])
    print(heldout_line(config, results, heldout, scorer.threshold_of(results)))
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
