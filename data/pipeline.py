"""tf.data input for training and evaluation, in TensorFlow ops only.

Training: cached PNG bytes -> parallel decode -> several random crops per decoded image
(small images are mirror-padded first) -> joint image/mask augmentation -> batch ->
prefetch. Every random draw is stateless and seeded from (seed, element index), so a seed
fixes the whole stream. Evaluation: each image is zero-padded to a multiple of the tile
size and cut into tiles, with a weight map that is 0 on the padding, so metrics count
exactly the real pixels once.
"""

import math

import tensorflow as tf
import tensorflow_datasets as tfds

AUTOTUNE = tf.data.AUTOTUNE


def load_split(dataset, split, *, data_dir=None, manual_dir=None):
    """Examples {"image", "mask", "file_name"} of a TFDS split, images left PNG-encoded.

    Builds the dataset first if needed (``manual_dir`` holds the Kaggle download).
    """
    import data.buildings  # noqa: F401  (registers the builder)

    builder = tfds.builder(dataset, data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    skip = tfds.decode.SkipDecoding()
    return builder.as_dataset(split=split, decoders={"image": skip, "mask": skip}, shuffle_files=False)


def decode(example):
    """PNG bytes -> (uint8 image (H, W, 3), uint8 mask (H, W, 1))."""
    image = tf.io.decode_png(example["image"], channels=3)
    mask = tf.io.decode_png(example["mask"], channels=1)
    return image, mask


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
    top = tf.map_fn(lambda s: tf.random.stateless_uniform([], s, 0, shape[0] - size + 1, tf.int32), seeds, fn_output_signature=tf.int32)
    left = tf.map_fn(lambda s: tf.random.stateless_uniform([], s + 1, 0, shape[1] - size + 1, tf.int32), seeds, fn_output_signature=tf.int32)
    crops = tf.map_fn(lambda tl: joint[tl[0]:tl[0] + size, tl[1]:tl[1] + size], tf.stack([top, left], 1), fn_output_signature=joint.dtype)
    crops = tf.ensure_shape(crops, [count, size, size, 4])
    return crops[..., :3], crops[..., 3:]


def _affine_matrix(seed, size, *, max_rotate, max_scale, max_shift):
    """Projective-transform parameters (output -> input coordinates) of a random similarity."""
    angle = tf.random.stateless_uniform([], seed, -max_rotate, max_rotate) * math.pi / 180
    scale = tf.random.stateless_uniform([], seed + 1, 1 - max_scale, 1 + max_scale)
    shift = tf.random.stateless_uniform([2], seed + 2, -max_shift, max_shift) * size
    center = (size - 1) / 2
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # input = R(angle) / scale * (output - center) + center - shift
    a2 = center - cos * center + sin * center - shift[0]
    b2 = center - sin * center - cos * center - shift[1]
    return tf.stack([cos, -sin, a2, sin, cos, b2, 0.0, 0.0])[None]


def _transform(x, matrix, interpolation):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=matrix, output_shape=tf.shape(x)[:2], fill_value=0.0,
        interpolation=interpolation, fill_mode="REFLECT",
    )[0]


def augment(image, mask, seed, *, max_rotate=20.0, max_scale=0.15, max_shift=0.08, brightness=0.15, contrast=0.2):
    """Joint random geometry (flips, 90-degree rotations, transpose, scale/shift/rotate) and
    photometric jitter (brightness/contrast) for a float image and its {0, 1} mask.

    The mask goes through the same geometry with nearest-neighbour sampling and stays
    binary; photometric changes touch the image only.
    """
    seeds = tf.random.experimental.stateless_split(seed, 7)
    size = tf.cast(tf.shape(image)[0], tf.float32)
    joint = tf.concat([image, mask], axis=-1)
    if_flip = lambda s, fn, x: tf.cond(tf.random.stateless_uniform([], s) < 0.5, lambda: fn(x), lambda: x)  # noqa: E731
    joint = if_flip(seeds[0], lambda x: tf.reverse(x, [1]), joint)
    joint = if_flip(seeds[1], lambda x: tf.reverse(x, [0]), joint)
    joint = tf.image.rot90(joint, tf.random.stateless_uniform([], seeds[2], 0, 4, tf.int32))
    joint = if_flip(seeds[3], lambda x: tf.transpose(x, [1, 0, 2]), joint)
    image, mask = joint[..., :3], joint[..., 3:]
    matrix = _affine_matrix(seeds[4], size, max_rotate=max_rotate, max_scale=max_scale, max_shift=max_shift)
    image = _transform(image, matrix, "BILINEAR")
    mask = _transform(mask, matrix, "NEAREST")
    mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
    factor = tf.random.stateless_uniform([], seeds[5], 1 - contrast, 1 + contrast)
    offset = tf.random.stateless_uniform([], seeds[6], -brightness, brightness) * 255.0
    image = tf.clip_by_value((image - mean) * factor + mean + offset, 0.0, 255.0)
    return image, mask


def train_dataset(examples, *, size, batch_size, seed=0, augment_data=True, crops_per_image=4, shuffle_buffer=256):
    """Endless batches of (image float32 0..255 (B, size, size, 3), mask float32 {0, 1}).

    Args:
        examples: a dataset from ``load_split`` (PNG bytes).
        size: crop size (a multiple of 32).
        batch_size: images per batch.
        seed: fixes shuffling, crops and augmentation.
        augment_data: apply ``augment`` to each crop.
        crops_per_image: crops taken from each decoded image (decoding is the costly step).
        shuffle_buffer: examples held for shuffling (encoded bytes, so cheap).
    """
    ds = examples.map(lambda ex: {"image": ex["image"], "mask": ex["mask"]}).cache()
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.enumerate()

    def crops(index, pair):
        image, mask = pair
        seed_pair = tf.stack([tf.cast(seed, tf.int64), index])
        images, masks = random_crops(image, mask, seed_pair, size=size, count=crops_per_image)
        return tf.data.Dataset.from_tensor_slices((images, masks))

    ds = ds.interleave(crops, cycle_length=4, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.shuffle(crops_per_image * 8, seed=seed + 1)
    ds = ds.enumerate()

    def prepare(index, pair):
        image, mask = tf.cast(pair[0], tf.float32), tf.cast(pair[1], tf.float32)
        if augment_data:
            image, mask = augment(image, mask, tf.stack([tf.cast(seed, tf.int64) + 7919, index]))
        return image, mask

    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def tile_with_weights(image, mask, size):
    """Zero-pad to multiples of ``size`` and cut into tiles; weight 1 on real pixels, 0 on padding."""
    shape = tf.shape(image)
    height = (shape[0] + size - 1) // size * size
    width = (shape[1] + size - 1) // size * size
    weight = tf.ones_like(mask, tf.float32)
    stacked = tf.concat([tf.cast(image, tf.float32), tf.cast(mask, tf.float32), weight], axis=-1)
    stacked = tf.image.pad_to_bounding_box(stacked, 0, 0, height, width)
    tiles = tf.reshape(stacked, [height // size, size, width // size, size, 5])
    tiles = tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [-1, size, size, 5])
    return tiles[..., :3], tiles[..., 3:4], tiles[..., 4:5]


def eval_dataset(examples, *, size, batch_size, cache=True):
    """Batches of (image, mask, weight) tiles covering every pixel of every image once."""
    ds = examples.map(lambda ex: {"image": ex["image"], "mask": ex["mask"]})
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda image, mask: tile_with_weights(image, mask, size), num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch()
    if cache:
        ds = ds.cache()
    return ds.batch(batch_size).prefetch(AUTOTUNE)
