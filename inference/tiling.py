"""Sliding-window prediction over scenes of any size, blended without seams.

A scene is cut into overlapping tiles; each tile's logits are weighted by a smooth window
(a cosine ramp over the overlap, flat inside), summed, and divided by the summed weights.
Dividing by the summed weights makes every pixel a weighted mean of the tiles that see
it, sliding from one tile to the next across their overlap; where two tiles overlap by
exactly the set overlap their ramps also add up to one (tiles spread evenly may overlap
more, and then the division alone keeps the mean). A pixel seen by one tile gets its logit
unchanged. Rows of tiles are processed top to bottom and finished rows are handed out as
strips, so the float buffer never holds more than one row of tiles (memory does not grow
with the scene's height).
"""

import functools
import math

import numpy as np
import tensorflow as tf

from inference import defaults
from models.registry import OUTPUT_STRIDE

STRIP_ROWS = 256  # finished rows are handed out at most this many at a time


def tile_starts(length, tile, stride):
    """Start offsets of the fewest ``tile``-pixel windows, at most ``stride`` apart, covering ``length``.

    The windows are spread evenly from 0 to ``length - tile``, so none leaves the scene and
    every overlap is at least ``tile - stride``.
    """
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def axis_layout(length, tile, overlap):
    """(window, starts) along one axis of ``length`` pixels.

    Uses the fewest windows of at most ``tile`` pixels that overlap by at least ``overlap``,
    then shrinks the window to the smallest multiple of the output stride that still covers
    the axis with them: a 1479-pixel axis takes 4 windows of 448 rather than 4 of 512.
    """
    if length <= tile:
        return round_up(length), [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    window = min(tile, round_up(math.ceil((length - overlap) / count) + overlap))
    return window, tile_starts(length, window, window - overlap)


def blend_ramp(length, overlap):
    """1-D window: a sin^2 ramp over ``overlap`` pixels at both ends, 1 in between.

    sin^2 on one tile's falling edge plus cos^2 on the next tile's rising edge equals one,
    so tiles placed ``length - overlap`` apart blend as a partition of unity. Weights stay
    strictly positive, so scene borders covered by a single tile are well defined.
    """
    ramp = np.ones(length, dtype="float64")
    margin = min(overlap, length // 2)
    if margin > 0:
        t = (np.arange(margin) + 0.5) / margin
        rise = np.sin(0.5 * math.pi * t) ** 2
        ramp[:margin] = rise
        ramp[length - margin :] = rise[::-1]
    return ramp.astype("float32")


def round_up(value, multiple=OUTPUT_STRIDE):
    return -(-value // multiple) * multiple


def rot90(x, k):
    """``tf.image.rot90`` of an (N, H, W, C) batch (counter-clockwise), keeping static shapes for tracing."""
    k %= 4
    if k == 1:
        return tf.reverse(tf.transpose(x, [0, 2, 1, 3]), [1])
    if k == 2:
        return tf.reverse(x, [1, 2])
    if k == 3:
        return tf.transpose(tf.reverse(x, [1]), [0, 2, 1, 3])
    return x


def dihedral(x, k, flip):
    """Rotate an (N, H, W, C) batch by k*90 degrees after an optional left-right flip."""
    if flip:
        x = tf.reverse(x, axis=[2])
    return rot90(x, k)


def undo_dihedral(y, k, flip):
    y = rot90(y, 4 - k)
    return tf.reverse(y, axis=[2]) if flip else y


TTA_TRANSFORMS = tuple((k, flip) for flip in (False, True) for k in range(4))


def freeze(function):
    """The concrete ``function`` with its variables turned into constants, or itself if that fails.

    With the weights constant, TensorFlow's graph optimiser (grappler) folds every
    inference-mode BatchNormalization into the convolution before it and fuses the
    activations: 1.4x the frames per second of U-Net/B0 on a 2-core EPYC
    (benchmarks/bench_predict.py), logits equal within 1e-5.
    """
    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        frozen = convert_variables_to_constants_v2(function)
    except Exception as error:  # a private TensorFlow API: if it moves, predict at the unfrozen speed, and say so
        import warnings

        warnings.warn(
            f"Could not freeze the prediction graph ({type(error).__name__}: {error}); predicting with the unfrozen "
            "graph, about 1.2-1.4x slower (BatchNorm is not folded into the convolutions).",
            RuntimeWarning,
            stacklevel=2,
        )
        return function
    return lambda images: frozen(tf.convert_to_tensor(images, tf.float32))[0]


PRECISIONS = ("float32", "bfloat16")
BF16_REWRITE = "auto_mixed_precision_onednn_bfloat16"  # grappler's oneDNN bfloat16 pass


def in_bfloat16(function):
    """``function`` run with TensorFlow's oneDNN auto-mixed-precision graph rewrite, for its calls only.

    The rewrite casts convolutions, matrix products and the element-wise ops between them to
    bfloat16 (BatchNorm statistics, reductions and the final logits stay float32). It is a
    process-wide grappler option that TensorFlow reads each time a function runs, so it is set
    for the call and put back afterwards: float32 functions in the same process stay exact.
    Worth it on CPUs with AMX (``amx_bf16``); elsewhere oneDNN may emulate bfloat16 and gain nothing.
    """

    def call(images):
        before = bool(tf.config.optimizer.get_experimental_options().get(BF16_REWRITE, False))
        tf.config.optimizer.set_experimental_options({BF16_REWRITE: True})
        try:
            return function(images)
        finally:
            tf.config.optimizer.set_experimental_options({BF16_REWRITE: before})

    return call


@functools.cache
def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (Linux; empty where it cannot tell)."""
    try:
        with open("/proc/cpuinfo") as info:
            return frozenset(next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), ()))
    except OSError:
        return frozenset()


def speed_flags():
    """The CPU flags that bear on speed figures (vector widths, bfloat16, AMX), space-separated, for a benchmark's
    table."""
    return " ".join(sorted(cpu_flags() & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"}))


def cpu_has_amx():
    """True when the CPU has AMX bfloat16 tiles."""
    return "amx_bf16" in cpu_flags()


def resolve_precision(precision):
    """predict.py's --precision: "auto" is bfloat16 on CPUs with AMX (1.3-1.8x faster there, masks within
    about 0.1% of float32's on the sample; benchmarks/bench_predict.py) and float32 elsewhere."""
    if precision == "auto":
        return "bfloat16" if cpu_has_amx() else "float32"
    return precision


def input_bands(model):
    """How many bands ``model`` takes (its input's last axis); 3 for a model not built on an input yet."""
    try:
        return int(model.input.shape[-1])
    except (AttributeError, TypeError, ValueError):
        return 3


def make_logit_fn(model, *, tta=False, fixed_size=None, frozen=True, precision="float32", all_channels=False):
    """A traced function: float32 (N, H, W, 3) raw RGB -> (N, H, W) building logits.

    ``all_channels``: return every output channel, (N, H, W, C) (building first, then the
    separation targets of a multi-target model).

    With ``tta`` it averages the logits over the 8 flips / 90-degree rotations. It is traced
    (and frozen) once, with height, width and batch size left open, so scenes of many sizes
    cost one trace: for U-Net / EfficientNet-B0 a trace and freeze took 4 s, a new size on the
    open graph 0.3 s, at the same speed per window and with equal logits. Models that cannot be
    traced with unknown height and width (bilinear UpSampling2D: FPN, DeepLabV3+) and models
    with a ``fixed_size`` are traced once per window shape instead (a scene uses one or two).
    The traced functions are in ``call.traced``, keyed by (height, width), (None, None) for the
    open one. ``frozen``: run it as a constant graph (``freeze``); weights changed after the first
    call are then not seen, so make a new function after training. ``precision``
    "bfloat16" runs it under ``in_bfloat16``: 1.3-1.8x faster on CPUs with AMX, masks within
    0.5% of the float32 pixels (benchmarks/bench_predict.py), probabilities no longer within 1e-4.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}. Received: precision={precision!r}")
    transforms = TTA_TRANSFORMS if tta else ((0, False),)

    def logits(images):
        total = 0.0
        for k, flip in transforms:
            out = model(dihedral(images, k, flip), training=False)
            total += undo_dihedral(tf.cast(out, tf.float32), k, flip)
        return (total if all_channels else total[..., 0]) / len(transforms)

    def trace(shape):
        bands = input_bands(model)
        function = tf.function(logits, input_signature=[tf.TensorSpec([None, *shape, bands], tf.float32)])
        return freeze(function.get_concrete_function()) if frozen else function

    traced = {}
    open_shape = (None, None)
    if not fixed_size:
        try:
            traced[open_shape] = trace(open_shape)
        except TypeError:  # e.g. OperatorNotAllowedInGraphError: the layer needs static sizes
            pass

    def call(images):
        if open_shape in traced:
            return traced[open_shape](images)
        shape = (fixed_size, fixed_size) if fixed_size else tuple(int(d) for d in images.shape[1:3])
        if shape not in traced:
            traced[shape] = trace(shape)
        return traced[shape](images)

    call.traced = traced
    return in_bfloat16(call) if precision == "bfloat16" else call


def check_tiling(tile, overlap, *, fixed_size=None):
    """Validate --tile / --overlap for a model; returns the tile size to use."""
    if fixed_size is not None:
        if tile != fixed_size:
            raise ValueError(
                f"This model was saved with a fixed input size of {fixed_size}x{fixed_size} (the dense 'cnn' head "
                f"needs one; other archs get one when built with input_shape=({fixed_size}, {fixed_size}, 3)); "
                "use --tile "
                f"{fixed_size}, or rebuild it with create_model(..., input_shape=(None, None, 3)) and copy its weights "
                f"for any size. Received: tile={tile}"
            )
    if tile < OUTPUT_STRIDE or tile % OUTPUT_STRIDE:
        raise ValueError(
            f"--tile must be a multiple of the model's output stride {OUTPUT_STRIDE} and at least "
            f"{OUTPUT_STRIDE} (e.g. 256, 512). Received: tile={tile}"
        )
    if not 0 <= overlap < tile:
        raise ValueError(f"--overlap must lie in [0, tile) = [0, {tile}). Received: overlap={overlap}")
    return tile


def predict_strips(
    logit_fn,
    scene,
    *,
    tile=defaults.TILE,
    overlap=defaults.OVERLAP,
    batch_size=defaults.BATCH_SIZE,
    fixed_size=None,
    progress=None,
):
    """Yield ``(y0, logits)`` strips that cover a scene top to bottom.

    ``scene`` is an (H, W, 3) uint8 array or a window reader (``common.rasters``: ``height``,
    ``width`` and ``read(y0, y1, x0, x1)``); each window is read when its batch is due. ``progress`` (e.g.
    a tqdm bar) gets its ``total`` set to the number of windows and an ``update(n)`` after
    every model call. ``logits`` is float32 (rows, W), or (rows, W, C) when ``logit_fn`` returns
    channels, a view into the blending buffer: use or copy it before asking for the next strip
    (it may be changed in place meanwhile).
    Windows follow ``axis_layout`` on each axis; a scene smaller than the tile along an axis
    is padded (mirror) to the next multiple of the output stride there, or to ``fixed_size``.
    """
    check_tiling(tile, overlap, fixed_size=fixed_size)
    if isinstance(scene, np.ndarray):
        height, width = scene.shape[:2]
        read = lambda y0, y1, x0, x1: scene[y0:y1, x0:x1]  # noqa: E731
    else:
        height, width = scene.height, scene.width
        read = scene.read
    if fixed_size:
        th = tw = fixed_size
        ys = tile_starts(max(height, th), th, th - overlap)
        xs = tile_starts(max(width, tw), tw, tw - overlap)
    else:
        (th, ys), (tw, xs) = axis_layout(height, tile, overlap), axis_layout(width, tile, overlap)
    pw = max(tw, width)
    ramp_y, ramp_x = blend_ramp(th, overlap), blend_ramp(tw, overlap)
    window = np.outer(ramp_y, ramp_x)
    # the windows form a grid, so their summed weights factor into one sum per axis
    weight_y, weight_x = axis_weights(ys, ramp_y, max(th, height)), axis_weights(xs, ramp_x, pw)[:width]
    if progress is not None:
        progress.total = len(ys) * len(xs)

    acc = None  # (th, pw[, C]): rows [ys[i], ys[i] + th) of the scene, made at the first output

    def pixels(y, x):
        """One window's pixels, read on its own; an axis shorter than the window is mirror-padded
        (the window then spans all of it, so this equals padding the whole scene)."""
        piece = read(y, min(y + th, height), x, min(x + tw, width))
        if piece.shape[:2] != (th, tw):
            piece = np.pad(piece, ((0, th - len(piece)), (0, tw - piece.shape[1]), (0, 0)), mode="symmetric")
        return piece

    for i, y in enumerate(ys):
        for chunk in range(0, len(xs), batch_size):
            columns = xs[chunk : chunk + batch_size]
            batch = np.stack([pixels(y, x) for x in columns]).astype("float32")
            out = logit_fn(tf.constant(batch)).numpy()
            if acc is None:
                acc = np.zeros((th, pw, *out.shape[3:]), dtype="float32")
                window = window.reshape(window.shape + (1,) * (out.ndim - 3))
            for x, logits in zip(columns, out):
                acc[:, x : x + tw] += logits * window
            if progress is not None:
                progress.update(len(columns))
        last = i + 1 == len(ys)
        done = th if last else ys[i + 1] - y  # rows no later tile reaches
        rows = min(done, height - y)
        if rows > 0:  # finished rows, divided in place: the buffer's rows above `done` are not used again
            strip = acc[:rows, :width]
            extra = (1,) * (acc.ndim - 2)  # a channel axis, when there is one
            strip /= weight_y[y : y + rows].reshape(-1, 1, *extra)
            strip /= weight_x.reshape(-1, *extra)
            for start in range(0, rows, STRIP_ROWS):  # handed out in slices: consumers' copies stay small
                yield y + start, strip[start : start + STRIP_ROWS]
        if not last:  # shift the buffer up to the next row of tiles, in place
            acc[: th - done], acc[th - done :] = acc[done:], 0.0


def axis_weights(starts, ramp, length):
    """The summed blend weights along one axis of ``length`` pixels covered by ramps at ``starts``."""
    total = np.zeros(length, dtype="float32")
    for start in starts:
        total[start : start + len(ramp)] += ramp
    return total


def sigmoid(logits):
    """Probabilities of a float32 logit array (the one conversion every output and score uses)."""
    from scipy.special import expit

    return expit(logits)


def predict_probabilities(logit_fn, image, **tiling):
    """Whole-scene float32 (H, W) building probabilities of an in-memory image, from ``predict_strips``
    ((H, W, C) when ``logit_fn`` returns every channel)."""
    probabilities = None
    for y, logits in predict_strips(logit_fn, image, **tiling):
        if probabilities is None:
            probabilities = np.empty(image.shape[:2] + logits.shape[2:], dtype="float32")
        probabilities[y : y + len(logits)] = sigmoid(logits)
    return probabilities


def predict_whole(logit_fn, image):
    """Reference: the whole scene in one call (mirror-padded to the output stride)."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((0, round_up(height) - height), (0, round_up(width) - width), (0, 0)), mode="symmetric")
    logits = logit_fn(tf.constant(padded[None].astype("float32"))).numpy()[0]
    return tf.sigmoid(logits[:height, :width]).numpy()
