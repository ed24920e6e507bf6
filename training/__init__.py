"""Training pieces used by train.py: losses, metrics, checkpoints, trackers, plots."""
