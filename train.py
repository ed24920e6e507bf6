"""Train a building segmentation model.

    python train.py                                   # U-Net / EfficientNet-B0 on the synthetic set
    python train.py --arch fcn8 --encoder effnet-b0   # choose the model
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
is that threshold in every tool (Dice/focal-trained models over-predict at the plain 0.5).
"""

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common.files import make_writable_folder
from data.groups import DEFAULT_GROUP_PATTERN
from data.pipeline import AUGMENTATIONS
from models import list_archs
from models.segmenter import DEFAULT_BN_MOMENTUM
from training.checkpoints import MONITOR
from training.trackers import parse_trackers

DATASETS = ("auto", "buildings/synthetic", "buildings/kaggle")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "plateau", "constant")
SELECTIONS = ("ema", "last", "best")  # which weights a run keeps: see candidate_weights
CALIBRATIONS = ("train", "none")  # where the decision threshold comes from: see finish_run
CALIBRATION_IMAGES = 16  # training images the threshold is measured on (the first ones of the shuffled split)
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")  # built by training.distribute.make_strategy


@dataclasses.dataclass(frozen=True)
class Config:
    arch: str = "unet"
    encoder: str = "effnet-b0"
    encoder_weights: str = "none"  # none | imagenet | path to a .weights.h5 of the encoder
    dataset: str = "auto"  # auto: kaggle when its download is in place, else synthetic
    data_dir: str = ""  # TFDS folder; empty: ~/tensorflow_datasets
    manual_dir: str = ""  # folder holding the Kaggle zip or extracted folder
    image_size: int = 128
    batch_size: int = 8
    epochs: int = 6
    steps_per_epoch: int = 35
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 20
    loss: str = "dice+focal"
    bn_momentum: float = DEFAULT_BN_MOMENTUM
    precision: str = "float32"
    strategy: str = "default"
    tracker: str = "local,tensorboard"
    run_dir: str = ""  # empty: runs/<time>_<arch>_<encoder>
    resume: bool = False
    seed: int = 0
    crops_per_image: int = 8
    standardize: str = "none"  # image: each input's colours standardised by its own mean and spread
    augment: str = "basic"  # a preset of data.pipeline.AUGMENTATIONS; "aerial" scored lower on an unseen tile (README)
    select: str = "ema"  # ema: moving average of the weights; last: last step; best: best epoch on validation
    ema_fraction: float = 0.1  # the weight average spans about this fraction of the run's steps
    holdout: str = ""  # comma-separated groups kept out of training and scored at the end
    folds: int = 0  # > 1: split the groups into this many folds and hold out fold --fold
    fold: int = 0
    group_pattern: str = DEFAULT_GROUP_PATTERN  # regex naming an image's group (data/groups.py)
    score_selections: bool = False  # also score the other --select choices (results.json "selections")
    calibrate: str = "train"  # train: the decision threshold with the best IoU on training images; none: 0.5
    targets: str = "building"  # building,border,contact: also learn outlines and gaps, to separate buildings
    target_weights: str = ""  # loss weight per target, comma-separated; empty: 1 each
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
    }
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool" or isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default, choices=choices.get(field.name))
    return Config(**vars(parser.parse_args(argv)))


def target_weights(config):
    """The loss weight of each target (--target-weights, or 1 each)."""
    from data.targets import parse_targets

    if not config.target_weights:
        return [1.0] * len(parse_targets(config.targets))
    try:
        return [float(w) for w in config.target_weights.split(",")]
    except ValueError:
        raise ValueError(
            f"--target-weights {config.target_weights!r}: comma-separated numbers, e.g. 1,0.5,0.5"
        ) from None


def check_config(config):
    """Reject unknown or contradictory values before any work."""
    from data.targets import parse_targets
    from models import list_encoders
    from models.registry import OUTPUT_STRIDE
    from training.losses import parse_loss

    problems = []
    if config.encoder not in list_encoders():
        problems.append(f"--encoder {config.encoder!r}: valid encoders are {', '.join(list_encoders())}")
    if config.image_size <= 0 or config.image_size % OUTPUT_STRIDE:
        problems.append(f"--image-size {config.image_size}: use a positive multiple of {OUTPUT_STRIDE} (e.g. 128, 256)")
    for name in ("batch_size", "epochs", "steps_per_epoch"):
        if getattr(config, name) < 1:
            problems.append(f"--{name.replace('_', '-')} {getattr(config, name)}: must be at least 1")
    if config.lr <= 0:
        problems.append(f"--lr {config.lr}: must be positive")
    try:
        parse_loss(config.loss)
    except ValueError as error:
        problems.append(f"--loss: {error}")
    try:
        parse_trackers(config.tracker)
    except ValueError as error:
        problems.append(f"--tracker: {error}")
    if config.encoder_weights not in ("none", "imagenet") and not config.encoder_weights.endswith(".weights.h5"):
        problems.append(f"--encoder-weights {config.encoder_weights!r}: use none, imagenet or a .weights.h5 file")
    if config.strategy == "multiworker" and "TF_CONFIG" not in os.environ:
        problems.append("--strategy multiworker needs the TF_CONFIG environment variable (see the README)")
    if config.warmup_steps >= config.epochs * config.steps_per_epoch and config.schedule == "cosine":
        problems.append(f"--warmup-steps {config.warmup_steps}: must be smaller than epochs x steps-per-epoch")
    if config.manual_dir and not Path(config.manual_dir).is_dir():
        problems.append(
            f"--manual-dir {config.manual_dir}: no such folder; pass the folder holding the Kaggle zip or "
            "its extracted folder"
        )
    if config.holdout and config.folds:
        problems.append("--holdout and --folds both choose the held-out groups; pass one of them")
    if config.folds and not 0 <= config.fold < config.folds:
        problems.append(f"--fold {config.fold}: must lie in [0, --folds) = [0, {config.folds})")
    if config.folds == 1 or config.folds < 0:
        problems.append(f"--folds {config.folds}: use 0 (no folds) or at least 2")
    if not 0 < config.ema_fraction <= 1:
        problems.append(f"--ema-fraction {config.ema_fraction}: must lie in (0, 1]")
    try:
        targets = parse_targets(config.targets)
        if config.target_weights and len(target_weights(config)) != len(targets):
            problems.append(f"--target-weights {config.target_weights!r}: give one weight per target ({len(targets)})")
    except ValueError as error:
        problems.append(str(error))
    if not 0 <= config.freeze_encoder <= config.epochs:
        problems.append(f"--freeze-encoder {config.freeze_encoder}: must lie in [0, --epochs] = [0, {config.epochs}]")
    if config.init:
        from training.finetune import check_init

        try:
            check_init(config.init, config.arch, config.encoder)
        except ValueError as error:
            problems.append(str(error))
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


# options a resumed run may change: where it logs, not what it trains
RESUME_FREE = ("resume", "run_dir", "tracker", "score_selections", "calibrate")


def _our_config(run_dir):
    """The config.json this script wrote into ``run_dir``, or None when there is none of ours."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return (
        saved if isinstance(saved, dict) and {"arch", "encoder", "dataset", "run_dir", "seed"} <= set(saved) else None
    )


def resume_mismatches(saved, config):
    """['--arch fcn8 (the run: unet)', ...]: options of ``config`` that differ from the run's saved config."""
    problems = []
    for field in dataclasses.fields(Config):
        if field.name in RESUME_FREE or (field.name == "dataset" and config.dataset == "auto"):
            continue
        if field.name in saved and saved[field.name] != getattr(config, field.name):
            problems.append(
                f"--{field.name.replace('_', '-')} {getattr(config, field.name)!r} (the run: {saved[field.name]!r})"
            )
    return problems


def make_run_dir(config):
    """(run directory, finished): checked, created and writable; nothing in it is changed here.

    Only an empty folder or a run of ours is used; --resume must repeat the run's options.
    Temporary files that a killed write left behind are removed.
    """
    run_dir = (
        Path(config.run_dir)
        if config.run_dir
        else (Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}_{config.arch}_{config.encoder}")
    )
    if run_dir.exists() and not run_dir.is_dir():
        raise SystemExit(f"train.py: --run-dir {run_dir} is a file, not a folder. Choose another --run-dir.")
    saved = _our_config(run_dir)
    ours = saved is not None
    if config.resume:
        if not ours:
            raise SystemExit(
                f"train.py: --resume: {run_dir} holds no run of train.py (no config.json of ours). "
                "Pass the --run-dir of the run to continue."
            )
        mismatches = resume_mismatches(saved, config)
        if mismatches:
            raise SystemExit(
                f"train.py: --resume with options that differ from the run in {run_dir} (nothing was changed):"
                "\n  " + "\n  ".join(mismatches) + "\nRepeat the run's options (see its config.json), or "
                "start a new run with another --run-dir."
            )
        from training.checkpoints import check_resumable

        try:
            check_resumable(run_dir)
        except ValueError as error:
            raise SystemExit(f"train.py: {error}") from None
        if (run_dir / "results.json").exists():
            print(
                f"train.py: {run_dir} finished earlier (results.json is written); left untouched. To train longer, "
                "start a new run (e.g. with --encoder-weights from its model)."
            )
            return run_dir, True
    elif (run_dir / "state.json").exists():
        raise SystemExit(
            f"train.py: {run_dir} already holds a run. Add --resume to continue it, or choose another --run-dir."
        )
    elif run_dir.is_dir() and not ours and any(run_dir.iterdir()):
        found = ", ".join(sorted(p.name for p in run_dir.iterdir())[:4])
        raise SystemExit(
            f"train.py: --run-dir {run_dir} is not empty and holds no run of train.py ({found}); its files "
            "would be overwritten. Choose an empty or new folder."
        )
    try:
        make_writable_folder(run_dir, option="--run-dir")
    except ValueError as error:
        raise SystemExit(f"train.py: {error}") from None
    for leftover in [*run_dir.glob("*.tmp"), *run_dir.glob("*.tmp.*")]:  # a write killed half-way
        leftover.unlink()
    return run_dir, False


def chief_and_task(tf_config):
    """(is this task the chief, its folder name) from a TF_CONFIG dict.

    TensorFlow's rule: the "chief" task when the cluster has one, else worker 0.
    """
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    kind, index = task.get("type", "worker"), task.get("index", 0)
    chief = kind == "chief" or ("chief" not in cluster and kind == "worker" and index == 0)
    return chief, f"{kind}{index}"


def split_examples(config, dataset, run_dir):
    """(train, validation, held-out, held-out description, example counts): whole groups are held out.

    Without --holdout / --folds the held-out set is the validation split. With them, every
    image of a held-out group, from any split (test scenes included), is held out, and the
    other images keep their train / validation split.
    """
    from data.groups import group_folds, group_names, split_by_groups
    from data.pipeline import DatasetBuildError, file_names, load_split, only_files

    kwargs = {"data_dir": config.data_dir or None, "manual_dir": config.manual_dir or None}
    try:
        splits = {name: load_split(dataset, name, **kwargs) for name in ("train", "validation", "test")}
    except DatasetBuildError as error:  # the named input is the last thing on the screen; the traceback goes to a log
        import traceback

        log = run_dir / "build_error.log"
        log.write_text(traceback.format_exc())
        raise SystemExit(f"train.py: {error}\n(full traceback in {log})") from None
    if not (config.holdout or config.folds):  # TFDS splits know their sizes
        counts = [int(splits[name].cardinality()) for name in ("train", "validation", "validation")]
        return (
            splits["train"],
            splits["validation"],
            splits["validation"],
            {"kind": "validation split", "groups": []},
            counts,
        )
    names = {split: file_names(examples) for split, examples in splits.items()}
    try:
        groups = group_names([name for split in names.values() for name in split], config.group_pattern)
        held = config.holdout.split(",") if config.holdout else group_folds(groups, config.folds)[config.fold]
        _, away = split_by_groups(groups, held)
    except ValueError as error:
        raise SystemExit(f"train.py: {error}") from None
    away = set(away)
    keep = {split: [n for n in split_names if n not in away] for split, split_names in names.items()}
    if not keep["train"]:
        raise SystemExit(f"train.py: holding out {', '.join(held)} leaves no training image. Hold out fewer groups.")
    held_out = [only_files(examples, [n for n in names[split] if n in away]) for split, examples in splits.items()]
    scored = held_out[0].concatenate(held_out[1]).concatenate(held_out[2])
    print(
        f"groups held out: {', '.join(held)} ({len(away)} images); training groups: "
        f"{', '.join(sorted(set(groups.values()) - set(held)))}"
    )
    description = {"kind": "groups", "groups": sorted(held)}
    counts = [len(keep["train"]), len(keep["validation"]), len(away)]
    return (
        only_files(splits["train"], keep["train"]),
        only_files(splits["validation"], keep["validation"]),
        scored,
        description,
        counts,
    )


def make_optimizer(config):
    """The optimizer with its schedule; it keeps a moving average of the weights for --select ema."""
    import keras

    total = config.epochs * config.steps_per_epoch
    ema = {}
    if config.select == "ema" or config.score_selections:
        ema = {"use_ema": True, "ema_momentum": 1.0 - 1.0 / max(config.ema_fraction * total, 1.0)}
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=max(total - config.warmup_steps, 1),
            warmup_target=config.lr,
            warmup_steps=config.warmup_steps,
        )
    else:
        lr = config.lr
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **ema)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, **ema)
    return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, **ema)


def main(argv=None):
    config = parse_args(argv)
    check_config(config)
    dataset = resolve_dataset(config)
    print(
        f"dataset: {dataset}"
        + (
            "  (no Kaggle download found: training on the procedural synthetic set)"
            if dataset.endswith("synthetic")
            else ""
        )
    )
    run_dir, finished = make_run_dir(config)
    if finished:
        return run_dir
    started = time.time()

    import keras

    from training.checkpoints import RunCheckpoint, atomic_write_json, resume_state
    from training.distribute import make_strategy
    from training.finetune import UnfreezeEncoder, start_frozen
    from training.metrics import ThroughputMeter
    from training.trackers import create_trackers

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.precision)
    strategy = make_strategy(config.strategy)
    is_chief = True
    if config.strategy == "multiworker":
        is_chief, task_dir = chief_and_task(json.loads(os.environ["TF_CONFIG"]))
        if not is_chief:  # other workers write their files aside, never over the chief's
            run_dir = run_dir / task_dir
            run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {**dataclasses.asdict(config), "dataset": dataset, "run_dir": str(run_dir)}
    atomic_write_json(resolved, run_dir / "config.json")
    print(f"run directory: {run_dir}")

    train_ds, val_ds, train_examples, heldout_examples, heldout = make_datasets(config, dataset, run_dir)
    model, params, gmacs = build_model(config, strategy, train_ds)

    initial_epoch, best_value, history = 0, None, []
    if config.resume:
        initial_epoch, best_value, history = resume_state(run_dir, model)
        print(f"resuming after epoch {initial_epoch} of {config.epochs} (best {MONITOR} {best_value})")
    start_frozen(model, config.freeze_encoder, initial_epoch)
    tracker_names = parse_trackers(config.tracker)
    trackers = create_trackers(tracker_names, run_dir) if is_chief else []
    for tracker in trackers:
        tracker.start(resolved)
    throughput = ThroughputMeter(config.batch_size)
    callbacks = [RunCheckpoint(run_dir, best_value=best_value, history=history, trackers=trackers), throughput]
    if "tensorboard" in tracker_names:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), update_freq="epoch"))
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))
    if config.freeze_encoder:
        callbacks.append(UnfreezeEncoder(config.freeze_encoder))

    fit(config, model, run_dir, train_ds, val_ds, initial_epoch=initial_epoch, callbacks=callbacks)
    ema_weights = model.get_weights() if model.optimizer.use_ema else None  # fit() ends by swapping the average in
    results = finish_run(
        config,
        run_dir,
        model,
        ema_weights=ema_weights,
        train_examples=train_examples,
        heldout_examples=heldout_examples,
        heldout=heldout,
        val_ds=val_ds,
        shape=(config.image_size, config.image_size, 3),
        facts={
            "dataset": dataset,
            "params": int(params),
            "gmacs": round(gmacs, 4),
            # None when this process trained no step (a resumed run that had finished its epochs)
            "train_images_per_sec": round(throughput.images_per_second(), 3) or None,
            "wall_seconds": time.time() - started,
            "initial_epoch": initial_epoch,
        },
    )
    for tracker in trackers:
        tracker.finish(results, artifacts=[run_dir / "results.json", run_dir / "learning_curves.png"])
    print(
        f"held out ({heldout['kind']}{': ' + ', '.join(heldout['groups']) if heldout['groups'] else ''}; "
        f"{config.select} weights, threshold {threshold_of(results):.2f}, predict.py's scorer): "
        f"IoU {results['heldout_iou']:.3f}  "
        f"F1 {results['heldout_f1']:.3f}  "
        f"precision {results['heldout_precision']:.3f}  recall {results['heldout_recall']:.3f}  "
        f"(all-building IoU {results['heldout_all_building_iou']:.3f})"
    )
    print(run_dir)
    return run_dir


def threshold_of(results):
    """The decision threshold a run's model uses (calibrated on training images, or predict.py's default)."""
    from inference import defaults

    return (results.get("calibration") or {}).get("threshold", defaults.THRESHOLD)


def make_datasets(config, dataset, run_dir):
    """(train batches, validation batches or None, train examples, held-out examples, held-out description)."""
    import tensorflow as tf

    from data.pipeline import eval_dataset, train_dataset
    from data.targets import parse_targets

    train_examples, val_examples, heldout_examples, heldout, counts = split_examples(config, dataset, run_dir)
    print(
        f"examples: {counts[0]} train, {counts[1]} validation, {counts[2]} held out for the final score "
        f"({heldout['kind']})"
    )
    if config.select == "best" and not counts[1]:
        raise SystemExit(
            "train.py: --select best picks the best epoch on the validation split, which is empty here "
            "(all of it is held out). Use --select ema or --select last."
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_dataset(
        train_examples,
        size=config.image_size,
        batch_size=config.batch_size,
        seed=config.seed,
        crops_per_image=config.crops_per_image,
        augmentation=config.augment,
        targets=parse_targets(config.targets),
    ).with_options(options)
    val_ds = None
    if counts[1]:
        val_ds = eval_dataset(
            val_examples, size=config.image_size, batch_size=config.batch_size, targets=parse_targets(config.targets)
        ).with_options(options)
    return train_ds, val_ds, train_examples, heldout_examples, heldout


def build_model(config, strategy, train_ds):
    """(compiled model, params, GMACs) in the strategy's scope."""
    from data.targets import parse_targets
    from models import count_macs, create_model
    from models.segmenter import set_bn_momentum
    from training.distribute import prepare_multiworker_model
    from training.finetune import load_init_weights
    from training.losses import SegmentationLoss
    from training.metrics import segmentation_metrics

    shape = (config.image_size, config.image_size, 3)
    weights = None if config.encoder_weights == "none" else config.encoder_weights
    targets = parse_targets(config.targets)
    with strategy.scope():
        model = create_model(
            config.arch,
            config.encoder,
            num_classes=len(targets),
            input_shape=shape,
            encoder_weights=weights,
            bn_momentum=config.bn_momentum,
            standardize=config.standardize == "image",
        )
        if config.init:
            load_init_weights(model, config.init)
        model.compile(
            optimizer=make_optimizer(config),
            loss=SegmentationLoss(config.loss, target_weights=target_weights(config) if len(targets) > 1 else None),
            weighted_metrics=segmentation_metrics(),
        )
        if config.strategy != "default":  # one set of batch statistics across replicas and workers
            set_bn_momentum(model, config.bn_momentum, synchronized=True)
        if config.strategy == "multiworker":
            prepare_multiworker_model(model, next(iter(train_ds)))
    params, gmacs = model.count_params(), count_macs(model) / 1e9
    print(
        f"model: {config.arch} / {config.encoder}: {params:,} params, {gmacs:.2f} GMACs at "
        f"{config.image_size}x{config.image_size}"
    )
    return model, params, gmacs


def fit(config, model, run_dir, train_ds, val_ds, *, initial_epoch, callbacks):
    """model.fit; Ctrl-C or SIGTERM saves interrupted.weights.h5 and exits 130 (resume with --resume)."""

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        model.fit(
            train_ds,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            validation_data=val_ds,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            shuffle=False,
            verbose=1 if sys.stdout.isatty() else 2,
        )
    except KeyboardInterrupt:
        model.save_weights(run_dir / "interrupted.weights.h5")
        print(
            f"\ninterrupted: weights saved to {run_dir / 'interrupted.weights.h5'}; "
            "continue from the last finished epoch with:\n"
            f"  python train.py --run-dir {run_dir} --resume [same options]"
        )
        print(run_dir)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def decoded_scenes(examples):
    """(file name, uint8 image, bool truth) of every example, decoded one at a time."""
    import tensorflow as tf

    for example in examples:
        image = tf.io.decode_png(example["image"], channels=3).numpy()
        truth = tf.io.decode_png(example["mask"], channels=1).numpy()[..., 0] > 0
        yield example["file_name"].numpy().decode("utf-8"), image, truth


def candidate_weights(model, run_dir, ema_weights, names):
    """{selection: weights} for the ``names`` this run offers: the moving average, the last step, the best epoch."""
    from training.checkpoints import BEST, LAST

    candidates = {} if ema_weights is None or "ema" not in names else {"ema": ema_weights}
    for name, path in (("last", LAST), ("best", BEST)):
        if name in names and (run_dir / path).exists():
            model.load_weights(run_dir / path)
            candidates[name] = model.get_weights()
    return candidates


def scorer_tiling(fixed):
    """predict.py's scorer at its defaults (a dense-head model of input size ``fixed`` predicts such windows)."""
    from inference import defaults

    return {
        "tile": fixed or defaults.TILE,
        "overlap": defaults.OVERLAP if not fixed or defaults.OVERLAP < fixed else fixed // 4,
        "batch_size": defaults.BATCH_SIZE,
        "fixed_size": fixed,
    }


def calibrate_model(model, train_examples, fixed):
    """Measure the best-IoU threshold of ``model`` (offset 0) on the first training images and store it in its
    last layer; returns the calibration (``inference.calibration.calibrate`` plus ``logit_offset``)."""
    from blocks.calibration import threshold_offset
    from inference.calibration import calibrate
    from inference.tiling import make_logit_fn
    from models.segmenter import set_logit_offset

    scenes = decoded_scenes(train_examples.take(CALIBRATION_IMAGES))
    found = calibrate(make_logit_fn(model, fixed_size=fixed), scenes, **scorer_tiling(fixed))
    found["logit_offset"] = threshold_offset(found["threshold"])
    set_logit_offset(model, found["logit_offset"])
    return found


def finish_run(config, run_dir, model, *, ema_weights, train_examples, heldout_examples, heldout, val_ds, shape, facts):
    """The end of a run: keep the selected weights, calibrate their threshold on training images (--calibrate),
    score the held-out scenes, save model, plots, results.json."""
    import tensorflow as tf

    from data.targets import parse_targets
    from inference import defaults
    from inference.evaluation import score_scenes
    from inference.tiling import make_logit_fn
    from models import create_model
    from models.decoders import needs_fixed_size
    from models.segmenter import set_logit_offset
    from training.checkpoints import atomic_save_model, atomic_write_json, read_history
    from training.plots import plot_learning_curves, plot_predictions
    from training.results import write_results

    wanted = [config.select] + ([c for c in SELECTIONS if c != config.select] if config.score_selections else [])
    candidates = candidate_weights(model, run_dir, ema_weights, wanted)
    fixed = config.image_size if needs_fixed_size(config.arch) else None  # e.g. the dense "cnn" head
    targets = parse_targets(config.targets)
    separate = len(targets) > 1  # scored as predict.py writes buildings: separated when the model can
    export = create_model(
        config.arch,
        config.encoder,
        num_classes=len(targets),
        input_shape=shape if fixed else (None, None, 3),
        bn_momentum=config.bn_momentum,
        standardize=config.standardize == "image",
    )
    tiling = scorer_tiling(fixed)
    reports, calibrations = {}, {}
    for name in wanted:
        if name not in candidates:
            continue
        export.set_weights(candidates[name])
        set_logit_offset(export, 0.0)
        if config.calibrate == "train":
            calibrations[name] = calibrate_model(export, train_examples, fixed)
        reports[name] = score_scenes(
            make_logit_fn(export, fixed_size=fixed, all_channels=separate),
            decoded_scenes(heldout_examples),
            separate=separate,
            **tiling,
        )
    if config.select not in reports:
        raise SystemExit(f"train.py: no {config.select} weights in {run_dir} to keep (--select {config.select}).")
    export.set_weights(candidates[config.select])
    set_logit_offset(export, calibrations.get(config.select, {}).get("logit_offset", 0.0))
    metadata = {
        "arch": config.arch,
        "encoder": config.encoder,
        "targets": list(targets),
        "fixed_size": fixed,
        "threshold": calibrations.get(config.select, {}).get("threshold", defaults.THRESHOLD),
        "encoder_weights": config.encoder_weights,
    }
    atomic_save_model(export, run_dir / "model.keras", metadata)
    report = reports[config.select]
    atomic_write_json({**report, "heldout": heldout, "tiling": tiling}, run_dir / "heldout_metrics.json")

    history = read_history(run_dir)
    plot_learning_curves(history, run_dir / "learning_curves.png")
    if val_ds is not None:
        images, masks, _ = next(iter(val_ds))
        probabilities = tf.sigmoid(export(images, training=False)).numpy()[..., :1]  # eager: no extra trace
        plot_predictions(images.numpy(), masks.numpy()[..., :1], probabilities, run_dir / "predictions.png")
    overall = report["overall"]
    initial_epoch = facts.pop("initial_epoch")
    results = {
        "arch": config.arch,
        "encoder": config.encoder,
        "image_size": config.image_size,
        **{k: v for k, v in facts.items() if k != "wall_seconds"},
        "selection": config.select,
        "heldout_kind": heldout["kind"],
        "heldout_groups": heldout["groups"],
        "heldout_scenes": len(report["scenes"]),
        "heldout_pixels": overall["pixels"],
        **{f"heldout_{k}": overall[k] for k in ("iou", "f1", "precision", "recall")},
        "heldout_all_building_iou": report["all_building_iou"],
        # buildings matched one-to-one at IoU >= 0.5 (the SpaceNet rule)
        **{f"heldout_{k}": overall[k] for k in ("building_precision", "building_recall", "building_f1")},
        "targets": list(targets),
        "separated": separate,
        # the same weights' buildings counted as the mask's connected patches (paired with the above)
        **{
            f"heldout_{k}": overall[k]
            for k in ("unseparated_building_precision", "unseparated_building_recall", "unseparated_building_f1")
            if k in overall
        },
        "predict_mp_per_sec": round(report["megapixels_per_second"], 4),
        # the decision threshold measured on training images (--calibrate train), stored in model.keras
        "calibration": calibrations.get(config.select),
        "selections": {
            name: {
                **{k: r["overall"][k] for k in ("iou", "f1", "precision", "recall")},
                "threshold": calibrations.get(name, {}).get("threshold", defaults.THRESHOLD),
            }
            for name, r in reports.items()
        },
        "epochs": len(history),
        "best_epoch": int(max(history, key=lambda r: r.get(MONITOR, -1))["epoch"]) if history else 0,
        "wall_seconds": round(facts["wall_seconds"] + sum(r["epoch_seconds"] for r in history[:initial_epoch]), 1),
        "seed": config.seed,
        "recipe": {
            "augment": config.augment,
            "standardize": config.standardize,
            "calibrate": config.calibrate,
            "encoder_weights": config.encoder_weights,
            "init": config.init,
            "freeze_encoder": config.freeze_encoder,
            "targets": config.targets,
            "target_weights": config.target_weights,
            "loss": config.loss,
            "lr": config.lr,
            "steps": config.epochs * config.steps_per_epoch,
            "batch_size": config.batch_size,
        },
    }
    return write_results(results, run_dir / "results.json")  # last: its presence marks a finished run


if __name__ == "__main__":
    main()
