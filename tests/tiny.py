"""Options shared by the tests that train: the smallest runs that still take the whole path."""

# fcn32 / resnet18 traces its train step about 3x faster than fcn8 / mobilenetv2 on this CPU
TINY_TRAIN = ["--arch", "fcn32", "--encoder", "resnet18", "--image-size", "64", "--batch-size", "4"]
TINY_TRAIN += ["--steps-per-epoch", "3", "--warmup-steps", "1", "--tracker", "local"]


def tiny_grid(synthetic_dir):
    """compare.py --grid options for a tiny synthetic budget (train.py options included)."""
    return ["--no-predictions", "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--image-size", "64",
            "--batch-size", "2", "--warmup-steps", "1", "--tracker", "local"]  # fmt: skip
