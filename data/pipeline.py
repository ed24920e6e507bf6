"""tf.data input for training and evaluation, in TensorFlow ops only.

Training: decode (cached in memory for small splits, else PNG bytes cached and decoded in
parallel) -> several random crops per decoded image (small images are mirror-padded
first) -> batch -> joint image/mask augmentation, one draw per image but run on the whole
batch at once -> prefetch. Every random draw is stateless and seeded from (seed, element index), so a seed
fixes the whole stream. Evaluation: each image is zero-padded to a multiple of the tile
size and cut into tiles, with a weight map that is 0 on the padding, so metrics count
exactly the real pixels once.
"""

import math
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from data.targets import NODATA_ID, NODATA_LABEL, gap_weights, separation_targets

AUTOTUNE = tf.data.AUTOTUNE


class DatasetBuildError(ValueError):
    """The dataset could not be built; the message names the input and what to do."""


def prepare(dataset, *, data_dir=None, manual_dir=None):
    """The TFDS builder of ``dataset``, built first if needed (``manual_dir`` holds the Kaggle download).

    A bad input (named by the builder) or a missing manual folder becomes a
    ``DatasetBuildError`` whose message is the last thing a user needs to read.
    """
    import data.buildings  # noqa: F401  (registers the builder)

    if manual_dir and not Path(manual_dir).is_dir():
        raise DatasetBuildError(
            f"--manual-dir {manual_dir} does not exist or is not a folder. Pass the folder holding "
            "the Kaggle 'buildings-dataset' zip or its extracted folder."
        )
    builder = tfds.builder(dataset, data_dir=data_dir)
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except (ValueError, AssertionError) as error:  # AssertionError: TFDS's own check of an empty manual folder
        raise DatasetBuildError(f"{dataset} could not be built: {error}") from error
    return builder


def load_split(dataset, split, *, data_dir=None, manual_dir=None):
    """Examples {"image", "mask", "file_name"} of a TFDS split, images left PNG-encoded (built first if needed)."""
    builder = prepare(dataset, data_dir=data_dir, manual_dir=manual_dir)
    skip = tfds.decode.SkipDecoding()
    features = builder.info.features
    decoders = {name: skip for name in ("image", "mask", "instances")
                if name in features and isinstance(features[name], tfds.features.Image)}  # fmt: skip
    return builder.as_dataset(split=split, decoders=decoders, shuffle_files=False)


def load_splits(dataset, names, *, data_dir=None, manual_dir=None):
    """{split: examples} of the named splits; one the dataset does not have (the polygons config has no test
    split) is empty."""
    builder = prepare(dataset, data_dir=data_dir, manual_dir=manual_dir)
    have = [name for name in names if name in builder.info.splits]
    loaded = {name: load_split(dataset, name, data_dir=data_dir, manual_dir=manual_dir) for name in have}
    return {name: loaded[name] if name in loaded else loaded[have[0]].take(0) for name in names}


def file_names(examples):
    """The ``file_name`` of every example, in order (images are not decoded)."""
    return [name.decode("utf-8") for name in examples.map(lambda ex: ex["file_name"]).as_numpy_iterator()]


def only_files(examples, names):
    """The examples whose ``file_name`` is one of ``names``."""
    wanted = tf.constant(sorted(names) or [""])
    return examples.filter(lambda ex: tf.reduce_any(tf.equal(ex["file_name"], wanted)))


def image_of(example):
    """uint8 (H, W, bands) of an example: its PNG bytes decoded (RGB), or the array of every band that the
    polygons config stores (or ``select_bands`` left)."""
    image = example["image"]
    return tf.io.decode_png(image, channels=3) if image.dtype == tf.string else image


def band_count(examples):
    """How many bands the images of ``examples`` have (3 for PNG-encoded ones; else read from the first)."""
    spec = examples.element_spec["image"]
    if spec.dtype == tf.string:
        return 3
    if spec.shape.rank == 3 and spec.shape[-1] is not None:
        return int(spec.shape[-1])
    for example in examples.take(1):
        return int(example["image"].shape[-1])
    return 3


def select_bands(examples, bands):
    """``examples`` whose images hold only ``bands`` (1-based numbers of the stored bands, in this order); the
    stored RGB (1, 2, 3) of PNG-encoded examples is left encoded."""
    bands = tuple(bands or (1, 2, 3))
    if bands == (1, 2, 3) and examples.element_spec["image"].dtype == tf.string:
        return examples
    indexes = tf.constant([band - 1 for band in bands], tf.int32)

    def pick(example):
        picked = tf.gather(image_of(example), indexes, axis=-1)
        picked.set_shape([None, None, len(bands)])
        return {**example, "image": picked}

    return examples.map(pick)


def decode(example):
    """An example -> (uint8 image (H, W, bands), uint8 mask (H, W, 1))."""
    image = image_of(example)
    mask = tf.io.decode_png(example["mask"], channels=1)
    return image, mask


def decode_instances(example):
    """An example -> (uint8 image (H, W, bands), float32 building ids (H, W, 1), 0 = background;
    ``data.targets``)."""
    image = image_of(example)
    ids = tf.io.decode_png(example["instances"], channels=1, dtype=tf.uint16)
    return image, tf.cast(ids, tf.float32)


def _label_source(examples, targets, need_ids=False):
    """(the example keys to keep, the decoder) for a target list: the mask alone, or the building ids
    (also for building alone when ``need_ids``: the gap weights are computed from them)."""
    if tuple(targets) == ("building",) and not need_ids:
        return ("image", "mask"), decode
    if "instances" not in examples.element_spec:
        raise ValueError(
            "Separation targets and --gap-weight need the building ids that the dataset builder stores from "
            "version 1.1.0 on (feature 'instances'); this dataset has none. "
            "Rebuild it with this code (python -m data.build)."
        )
    return ("image", "instances"), decode_instances


def _pad_to_at_least(image, mask, size):
    """Mirror-pad both so that height and width are at least ``size``."""
    shape = tf.shape(image)
    pad_h = tf.maximum(size - shape[0], 0)
    pad_w = tf.maximum(size - shape[1], 0)
    paddings = [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]]
    return tf.pad(image, paddings, mode="SYMMETRIC"), tf.pad(mask, paddings, mode="SYMMETRIC")


def random_crops(image, mask, seed, *, size, count):
    """``count`` random size x size crops of one image and its mask, stacked."""
    image, mask = _pad_to_at_least(image, mask, size)
    joint = tf.concat([image, mask], axis=-1)
    shape = tf.shape(joint)
    seeds = tf.random.experimental.stateless_split(seed, count)
    top = tf.map_fn(
        lambda s: tf.random.stateless_uniform([], s, 0, shape[0] - size + 1, tf.int32),
        seeds,
        fn_output_signature=tf.int32,
    )
    left = tf.map_fn(
        lambda s: tf.random.stateless_uniform([], s + 1, 0, shape[1] - size + 1, tf.int32),
        seeds,
        fn_output_signature=tf.int32,
    )
    crops = tf.map_fn(
        lambda tl: joint[tl[0] : tl[0] + size, tl[1] : tl[1] + size],
        tf.stack([top, left], 1),
        fn_output_signature=joint.dtype,
    )
    bands = image.shape[-1] if image.shape[-1] is not None else 3
    crops = tf.ensure_shape(crops, [count, size, size, bands + 1])
    return crops[..., :bands], crops[..., bands:]


def _random_transforms(seed, batch, size, *, max_rotate, max_scale, max_shift):
    """Per-sample projective-transform rows (output -> input coordinates).

    Each transform is a random element of the square's symmetry group (horizontal and
    vertical flips, transpose; together they give all 90-degree rotations) composed with a
    random rotation, scale and shift about the centre: input = M @ A @ (out - c) + c - t.
    """
    seeds = tf.random.experimental.stateless_split(seed, 6)
    flip_x = tf.where(tf.random.stateless_uniform([batch], seeds[0]) < 0.5, -1.0, 1.0)
    flip_y = tf.where(tf.random.stateless_uniform([batch], seeds[1]) < 0.5, -1.0, 1.0)
    transpose = tf.random.stateless_uniform([batch], seeds[2]) < 0.5
    angle = tf.random.stateless_uniform([batch], seeds[3], -max_rotate, max_rotate) * math.pi / 180
    scale = tf.random.stateless_uniform([batch], seeds[4], 1 - max_scale, 1 + max_scale)
    shift = tf.random.stateless_uniform([batch, 2], seeds[5], -max_shift, max_shift) * size
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # A = [[cos, -sin], [sin, cos]]; M = diag(flip) @ (swap rows if transpose)
    a = tf.stack([tf.stack([cos, -sin], -1), tf.stack([sin, cos], -1)], -2)
    a = tf.where(transpose[:, None, None], tf.reverse(a, [1]), a)
    b = a * tf.stack([flip_x, flip_y], -1)[:, :, None]
    center = (size - 1) / 2
    offset = center - tf.reduce_sum(b, -1) * center - shift
    zeros = tf.zeros([batch])
    return tf.stack([b[:, 0, 0], b[:, 0, 1], offset[:, 0], b[:, 1, 0], b[:, 1, 1], offset[:, 1], zeros, zeros], -1)


def _transform(x, transforms, interpolation):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=tf.shape(x)[1:3],
        fill_value=0.0,
        interpolation=interpolation,
        fill_mode="REFLECT",
    )


# Augmentation presets (``--augment``). "basic" is the recipe before spatial hold-outs were
# measured; "aerial" adds what changes between places and sensors: colour balance,
# saturation, gamma, blur and sensor noise, and a wider scale range (ground sample distance).
AUGMENTATIONS = {
    "basic": dict(max_rotate=20.0, max_scale=0.15, max_shift=0.08, brightness=0.15, contrast=0.2),
    "aerial": dict(
        max_rotate=20.0,
        max_scale=0.3,
        max_shift=0.08,
        brightness=0.15,
        contrast=0.3,
        channel_gain=0.1,
        saturation=0.3,
        gamma=0.25,
        blur_probability=0.25,
        max_blur_sigma=1.5,
        noise=4.0,
    ),
    # basic geometry with the brightness and contrast range of the sample's images (their means
    # run from 34 to 213 grey levels, their spreads from 18 to 98) and a gamma curve
    "radiometric": dict(max_rotate=20.0, max_scale=0.15, max_shift=0.08, brightness=0.3, contrast=0.5, gamma=0.4),
    # the dihedral group alone (flips, 90-degree rotations, transpose): what most plain recipes use
    "flips": dict(max_rotate=0.0, max_scale=0.0, max_shift=0.0, brightness=0.0, contrast=0.0),
    "none": None,
}


def _gaussian_blur(images, sigma):
    """Separable Gaussian blur of (B, S, S, 3) images, one sigma per image (0: unchanged)."""
    offsets = tf.range(-3.0, 4.0)
    kernel = tf.exp(-0.5 * tf.square(offsets[None, :] / tf.maximum(sigma[:, None], 1e-3)))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (B, 7)
    padded = tf.pad(images, [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT")
    size = tf.shape(images)[1]
    rows = sum(kernel[:, i, None, None, None] * padded[:, i : i + size, :, :] for i in range(7))
    return sum(kernel[:, i, None, None, None] * rows[:, :, i : i + size, :] for i in range(7))


def augment_batch(
    images,
    masks,
    seed,
    *,
    max_rotate=20.0,
    max_scale=0.15,
    max_shift=0.08,
    brightness=0.15,
    contrast=0.2,
    channel_gain=0.0,
    saturation=0.0,
    gamma=0.0,
    blur_probability=0.0,
    max_blur_sigma=0.0,
    noise=0.0,
):
    """Joint random geometry (flips, 90-degree rotations, transpose, scale/shift/rotate) and
    photometric jitter for float images (B, S, S, 3) in 0..255 and {0, 1} masks.

    All geometry is one projective transform per sample, applied to the image with
    bilinear and to the mask with nearest-neighbour sampling, so the mask stays binary and
    aligned; photometric changes touch the images only: brightness/contrast, and when
    their amplitudes are non-zero a per-channel gain, saturation, gamma, Gaussian blur
    (with ``blur_probability``, sigma up to ``max_blur_sigma`` pixels) and Gaussian noise
    (standard deviation up to ``noise`` grey levels).
    """
    batch = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    geometry_seed, light_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    transforms = _random_transforms(
        geometry_seed, batch, size, max_rotate=max_rotate, max_scale=max_scale, max_shift=max_shift
    )
    images = _transform(images, transforms, "BILINEAR")
    masks = _transform(masks, transforms, "NEAREST")
    seeds = tf.random.experimental.stateless_split(light_seed, 8)

    def uniform(index, shape, amplitude):
        return tf.random.stateless_uniform(shape, seeds[index], -amplitude, amplitude)

    factor = 1.0 + uniform(0, [batch, 1, 1, 1], contrast)
    offset = uniform(1, [batch, 1, 1, 1], brightness) * 255.0
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = tf.clip_by_value((images - mean) * factor + mean + offset, 0.0, 255.0)
    if channel_gain or saturation:
        images = images * (1.0 + uniform(2, [batch, 1, 1, images.shape[-1] or 3], channel_gain))
        grey = tf.reduce_mean(images, axis=-1, keepdims=True)
        images = tf.clip_by_value(grey + (images - grey) * (1.0 + uniform(3, [batch, 1, 1, 1], saturation)), 0.0, 255.0)
    if gamma:
        images = 255.0 * tf.pow(images / 255.0, tf.exp(uniform(4, [batch, 1, 1, 1], gamma)))
    if blur_probability and max_blur_sigma:
        blurred = tf.random.stateless_uniform([batch], seeds[5]) < blur_probability
        sigma = tf.random.stateless_uniform([batch], seeds[6], 0.3, max_blur_sigma)
        images = tf.where(blurred[:, None, None, None], _gaussian_blur(images, sigma), images)
    if noise:
        level = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[7], 0.0, noise)
        images = tf.clip_by_value(
            images + level * tf.random.stateless_normal(tf.shape(images), seeds[7] + 1), 0.0, 255.0
        )
    return images, masks


# How train_dataset draws a crop's image: once per pass over the split, or at random with replacement.
DRAWS = ("pass", "random")
# Splits up to this many examples are kept decoded in memory (the whole real sample: 99 MP, ~0.4 GB).
DECODED_CACHE_MAX_EXAMPLES = 500


def keeps_decoded(examples):
    """Whether ``train_dataset`` keeps these examples decoded in memory by default: tf.data knows their number
    and it is at most DECODED_CACHE_MAX_EXAMPLES (else the PNG bytes are kept and each image is decoded again
    whenever a crop is taken from it)."""
    return 0 <= int(examples.cardinality()) <= DECODED_CACHE_MAX_EXAMPLES


def train_dataset(
    examples,
    *,
    size,
    batch_size,
    seed=0,
    augment_data=True,
    crops_per_image=8,
    shuffle_buffer=256,
    cache_decoded=None,
    augmentation="basic",
    targets=("building",),
    gap_weight=0.0,
    nodata=False,
    draw="pass",
):
    """Endless batches of (image float32 0..255 (B, size, size, 3), targets float32 {0, 1} (B, size, size, T)),
    and with ``gap_weight`` > 0 a third element, the per-pixel loss weight (B, size, size, 1).

    Args:
        examples: a dataset from ``load_split`` (PNG bytes).
        size: crop size (a multiple of 32).
        batch_size: images per batch.
        seed: fixes shuffling, crops and augmentation.
        augment_data: apply ``augment_batch`` to each batch.
        augmentation: a preset name of ``AUGMENTATIONS`` ("none" is the same as augment_data=False).
        crops_per_image: crops taken from each decoded image (decoding is the costly step).
        shuffle_buffer: examples held for shuffling.
        cache_decoded: keep decoded images in memory (True), or only the PNG bytes (False);
            None decides by size: decoded when the split has at most
            DECODED_CACHE_MAX_EXAMPLES examples.
        targets: ("building",) gives the mask; more names (``data.targets.TARGETS``) carry the
            building ids through crops and augmentation (nearest-neighbour) and compute the
            targets after it.
        gap_weight: > 0: also yield ``data.targets.gap_weights`` (1, and 1 + gap_weight on the pixels
            between neighbouring buildings), which Keras passes to the loss as ``sample_weight``.
        draw: how images are drawn: "pass" takes every image once per pass over the split, in a new order each
            pass; "random" draws each image at random, with replacement (the images kept decoded in memory).
        nodata: the labels mark pixels without data (mask ``NODATA_LABEL``, id ``NODATA_ID``: the polygons
            config); also yield a per-pixel weight that is 0 there, so they are never learned as background.
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(
            f"augmentation must be one of {', '.join(AUGMENTATIONS)}. Received: augmentation={augmentation!r}"
        )
    settings = AUGMENTATIONS[augmentation] if augment_data else None
    if cache_decoded is None:
        cache_decoded = keeps_decoded(examples)
    if gap_weight < 0:
        raise ValueError(f"gap_weight must be at least 0. Received: gap_weight={gap_weight!r}")
    keys, decoder = _label_source(examples, targets, need_ids=gap_weight > 0)
    ds = examples.map(lambda ex: {key: ex[key] for key in keys})
    if draw not in DRAWS:
        raise ValueError(f"draw must be 'pass' or 'random'. Received: draw={draw!r}")
    if draw == "random" and not cache_decoded:
        raise ValueError(
            "draw='random' needs every training image kept decoded in memory, and this split is not (it has more "
            f"than {DECODED_CACHE_MAX_EXAMPLES} examples or an unknown number, or cache_decoded=False): use "
            "draw='pass' (train.py --draw pass), which reads each image once per pass"
        )
    if cache_decoded:
        ds = ds.map(decoder, num_parallel_calls=AUTOTUNE, deterministic=True).cache()
        if draw == "random":
            ds = _random_draws(ds, seed)
        else:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        ds = ds.cache().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.map(decoder, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.enumerate()

    def crops(index, pair):
        image, mask = pair
        if mask.dtype != image.dtype:  # building ids: crop both as float32 (ids up to 65535 stay exact)
            image = tf.cast(image, tf.float32)
        seed_pair = tf.stack([tf.cast(seed, tf.int64), index])
        images, masks = random_crops(image, mask, seed_pair, size=size, count=crops_per_image)
        return tf.data.Dataset.from_tensor_slices((images, masks))

    ds = ds.interleave(crops, cycle_length=4, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.shuffle(crops_per_image * 8, seed=seed + 1)
    ds = ds.batch(batch_size, drop_remainder=True).enumerate()

    def prepare(index, pair):
        images, masks = tf.cast(pair[0], tf.float32), tf.cast(pair[1], tf.float32)
        if settings is not None:
            images, masks = augment_batch(images, masks, tf.stack([tf.cast(seed, tf.int64) + 7919, index]), **settings)
        masks, valid = without_nodata(masks, ids=keys[1] == "instances") if nodata else (masks, None)
        if keys[1] != "instances":
            return (images, masks) if valid is None else (images, masks, valid)
        weight = gap_weights(masks, gap_weight) if gap_weight > 0 else None
        weight = valid if weight is None else weight if valid is None else weight * valid
        if weight is not None:
            return images, separation_targets(masks, targets), weight
        return images, separation_targets(masks, targets)

    return ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


def _random_draws(decoded, seed):
    """Endless decoded examples, each drawn from the cached ``decoded`` at random with replacement. One pass
    fills the in-memory cache first, so every draw reads a decoded image."""
    count = int(decoded.cardinality())
    if count < 1:
        raise ValueError("draw='random' needs a split of known, non-zero size (data.splits gives its count)")
    for _ in decoded:  # decode every image once: the cache is complete before the draws read it
        pass
    picks = tf.data.Dataset.random(seed=seed).map(lambda value: tf.math.floormod(value, count))
    return tf.data.Dataset.choose_from_datasets([decoded.skip(i).take(1).repeat() for i in range(count)], picks)


def without_nodata(labels, *, ids):
    """(labels with no-data cleared, float32 weight (..., 1) that is 0 on no-data): a mask's NODATA_LABEL
    becomes background, or a building id NODATA_ID becomes 0, and the weight keeps them out of the loss."""
    marker = NODATA_ID if ids else NODATA_LABEL
    valid = tf.cast(tf.not_equal(labels[..., :1], marker), tf.float32)
    return labels * valid, valid


def tile_with_weights(image, mask, size):
    """Zero-pad to multiples of ``size`` and cut into tiles; weight 1 on real pixels, 0 on padding.

    ``mask`` may have several channels (targets); the weight has one.
    """
    shape = tf.shape(image)
    height = (shape[0] + size - 1) // size * size
    width = (shape[1] + size - 1) // size * size
    bands = image.shape[-1] if image.shape[-1] is not None else 3
    channels = bands + mask.shape[-1] + 1
    weight = tf.ones_like(mask[..., :1], tf.float32)
    stacked = tf.concat([tf.cast(image, tf.float32), tf.cast(mask, tf.float32), weight], axis=-1)
    stacked = tf.image.pad_to_bounding_box(stacked, 0, 0, height, width)
    tiles = tf.reshape(stacked, [height // size, size, width // size, size, channels])
    tiles = tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [-1, size, size, channels])
    return tiles[..., :bands], tiles[..., bands:-1], tiles[..., -1:]


def eval_dataset(examples, *, size, batch_size, cache=True, targets=("building",), nodata=False):
    """Batches of (image, targets, weight) tiles covering every pixel of every image once (weight 0 on the
    padding, and with ``nodata`` on the pixels the labels mark as no-data).

    With separation targets they are computed on the whole image before it is tiled.
    """
    keys, decoder = _label_source(examples, targets)
    ds = examples.map(lambda ex: {key: ex[key] for key in keys})
    ds = ds.map(decoder, num_parallel_calls=AUTOTUNE)
    ids = keys[1] == "instances"

    def labelled(image, labels):
        labels = tf.cast(labels, tf.float32)
        labels, valid = without_nodata(labels, ids=ids) if nodata else (labels, tf.ones_like(labels[..., :1]))
        if ids:
            labels = separation_targets(labels[None], targets)[0]
        return tile_with_weights(image, tf.concat([labels, valid], axis=-1), size)

    def split(images, labels, padding):
        return images, labels[..., :-1], padding * labels[..., -1:]

    ds = ds.map(labelled, num_parallel_calls=AUTOTUNE).map(split, num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch()
    if cache:
        ds = ds.cache()
    return ds.batch(batch_size).prefetch(AUTOTUNE)
