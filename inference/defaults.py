"""The predictor's defaults: predict.py's options and every score train.py and compare.py print.

A light module (no TensorFlow), so command lines can read it before loading a model.
"""

TILE = 512  # window size in pixels, a multiple of the output stride
OVERLAP = 64  # pixels shared by neighbouring windows
BATCH_SIZE = 4  # windows per model call
THRESHOLD = 0.5  # probability at which a pixel is a building
MIN_AREA = 16  # buildings (and footprints) smaller than this many pixels are specks
SMALL_SCENE_PIXELS = 25_000_000  # up to this size a scene also gets PNG outputs (whole-image formats)
