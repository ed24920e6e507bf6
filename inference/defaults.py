"""The predictor's defaults: predict.py's options and every score train.py and compare.py print.

A light module (no TensorFlow), so command lines can read it before loading a model.
"""

# 1024-pixel windows, one per call: 1.46x the pixels per second of the earlier 512 x 4 on this
# 2-core EPYC (fewer pixels in overlaps; benchmarks/bench_predict.py), the same memory per call
TILE = 1024  # window size in pixels, a multiple of the output stride
OVERLAP = 64  # pixels shared by neighbouring windows
BATCH_SIZE = 1  # windows per model call
THRESHOLD = 0.5  # probability at which a pixel is a building
MIN_AREA = 16  # buildings (and footprints) smaller than this many pixels are specks
# --separate shape: a part of a patch becomes a building of its own when its relief (distance to the mask's edge
# times the probability) rises this many pixels above the neck to its neighbour; chosen on training images
# (python -m experiments.shape_split, docs/experiments.md)
SPLIT_DEPTH = 12.0
SMALL_SCENE_PIXELS = 25_000_000  # up to this size a scene also gets PNG outputs (whole-image formats)
