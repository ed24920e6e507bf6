"""tf.data input for training and evaluation, in TensorFlow ops only.

Training: decode (cached in memory for small splits, else PNG bytes cached and decoded in
parallel) -> several random crops per decoded image (small images are mirror-padded
first) -> batch -> joint image/mask augmentation, vectorised over the batch -> prefetch. Every random draw is stateless and seeded from (seed, element index), so a seed
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
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation=interpolation, fill_mode="REFLECT",
    )


def augment_batch(images, masks, seed, *, max_rotate=20.0, max_scale=0.15, max_shift=0.08, brightness=0.15, contrast=0.2):
    """Joint random geometry (flips, 90-degree rotations, transpose, scale/shift/rotate) and
    photometric jitter (brightness/contrast) for float images (B, S, S, 3) and {0, 1} masks.

    All geometry is one projective transform per sample, applied to the image with
    bilinear and to the mask with nearest-neighbour sampling, so the mask stays binary and
    aligned; photometric changes touch the images only.
    """
    batch = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    geometry_seed, light_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    transforms = _random_transforms(geometry_seed, batch, size, max_rotate=max_rotate, max_scale=max_scale, max_shift=max_shift)
    images = _transform(images, transforms, "BILINEAR")
    masks = _transform(masks, transforms, "NEAREST")
    factor_seed, offset_seed = tf.unstack(tf.random.experimental.stateless_split(light_seed, 2))
    factor = tf.random.stateless_uniform([batch, 1, 1, 1], factor_seed, 1 - contrast, 1 + contrast)
    offset = tf.random.stateless_uniform([batch, 1, 1, 1], offset_seed, -brightness, brightness) * 255.0
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = tf.clip_by_value((images - mean) * factor + mean + offset, 0.0, 255.0)
    return images, masks


def augment(image, mask, seed, **kwargs):
    """``augment_batch`` for a single (H, W, 3) image and (H, W, 1) mask."""
    images, masks = augment_batch(image[None], mask[None], seed, **kwargs)
    return images[0], masks[0]


# Splits up to this many examples are kept decoded in memory (the real sample: ~0.1 GB).
DECODED_CACHE_MAX_EXAMPLES = 500


def train_dataset(
    examples, *, size, batch_size, seed=0, augment_data=True, crops_per_image=8, shuffle_buffer=256, cache_decoded=None
):
    """Endless batches of (image float32 0..255 (B, size, size, 3), mask float32 {0, 1}).

    Args:
        examples: a dataset from ``load_split`` (PNG bytes).
        size: crop size (a multiple of 32).
        batch_size: images per batch.
        seed: fixes shuffling, crops and augmentation.
        augment_data: apply ``augment`` to each crop.
        crops_per_image: crops taken from each decoded image (decoding is the costly step).
        shuffle_buffer: examples held for shuffling.
        cache_decoded: keep decoded images in memory (True), or only the PNG bytes (False);
            None decides by size: decoded when the split has at most
            DECODED_CACHE_MAX_EXAMPLES examples.
    """
    if cache_decoded is None:
        count = int(examples.cardinality())
        cache_decoded = 0 <= count <= DECODED_CACHE_MAX_EXAMPLES
    ds = examples.map(lambda ex: {"image": ex["image"], "mask": ex["mask"]})
    if cache_decoded:
        ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True).cache()
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        ds = ds.cache().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.enumerate()

    def crops(index, pair):
        image, mask = pair
        seed_pair = tf.stack([tf.cast(seed, tf.int64), index])
        images, masks = random_crops(image, mask, seed_pair, size=size, count=crops_per_image)
        return tf.data.Dataset.from_tensor_slices((images, masks))

    ds = ds.interleave(crops, cycle_length=4, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.shuffle(crops_per_image * 8, seed=seed + 1)
    ds = ds.batch(batch_size, drop_remainder=True).enumerate()

    def prepare(index, pair):
        images, masks = tf.cast(pair[0], tf.float32), tf.cast(pair[1], tf.float32)
        if augment_data:
            images, masks = augment_batch(images, masks, tf.stack([tf.cast(seed, tf.int64) + 7919, index]))
        return images, masks

    return ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


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
