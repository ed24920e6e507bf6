"""The run's examples: train, validation and the held-out places (whole groups), from a TFDS dataset.

Without --holdout / --folds the held-out set is the validation split. With them, every image of a
held-out group, from any split (test scenes included), is held out and scored at the end, and the
other images keep their train / validation split (``data.groups``).
"""


def split_examples(config, dataset, run_dir):
    """(train, validation, held-out, held-out description, example counts): whole groups are held out.

    Without --holdout / --folds the held-out set is the validation split. With them, every
    image of a held-out group, from any split (test scenes included), is held out, and the
    other images keep their train / validation split.
    """
    from data.groups import group_folds, group_names, split_by_groups
    from data.pipeline import DatasetBuildError, file_names, load_splits, only_files

    kwargs = {"data_dir": config.data_dir or None, "manual_dir": config.manual_dir or None}
    try:
        splits = load_splits(dataset, ("train", "validation", "test"), **kwargs)
    except DatasetBuildError as error:  # the named input is the last thing on the screen; the traceback goes to a log
        import traceback

        log = run_dir / "build_error.log"
        log.write_text(traceback.format_exc())
        raise SystemExit(f"train.py: {error}\n(full traceback in {log})") from None
    splits = with_bands(splits, config, dataset)
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
    train_splits = ("train",)
    if getattr(config, "train_on", "train") == "all":  # the held-out places are the score: nothing left to validate
        train_splits = ("train", "validation", "test")
        keep = {"train": [n for split in train_splits for n in keep[split]], "validation": [], "test": []}
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
    train = splits[train_splits[0]]
    for split in train_splits[1:]:
        train = train.concatenate(splits[split])
    return (
        counted(only_files(train, keep["train"]), counts[0]),
        counted(only_files(splits["validation"], keep["validation"]), counts[1]),
        scored,
        description,
        counts,
    )


def counted(examples, count):
    """``examples`` (filtered by file name, so of unknown length to tf.data) with their known ``count``: the
    input pipeline keeps a split that small decoded in memory (``data.pipeline.train_dataset``); a count that
    turns out wrong stops the run with tf.data's error instead of training on something else."""
    import tensorflow as tf

    return examples.apply(tf.data.experimental.assert_cardinality(count))


def with_bands(splits, config, dataset):
    """{split: examples} with the bands of ``config.bands`` (``data.pipeline.select_bands``), after checking that
    the dataset's images have them."""
    from data.bands import bands_of
    from data.pipeline import band_count, select_bands

    bands = bands_of(config)
    stored = max(band_count(examples) for examples in splits.values())
    if max(bands) > stored:
        raise SystemExit(
            f"train.py: --bands {','.join(map(str, bands))} asks for band {max(bands)}, but the images of {dataset} "
            f"have {stored} band(s). Give band numbers from 1 to {stored}, or build the dataset from scenes with "
            "those bands (the polygons config keeps every band of a GeoTIFF)."
        )
    return {name: select_bands(examples, bands) for name, examples in splits.items()}


def run_examples(run_dir):
    """(config.json as a dict, train examples, held-out examples) of a finished run, split exactly as it was."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    from data.groups import DEFAULT_GROUP_PATTERN

    saved = json.loads((Path(run_dir) / "config.json").read_text())
    import tensorflow_datasets as tfds

    import data.buildings  # noqa: F401  (registers the builder)

    if not tfds.builder(saved["dataset"], data_dir=saved.get("data_dir") or None).is_prepared():
        raise ValueError(
            f"the run's dataset {saved['dataset']} is not built in {saved.get('data_dir') or '~/tensorflow_datasets'} "
            "any more; this command only reads, so it does not build it. Rebuild it with python -m data.build "
            "(the same --data-dir and --manual-dir as the run), then try again."
        )
    defaults = {
        "holdout": "",
        "folds": 0,
        "fold": 0,
        "data_dir": "",
        "manual_dir": "",
        "group_pattern": DEFAULT_GROUP_PATTERN,
        "train_on": "train",
    }
    train_examples, _, heldout_examples, _, _ = split_examples(
        SimpleNamespace(**{**defaults, **saved}), saved["dataset"], Path(run_dir)
    )
    return saved, train_examples, heldout_examples
