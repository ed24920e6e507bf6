"""Train a building segmentation model.

    python train.py                                   # U-Net / EfficientNet-B0 on the synthetic set
    python train.py --arch fcn8 --encoder effnet-b0   # choose the model
    python train.py --dataset buildings/kaggle --manual-dir ~/Downloads/buildings --epochs 30
    python train.py --run-dir runs/my_run --resume    # continue a killed run

Without a Kaggle download the default dataset ("auto") is the procedural synthetic set, so
the command runs on a fresh machine. Every run writes one directory (see --run-dir): the
resolved config, history.csv, TensorBoard logs, best and last checkpoints, model.keras
(best weights), results.json and plots. The last line printed is that directory.
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

ARCHS = ("cnn", "deeplabv3plus", "fcn16", "fcn32", "fcn8", "fpn", "linknet", "unet")
DATASETS = ("auto", "buildings/synthetic", "buildings/kaggle")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "plateau", "constant")
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
    bn_momentum: float = 0.9
    precision: str = "float32"
    strategy: str = "default"
    tracker: str = "local,tensorboard"
    run_dir: str = ""  # empty: runs/<time>_<arch>_<encoder>
    resume: bool = False
    seed: int = 0
    crops_per_image: int = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = {"arch": ARCHS, "dataset": DATASETS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
               "precision": PRECISIONS, "strategy": STRATEGIES}
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool" or isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default, choices=choices.get(field.name))
    return Config(**vars(parser.parse_args(argv)))


def check_config(config):
    """Reject unknown or contradictory values before any work."""
    from models import list_encoders
    from training.losses import parse_loss
    from training.trackers import TRACKERS

    problems = []
    if config.encoder not in list_encoders():
        problems.append(f"--encoder {config.encoder!r}: valid encoders are {', '.join(list_encoders())}")
    if config.image_size <= 0 or config.image_size % 32:
        problems.append(f"--image-size {config.image_size}: use a positive multiple of 32 (e.g. 128, 256)")
    for name in ("batch_size", "epochs", "steps_per_epoch"):
        if getattr(config, name) < 1:
            problems.append(f"--{name.replace('_', '-')} {getattr(config, name)}: must be at least 1")
    if config.lr <= 0:
        problems.append(f"--lr {config.lr}: must be positive")
    try:
        parse_loss(config.loss)
    except ValueError as error:
        problems.append(f"--loss: {error}")
    unknown = [t for t in config.tracker.split(",") if t not in TRACKERS]
    if unknown:
        problems.append(f"--tracker {config.tracker!r}: valid trackers are {', '.join(TRACKERS)} (comma-separated)")
    if config.encoder_weights not in ("none", "imagenet") and not config.encoder_weights.endswith(".weights.h5"):
        problems.append(f"--encoder-weights {config.encoder_weights!r}: use none, imagenet or a .weights.h5 file")
    if config.strategy == "multiworker" and "TF_CONFIG" not in os.environ:
        problems.append("--strategy multiworker needs the TF_CONFIG environment variable (see the README)")
    if config.warmup_steps >= config.epochs * config.steps_per_epoch and config.schedule == "cosine":
        problems.append(f"--warmup-steps {config.warmup_steps}: must be smaller than epochs x steps-per-epoch")
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


def make_run_dir(config):
    if config.run_dir:
        run_dir = Path(config.run_dir)
    else:
        run_dir = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}_{config.arch}_{config.encoder}"
    if config.resume:
        if not run_dir.exists():
            raise SystemExit(f"train.py: --resume: run directory {run_dir} does not exist. Pass the --run-dir of the run to continue.")
    elif (run_dir / "state.json").exists():
        raise SystemExit(f"train.py: {run_dir} already holds a run. Add --resume to continue it, or choose another --run-dir.")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def make_optimizer(config):
    import keras

    total = config.epochs * config.steps_per_epoch
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(total - config.warmup_steps, 1), warmup_target=config.lr, warmup_steps=config.warmup_steps
        )
    else:
        lr = config.lr
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)


def main(argv=None):
    config = parse_args(argv)
    check_config(config)
    dataset = resolve_dataset(config)
    print(f"dataset: {dataset}" + ("  (no Kaggle download found: training on the procedural synthetic set)" if dataset.endswith("synthetic") else ""))
    run_dir = make_run_dir(config)
    started = time.time()

    import keras
    import tensorflow as tf

    from data.pipeline import eval_dataset, load_split, train_dataset
    from models import count_macs, create_model
    from models.segmenter import set_bn_momentum
    from training.checkpoints import BEST, RunCheckpoint, read_history, resume_state
    from training.distribute import make_strategy, prepare_multiworker_model
    from training.losses import SegmentationLoss
    from training.metrics import ThroughputMeter, segmentation_metrics
    from training.plots import plot_learning_curves, plot_predictions
    from training.trackers import create_trackers

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.precision)
    strategy = make_strategy(config.strategy)
    is_chief = True
    if config.strategy == "multiworker":
        task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
        is_chief = task.get("type", "worker") in ("chief", "worker") and task.get("index", 0) == 0
        if not is_chief:  # other workers write their files aside, never over the chief's
            run_dir = run_dir / f"worker{task.get('index')}"
            run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {**dataclasses.asdict(config), "dataset": dataset, "run_dir": str(run_dir)}
    (run_dir / "config.json").write_text(json.dumps(resolved, indent=2))
    print(f"run directory: {run_dir}")

    # data
    data_dir, manual_dir = config.data_dir or None, config.manual_dir or None
    train_examples = load_split(dataset, "train", data_dir=data_dir, manual_dir=manual_dir)
    val_examples = load_split(dataset, "validation", data_dir=data_dir, manual_dir=manual_dir)
    print(f"examples: {int(train_examples.cardinality())} train, {int(val_examples.cardinality())} validation")
    train_ds = train_dataset(train_examples, size=config.image_size, batch_size=config.batch_size, seed=config.seed,
                             crops_per_image=config.crops_per_image)
    val_ds = eval_dataset(val_examples, size=config.image_size, batch_size=config.batch_size)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)

    # model
    shape = (config.image_size, config.image_size, 3)
    weights = None if config.encoder_weights == "none" else config.encoder_weights
    with strategy.scope():
        model = create_model(config.arch, config.encoder, input_shape=shape, encoder_weights=weights, bn_momentum=config.bn_momentum)
        model.compile(optimizer=make_optimizer(config), loss=SegmentationLoss(config.loss), weighted_metrics=segmentation_metrics())
        if config.strategy != "default":  # one set of batch statistics across replicas and workers
            set_bn_momentum(model, config.bn_momentum, synchronized=True)
        if config.strategy == "multiworker":
            prepare_multiworker_model(model, next(iter(train_ds)))
    params, gmacs = model.count_params(), count_macs(model) / 1e9
    print(f"model: {config.arch} / {config.encoder}: {params:,} params, {gmacs:.2f} GMACs at {config.image_size}x{config.image_size}")

    initial_epoch, best_value, history = 0, None, []
    if config.resume:
        initial_epoch, best_value, history = resume_state(run_dir, model)
        print(f"resuming after epoch {initial_epoch} of {config.epochs} (best val_iou {best_value})")
    trackers = create_trackers(config.tracker.split(","), run_dir) if is_chief else []
    for tracker in trackers:
        tracker.start(resolved)
    throughput = ThroughputMeter(config.batch_size)
    callbacks = [RunCheckpoint(run_dir, best_value=best_value, history=history, trackers=trackers), throughput]
    if "tensorboard" in config.tracker.split(","):
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), update_freq="epoch"))
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        model.fit(train_ds, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch, validation_data=val_ds,
                  initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                  verbose=1 if sys.stdout.isatty() else 2)
    except KeyboardInterrupt:
        model.save_weights(run_dir / "interrupted.weights.h5")
        print(f"\ninterrupted: weights saved to {run_dir / 'interrupted.weights.h5'}; "
              f"continue from the last finished epoch with:\n  python train.py --run-dir {run_dir} --resume [same options]")
        print(run_dir)
        raise SystemExit(130)

    # best weights -> final evaluation (inference mode) -> model.keras without training state
    if (run_dir / BEST).exists():
        model.load_weights(run_dir / BEST)
    # the evaluation reuses the test step traced during fit(); its pace is the predict throughput
    val_tiles = sum(int(batch[0].shape[0]) for batch in val_ds)
    evaluate_start = time.perf_counter()
    scores = model.evaluate(val_ds, verbose=0, return_dict=True)
    predict_images_per_sec = val_tiles / (time.perf_counter() - evaluate_start)
    export = create_model(config.arch, config.encoder, input_shape=shape if config.arch == "cnn" else (None, None, 3),
                          bn_momentum=config.bn_momentum)
    export.set_weights(model.get_weights())
    export.save(run_dir / "model.keras")
    history = read_history(run_dir)
    plot_learning_curves(history, run_dir / "learning_curves.png")
    images, masks, _ = next(iter(val_ds))
    probabilities = tf.sigmoid(model(images, training=False)).numpy()  # eager: no extra trace
    plot_predictions(images.numpy(), masks.numpy(), probabilities, run_dir / "predictions.png")
    results = {
        "format": 1,
        "arch": config.arch,
        "encoder": config.encoder,
        "dataset": dataset,
        "image_size": config.image_size,
        "params": int(params),
        "gmacs": round(gmacs, 4),
        "val_iou": float(scores["iou"]),
        "val_f1": float(scores["f1"]),
        "val_precision": float(scores["precision"]),
        "val_recall": float(scores["recall"]),
        "val_loss": float(scores["loss"]),
        "train_images_per_sec": round(throughput.images_per_second(), 3),
        "predict_images_per_sec": round(predict_images_per_sec, 3),
        "epochs": len(history),
        "best_epoch": int(max(history, key=lambda r: r.get("val_iou", -1))["epoch"]) if history else 0,
        "wall_seconds": round(time.time() - started + sum(r["epoch_seconds"] for r in history[:initial_epoch]), 1),
        "seed": config.seed,
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    for tracker in trackers:
        tracker.finish(results, artifacts=[run_dir / "results.json", run_dir / "learning_curves.png"])
    print(f"validation (inference mode, best epoch {results['best_epoch']}): IoU {results['val_iou']:.3f}  F1 {results['val_f1']:.3f}  "
          f"precision {results['val_precision']:.3f}  recall {results['val_recall']:.3f}")
    print(run_dir)
    return run_dir


if __name__ == "__main__":
    main()
