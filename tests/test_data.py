"""The buildings builder on the real sample, bad-input messages, synthetic scenes, pipeline."""

import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import data.buildings  # noqa: F401  (registers the builder)
from data.buildings import readers
from data.buildings.buildings_dataset_builder import BuildingsConfig
from data.pipeline import augment_batch, decode, eval_dataset, load_split, tile_with_weights, train_dataset
from data.synthetic import synthetic_scene
from tests.helpers import augment

DUMMY = readers.__file__.rsplit("/", 1)[0] + "/dummy_data"


def _build(manual_dir, data_dir, config="kaggle"):
    builder = (
        tfds.builder(f"buildings/{config}", data_dir=str(data_dir))
        if isinstance(config, str)
        else tfds.builder("buildings", config=config, data_dir=str(data_dir))
    )
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _names(builder, split):
    return sorted(ex["file_name"].numpy().decode() for ex in builder.as_dataset(split=split))


@pytest.fixture(scope="module")
def sample_builder(sample_tfds):
    return sample_tfds[1]


def test_sample_counts(sample_builder):
    splits = sample_builder.info.splits
    assert splits["train"].num_examples + splits["validation"].num_examples == 70
    assert splits["test"].num_examples == 5
    assert splits["validation"].num_examples >= 1


def test_sample_known_mask_is_pixel_exact(sample_builder, sample_dir):
    name = "dubai_image_part_001t1"
    split = "validation" if readers.is_validation(name, 0.05) else "train"
    example = next(
        ex for ex in sample_builder.as_dataset(split=split) if ex["file_name"].numpy().decode() == f"{name}.jpg"
    )
    expected = np.asarray(Image.open(sample_dir / "building_data" / "label" / f"{name}.png")) > 0
    mask = example["mask"].numpy()
    assert mask.shape == expected.shape + (1,)
    assert set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(mask[..., 0], expected.astype("uint8"))
    assert abs(expected.mean() - 0.1) < 0.1  # a real mask with buildings in it


def test_sample_geotiff_reads_correctly(sample_builder, sample_dir):
    name = "rio_3band_013022223130_Public_img53.tiff"
    example = next(ex for ex in sample_builder.as_dataset(split="test") if ex["file_name"].numpy().decode() == name)
    reference = np.asarray(Image.open(sample_dir / "building_data" / "test" / "src" / name).convert("RGB"))
    assert example["image"].shape == (406, 438, 3)
    np.testing.assert_array_equal(example["image"].numpy(), reference)
    assert reference.std() > 10  # real image content, not a blank decode


def test_sample_split_matches_the_file_name_hash(sample_builder, sample_dir):
    stems = sorted(p.stem for p in (sample_dir / "building_data" / "src").iterdir())
    expected = sorted(s for s in stems if readers.is_validation(s, 0.05))
    assert [n.rsplit(".", 1)[0] for n in _names(sample_builder, "validation")] == expected


def test_split_is_stable_across_two_builds(sample_dir, tmp_path):
    # a 16-pair subset with a 30% validation share, built twice into separate folders
    subset = tmp_path / "manual" / "building_data"
    for sub in ("src", "label", "test/src", "test/label"):
        (subset / sub).mkdir(parents=True)
    src = sample_dir / "building_data"
    for image in sorted((src / "src").glob("rio_*"))[:8] + sorted((src / "src").glob("dubai_*"))[:8]:
        shutil.copy(image, subset / "src")
        shutil.copy(src / "label" / f"{image.stem}.png", subset / "label")
    for scene in sorted((src / "test" / "src").glob("rio_*")):
        shutil.copy(scene, subset / "test" / "src")
        shutil.copy(src / "test" / "label" / f"{scene.stem}.tif", subset / "test" / "label")
    config = BuildingsConfig(name="kaggle_val30", kind="kaggle", validation_fraction=0.3)
    first = _build(tmp_path / "manual", tmp_path / "a", config)
    second = _build(tmp_path / "manual", tmp_path / "b", config)
    assert _names(first, "validation") == _names(second, "validation")
    assert 1 <= len(_names(first, "validation")) <= 10
    assert _names(first, "train") == _names(second, "train")


def test_zip_download_is_accepted(tmp_path):
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as archive:
        for path in sorted(p for p in __import__("pathlib").Path(DUMMY).rglob("*") if p.is_file()):
            archive.write(path, "archive/" + str(path.relative_to(DUMMY)))
    builder = _build(tmp_path, tmp_path / "tfds")
    assert builder.info.splits["train"].num_examples + builder.info.splits["validation"].num_examples == 4
    assert builder.info.splits["test"].num_examples == 2


# --- bad input: each produces a message naming the file and what to do -------------
@pytest.fixture
def broken(tmp_path):
    root = tmp_path / "manual"
    shutil.copytree(DUMMY, root)
    return root / "building_data"


def _expect_error(manual_dir, tmp_path, *patterns, error=ValueError):
    with pytest.raises(error) as info:
        _build(manual_dir, tmp_path / "tfds_out")
    for pattern in patterns:
        assert pattern in str(info.value), str(info.value)


def test_missing_mask_is_named(broken, tmp_path):
    (broken / "label" / "tile_001.png").unlink()
    _expect_error(broken.parent, tmp_path, "image without mask", "tile_001.jpg", "Add the missing files")


def test_mask_of_other_size_is_named(broken, tmp_path):
    Image.new("L", (50, 64)).save(broken / "label" / "tile_000.png")
    _expect_error(broken.parent, tmp_path, "label/tile_000.png is 50x64", "tile_000.png is 64x64", "Fix or remove")


def test_truncated_image_is_named(broken, tmp_path):
    path = broken / "src" / "tile_001.jpg"
    path.write_bytes(path.read_bytes()[:300])
    _expect_error(broken.parent, tmp_path, "Cannot read", "tile_001.jpg", "unreadable or truncated")


def test_unreadable_file_is_named(broken, tmp_path):
    (broken / "src" / "tile_000.png").write_text("not an image")
    _expect_error(broken.parent, tmp_path, "Cannot read", "src/tile_000.png")


def test_mask_with_other_values_is_named(broken, tmp_path):
    Image.fromarray(np.full((64, 64), 128, "uint8")).save(broken / "label" / "tile_000.png")
    _expect_error(broken.parent, tmp_path, "label/tile_000.png has values [128]", "Binarise")


def test_empty_folder_is_named(tmp_path):
    (tmp_path / "manual").mkdir()
    # TFDS itself refuses an empty manual folder, naming it and printing our instructions
    _expect_error(tmp_path / "manual", tmp_path, "manual", "buildings-dataset", "Put the zip", error=AssertionError)


def test_folder_without_the_dataset_is_named(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "notes.txt").write_text("hello")
    _expect_error(tmp_path / "manual", tmp_path, "No 'building_data/src' folder and no .zip", "manual")


def test_empty_src_is_named(tmp_path):
    for sub in ("src", "label"):
        (tmp_path / "manual" / "building_data" / sub).mkdir(parents=True)
    _expect_error(tmp_path / "manual", tmp_path, "No images found in", "building_data/src")


@pytest.mark.parametrize("entry", ["../evil.png", "/etc/evil.png", "building_data/../../evil.png"])
def test_zip_escaping_the_folder_is_refused(tmp_path, entry):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("building_data/src/a.png", b"x")
        archive.writestr(entry, b"x")
    _expect_error(tmp_path, tmp_path, "Refusing zip", "bad.zip", entry)


def test_zip_entry_that_expands_like_a_bomb_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from data.buildings import readers as zip_readers

    monkeypatch.setattr(zip_readers, "ZIP_BOMB_FLOOR", 2**20)  # 1 MiB here; 64 MiB in use
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in __import__("pathlib").Path(DUMMY).rglob("*") if p.is_file()):
            archive.write(path, str(path.relative_to(DUMMY)))
        with archive.open("building_data/src/zeros.tif", "w") as entry:
            for _ in range(8):
                entry.write(bytes(2**20))  # 8 MiB of zeros: about 8 kB zipped
    read = []
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, name, pwd=None: read.append(name))
    _expect_error(tmp_path, tmp_path, "Refusing zip", "bomb.zip", "'building_data/src/zeros.tif' expands", "8,388,608")
    assert read == []  # refused from the directory alone
    monkeypatch.undo()
    monkeypatch.setattr(zip_readers, "ZIP_BOMB_FLOOR", 16 * 2**20)  # below the floor: built (zeros.tif fails later)
    _expect_error(tmp_path, tmp_path, "zeros.tif")


# --- synthetic scenes ---------------------------------------------------------------
def test_synthetic_is_deterministic_and_realistic():
    a_image, a_mask = synthetic_scene(7)
    b_image, b_mask = synthetic_scene(7)
    np.testing.assert_array_equal(a_image, b_image)
    np.testing.assert_array_equal(a_mask, b_mask)
    fractions, images, masks = [], [], []
    for seed in range(40):
        image, mask = synthetic_scene(seed)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1}
        fractions.append(mask.mean())
        images.append(image.reshape(-1, 3).astype("int32"))
        masks.append(mask.reshape(-1).astype(bool))
    assert 0.05 <= min(fractions) and max(fractions) <= 0.45 and 0.1 < np.mean(fractions) < 0.35
    # no single-channel colour threshold separates buildings from ground
    pixels, truth = np.concatenate(images), np.concatenate(masks)
    best = 0.0
    for channel in range(3):
        for threshold in range(0, 256, 8):
            for predicted in (pixels[:, channel] > threshold, pixels[:, channel] <= threshold):
                best = max(best, (predicted & truth).sum() / (predicted | truth).sum())
    assert best < 0.4


# --- pipeline -------------------------------------------------------------------------
def test_augmentation_keeps_image_and_mask_aligned():
    rng = np.random.RandomState(0)
    mask = np.zeros((64, 64, 1), "float32")
    mask[10:30, 20:50] = 1
    mask[40:60, 5:15] = 1
    image = np.concatenate([mask * 255, rng.uniform(0, 255, (64, 64, 2))], -1).astype("float32")
    moved, seen = 0, set()
    for index in range(30):
        out_image, out_mask = augment(
            tf.constant(image), tf.constant(mask), tf.constant([3, index], tf.int64), brightness=0.0, contrast=0.0
        )
        out_mask = out_mask.numpy()
        assert set(np.unique(out_mask)) <= {0.0, 1.0}
        painted = out_image.numpy()[..., 0] > 127.5
        agreement = (painted == (out_mask[..., 0] > 0.5)).mean()
        assert agreement > 0.98, (index, agreement)
        assert 0.05 < out_mask.mean() < 0.5
        moved += not np.array_equal(out_mask, mask)
        seen.add(out_mask.tobytes())
    assert moved >= 28 and len(seen) >= 28  # the geometry changes the crop, differently for each seed


def test_each_augmentation_changes_what_it_says_on_a_grey_image():
    grey = tf.fill([16, 32, 32, 3], 100.0)
    mask = tf.zeros([16, 32, 32, 1])
    seed = tf.constant([1, 2], tf.int64)
    photometric = dict(brightness=0.0, contrast=0.0)
    images, _ = augment_batch(grey, mask, seed, **photometric)
    np.testing.assert_allclose(images, 100.0, atol=1e-3)  # geometry alone leaves a flat image flat
    images, _ = augment_batch(grey, mask, seed, **{**photometric, "brightness": 0.15})
    means = images.numpy().mean(axis=(1, 2, 3))
    assert np.ptp(means) > 20 and np.abs(means - 100).max() <= 0.15 * 255 + 1e-3  # one offset per image, in range
    images, _ = augment_batch(grey, mask, seed, **{**photometric, "gamma": 0.4})
    assert np.ptp(images.numpy().mean(axis=(1, 2, 3))) > 20  # a gamma curve moves a flat grey
    images, _ = augment_batch(grey, mask, seed, **{**photometric, "channel_gain": 0.1})
    spread = images.numpy().mean(axis=(1, 2))  # (16, 3): channels of one image no longer equal
    assert np.ptp(spread, axis=1).max() > 5 and np.ptp(spread, axis=1).max() <= 2 * 0.1 * 100 + 1e-3
    images, _ = augment_batch(grey, mask, seed, **{**photometric, "noise": 4.0})
    within = images.numpy().std(axis=(1, 2, 3))
    assert within.max() > 1 and within.max() < 4.5  # sensor noise of up to 4 grey levels
    stripes = tf.tile(tf.constant([0.0, 200.0])[None, None, :, None], [16, 32, 16, 3])
    images, _ = augment_batch(
        stripes, mask, seed, **photometric, blur_probability=1.0, max_blur_sigma=1.5, max_rotate=0, max_scale=0
    )
    assert images.numpy().std(axis=(1, 2, 3)).max() < 99  # a blur lowers the contrast of one-pixel stripes


def test_augmentation_presets_reach_the_training_batches(synthetic_dir, tmp_path):
    import train
    from training.setup import make_datasets

    batches = {}
    for preset in ("none", "basic", "radiometric", "aerial"):
        config = train.parse_args(
            ["--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--augment", preset,
             "--image-size", "64", "--batch-size", "32"]
        )  # fmt: skip
        train_ds = make_datasets(config, "buildings/synthetic", tmp_path / preset)[0]
        images, masks = (tensor.numpy() for tensor in next(iter(train_ds)))
        batches[preset] = images, masks
    assert not np.array_equal(batches["none"][1], batches["basic"][1])  # basic moves the crops
    # radiometric has basic's geometry (the same masks for the same seed) and twice its brightness range
    assert np.array_equal(batches["radiometric"][1], batches["basic"][1])
    assert not np.allclose(batches["radiometric"][0], batches["basic"][0])
    spread = {name: images.mean(axis=(1, 2, 3)).std() for name, (images, _) in batches.items()}
    assert spread["radiometric"] > 1.25 * spread["basic"]
    assert not np.array_equal(batches["aerial"][1], batches["basic"][1])  # aerial scales further


def test_model_seed_moves_the_initial_weights_and_leaves_the_data(synthetic_dir, tmp_path):
    import keras

    import train
    from training.setup import make_datasets, seed_model, start_tensorflow

    def start(*seeds):
        config = train.parse_args(
            ["--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--image-size", "64", "--batch-size", "4",
             *seeds]
        )  # fmt: skip
        start_tensorflow(config)
        train_ds = make_datasets(config, "buildings/synthetic", tmp_path / "_".join(seeds or ["none"]))[0]
        seed_model(config)
        layer = keras.layers.Dense(8)
        layer.build((None, 16))
        return next(iter(train_ds))[0].numpy(), layer.kernel.numpy()

    data, weights = start("--seed", "0")
    same_data, other_weights = start("--seed", "0", "--model-seed", "5")
    other_data, same_weights = start("--seed", "3", "--model-seed", "5")
    np.testing.assert_array_equal(same_data, data)  # the crops follow --seed alone
    assert not np.allclose(other_data, data)
    np.testing.assert_array_equal(same_weights, other_weights)  # the start follows --model-seed alone
    assert not np.allclose(other_weights, weights)
    assert train.number_problems(train.parse_args(["--model-seed", "-2"])) == [
        "--model-seed -2: must be at least 0 (or -1: the initial weights follow --seed)"
    ]


def test_train_dataset_shapes_and_determinism():
    images = [synthetic_scene(s, size=96) for s in range(3)]
    encoded = tf.data.Dataset.from_tensor_slices(
        {
            "image": [readers.encode_png(i) for i, _ in images],
            "mask": [readers.encode_png(m[..., None]) for _, m in images],
        }
    )
    first = next(iter(train_dataset(encoded, size=64, batch_size=4, seed=5)))
    second = next(iter(train_dataset(encoded, size=64, batch_size=4, seed=5)))
    other = next(iter(train_dataset(encoded, size=64, batch_size=4, seed=6)))
    assert first[0].shape == (4, 64, 64, 3) and first[1].shape == (4, 64, 64, 1)
    assert first[0].dtype == tf.float32 and set(np.unique(first[1])) <= {0.0, 1.0}
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.array_equal(first[0], other[0])


def test_small_images_are_padded_up_to_the_crop():
    image, mask = synthetic_scene(1, size=40)
    encoded = tf.data.Dataset.from_tensor_slices(
        {"image": [readers.encode_png(image)], "mask": [readers.encode_png(mask[..., None])]}
    )
    batch = next(iter(train_dataset(encoded, size=64, batch_size=2, augment_data=False)))
    assert batch[0].shape == (2, 64, 64, 3)


def test_eval_tiles_cover_every_pixel_once():
    image = tf.constant(np.random.RandomState(0).randint(0, 255, (70, 100, 3)), tf.uint8)
    mask = tf.constant(np.random.RandomState(1).randint(0, 2, (70, 100, 1)), tf.uint8)
    tiles, masks, weights = tile_with_weights(image, mask, 32)
    assert tiles.shape == (3 * 4, 32, 32, 3)
    assert weights.numpy().sum() == 70 * 100
    assert masks.numpy().sum() == mask.numpy().sum()


def test_eval_dataset_on_sample_counts_real_pixels(sample_builder):
    examples = sample_builder.as_dataset(
        split="test", decoders={"image": tfds.decode.SkipDecoding(), "mask": tfds.decode.SkipDecoding()}
    )
    total = sum(float(w.numpy().sum()) for _, _, w in eval_dataset(examples, size=256, batch_size=8))
    assert total == 3 * 1479 * 2149 + 2 * 406 * 438
    image, _ = decode(next(iter(examples)))
    assert image.dtype == tf.uint8


def test_load_split_builds_synthetic_on_demand(tmp_path, monkeypatch):
    from data.buildings import buildings_dataset_builder

    monkeypatch.setattr(buildings_dataset_builder, "SYNTHETIC_SPLITS", {"train": 3, "validation": 2, "test": 1})
    examples = load_split("buildings/synthetic", "validation", data_dir=str(tmp_path))
    assert len(list(examples)) == 2


def test_held_out_places_leave_a_training_split_of_known_size_kept_decoded_with_the_same_batches(synthetic_dir):
    """With --holdout / --folds the training examples are filtered by file name; their count is still known to
    tf.data, so a split of the sample's size is decoded once, not once per crop, and the batches are the same."""
    import types
    from pathlib import Path

    from data.groups import DEFAULT_GROUP_PATTERN
    from data.pipeline import keeps_decoded
    from data.splits import counted, split_examples

    config = types.SimpleNamespace(data_dir=synthetic_dir, manual_dir="", holdout="synthetic_validation", folds=0,
                                   fold=0, group_pattern=DEFAULT_GROUP_PATTERN, train_on="all", bands="",
                                   encoder="effnet-lite0")  # fmt: skip
    train, _, heldout, _, counts = split_examples(config, "buildings/synthetic", Path(synthetic_dir))
    assert counts == [14, 0, 4]  # 12 train + 2 test scenes train; the 4 validation scenes are the held-out place
    assert int(train.cardinality()) == 14 and keeps_decoded(train)
    assert sum(1 for _ in train) == 14
    by_default = train_dataset(train, size=64, batch_size=4, seed=5, crops_per_image=1, augmentation="flips")
    from_bytes = train_dataset(train, size=64, batch_size=4, seed=5, crops_per_image=1, augmentation="flips",
                               cache_decoded=False)  # fmt: skip
    for (image, mask), (image2, mask2) in zip(by_default.take(5), from_bytes.take(5)):
        assert np.array_equal(image.numpy(), image2.numpy()) and np.array_equal(mask.numpy(), mask2.numpy())
    with pytest.raises(tf.errors.FailedPreconditionError, match="expected to contain 3 elements"):  # a wrong count
        sum(1 for _ in counted(heldout, 3))
