"""The end of a run: keep the selected weights, calibrate their threshold, score the held-out places, write
model.keras (with its metadata), plots and results.json (last: its presence marks a finished run).

Scoring and calibration are predict.py's (``inference.heldout``); they are handed in by train.py as
``calibrate`` and ``score`` so that training/ does not import inference/.
"""

from training.checkpoints import MONITOR

SELECTIONS = ("ema", "last", "best")  # which weights a run keeps: see candidate_weights


def candidate_weights(model, run_dir, ema_weights, names):
    """{selection: weights} for the ``names`` this run offers: the moving average, the last step, the best epoch."""
    from training.checkpoints import BEST, LAST

    candidates = {} if ema_weights is None or "ema" not in names else {"ema": ema_weights}
    for name, path in (("last", LAST), ("best", BEST)):
        if name in names and (run_dir / path).exists():
            model.load_weights(run_dir / path)
            candidates[name] = model.get_weights()
    return candidates


def offsets(calibration, separation):
    """(building, separation) logit offsets of a run's kept model: its calibrated threshold, and the separation
    channels' threshold chosen on the same training images (0 when there is none)."""
    from blocks.calibration import threshold_offset

    building = (calibration or {}).get("logit_offset", 0.0)
    return building, threshold_offset(separation["threshold"]) if separation else 0.0


def finish_run(
    config, run_dir, model, *, ema_weights, train_examples, heldout_examples, heldout, val_ds, shape, facts, scorer
):
    """The end of a run: keep the selected weights, calibrate their threshold on training images (--calibrate),
    score the held-out scenes, save model, plots, results.json.

    ``scorer``: ``inference.heldout`` (``tiling``, ``calibrate_model``, ``score_model``, ``THRESHOLD``).
    """
    import tensorflow as tf

    from data.bands import bands_of
    from data.targets import parse_targets
    from models import create_model
    from models.decoders import needs_fixed_size
    from models.segmenter import set_logit_offset
    from training.checkpoints import atomic_save_model, atomic_write_json, read_history
    from training.plots import plot_learning_curves, plot_predictions
    from training.recipes import model_options
    from training.results import write_results
    from training.setup import encoder_weights, marks_nodata

    wanted = [config.select] + ([c for c in SELECTIONS if c != config.select] if config.score_selections else [])
    candidates = candidate_weights(model, run_dir, ema_weights, wanted)
    fixed = config.image_size if needs_fixed_size(config.arch) else None  # e.g. the dense "cnn" head
    targets = parse_targets(config.targets)
    has_channels = len(targets) > 1  # separation channels: scored both ways, kept if it helps on training images
    # no channels: the mask's patches split by shape (--split shape, predict.py --separate shape), scored both ways
    by_shape = not has_channels and config.split == "shape"
    depth = scorer.SPLIT_DEPTH if by_shape else None
    export = create_model(
        config.arch,
        config.encoder,
        num_classes=len(targets),
        input_shape=shape if fixed else (None, None, len(bands_of(config))),
        **model_options(config),
    )
    tiling = scorer.tiling(fixed)
    polygons = marks_nodata(facts["dataset"])  # labels with no-data and one id per building: scored against those
    reports, calibrations, separations = {}, {}, {}
    for name in wanted:
        if name not in candidates:
            continue
        export.set_weights(candidates[name])
        set_logit_offset(export, 0.0)
        if config.calibrate == "train":
            # measured without test-time augmentation (8x cheaper) and applied to the averaged logits as well:
            # the threshold experiments.posthoc's "-cal-tta" variants measured
            calibrations[name] = scorer.calibrate_model(export, train_examples, fixed, polygons=polygons)
        if has_channels:
            separations[name] = scorer.choose_separation(export, train_examples, fixed, polygons=polygons,
                                                         tta=config.tta)  # fmt: skip
            set_logit_offset(export, *offsets(calibrations.get(name), separations[name]))
        reports[name] = scorer.score_model(export, heldout_examples, fixed, separate=has_channels or by_shape,
                                           depth=depth, polygons=polygons, tta=config.tta)  # fmt: skip
    separation = separations.get(config.select)
    separate = bool(separation and separation["separate"]) or by_shape
    if config.select not in reports:
        raise SystemExit(f"train.py: no {config.select} weights in {run_dir} to keep (--select {config.select}).")
    export.set_weights(candidates[config.select])
    set_logit_offset(export, *offsets(calibrations.get(config.select), separation))
    metadata = {
        "arch": config.arch,
        "encoder": config.encoder,
        "targets": list(targets),
        "fixed_size": fixed,
        "bands": list(bands_of(config)),
        "threshold": calibrations.get(config.select, {}).get("threshold", scorer.THRESHOLD),
        "encoder_weights": encoder_weights(config) or "none",
        "separate": separate and has_channels,  # predict.py --separate auto follows these two
        "split": "shape" if by_shape else "none",
        **({"split_depth": depth} if by_shape else {}),
        "separation_threshold": (separation or {}).get("threshold", scorer.THRESHOLD),  # in the logits already
        "tta": config.tta,  # its held-out scores were measured so (predict.py follows it unless told)
    }
    atomic_save_model(export, run_dir / "model.keras", metadata)
    report = reports[config.select]
    atomic_write_json(
        {**report, "heldout": heldout, "tiling": tiling, "tta": config.tta}, run_dir / "heldout_metrics.json"
    )

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
        # buildings matched one-to-one at IoU >= 0.5 (the SpaceNet rule), counted as predict.py writes them
        **{
            f"heldout_building_{k}": overall[f"{'' if separate or not has_channels else 'unseparated_'}building_{k}"]
            for k in ("precision", "recall", "f1")
        },
        "targets": list(targets),
        "separated": separate,
        "split": "shape" if by_shape else "none",
        # a separating model's held-out buildings both ways, same weights (paired), and the choice on training images
        **(
            {
                "heldout_separated_building_f1": overall["building_f1"],
                "heldout_unseparated_building_f1": overall["unseparated_building_f1"],
                **({"separation": separation} if has_channels else {}),
            }
            if has_channels or by_shape
            else {}
        ),
        "predict_mp_per_sec": round(report["megapixels_per_second"], 4),
        # the decision threshold measured on training images (--calibrate train), stored in model.keras
        "calibration": calibrations.get(config.select),
        "selections": {
            name: {
                **{k: r["overall"][k] for k in ("iou", "f1", "precision", "recall")},
                "threshold": calibrations.get(name, {}).get("threshold", scorer.THRESHOLD),
            }
            for name, r in reports.items()
        },
        "epochs": len(history),
        # None when no epoch was validated (the validation split was empty): never a best that was not measured
        "best_epoch": (
            int(max(validated, key=lambda r: r[MONITOR])["epoch"])
            if (validated := [r for r in history if isinstance(r.get(MONITOR), float) and r[MONITOR] == r[MONITOR]])
            else None
        ),
        "wall_seconds": round(facts["wall_seconds"] + sum(r["epoch_seconds"] for r in history[:initial_epoch]), 1),
        "seed": config.seed,
        "recipe": {
            "start_recipe": config.start_recipe,
            "train_on": config.train_on,
            "crops_per_image": config.crops_per_image,
            "draw": config.draw,
            "deterministic": config.deterministic,
            "optimizer": config.optimizer,
            "schedule": config.schedule,
            "weight_decay": config.weight_decay,
            "augment": config.augment,
            "standardize": config.standardize,
            "calibrate": config.calibrate,
            "tta": config.tta,
            "encoder_weights": encoder_weights(config) or "none",
            "init": config.init,
            "freeze_encoder": config.freeze_encoder,
            "targets": config.targets,
            "target_weights": config.target_weights,
            "gap_weight": config.gap_weight,
            "fine_skip": config.fine_skip,
            "zoom": config.zoom,
            "loss": config.loss,
            "lr": config.lr,
            "steps": config.epochs * config.steps_per_epoch,
            "batch_size": config.batch_size,
        },
    }
    return write_results(results, run_dir / "results.json")  # last: its presence marks a finished run


def heldout_line(config, results, heldout, threshold):
    """The line train.py ends with: where the final scores come from and what they are."""
    groups = ": " + ", ".join(heldout["groups"]) if heldout["groups"] else ""
    return (
        f"held out ({heldout['kind']}{groups}; {config.select} weights, threshold {threshold:.2f}, "
        f"predict.py's scorer): IoU {results['heldout_iou']:.3f}  F1 {results['heldout_f1']:.3f}  "
        f"precision {results['heldout_precision']:.3f}  recall {results['heldout_recall']:.3f}  "
        f"(all-building IoU {results['heldout_all_building_iou']:.3f})"
    )
