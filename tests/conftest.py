from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "buildings_sample"


@pytest.fixture(scope="session")
def sample_dir():
    """The real sample in ../shared (skips the test cleanly when it is absent)."""
    if not (SHARED_SAMPLE / "building_data" / "src").is_dir():
        pytest.skip(f"real sample not found at {SHARED_SAMPLE}")
    return SHARED_SAMPLE


@pytest.fixture(scope="session")
def sample_tfds(sample_dir, tmp_path_factory):
    """(data_dir, builder) of the real sample built once per test session."""
    import tensorflow_datasets as tfds

    import data.buildings  # noqa: F401

    data_dir = tmp_path_factory.mktemp("sample_tfds")
    builder = tfds.builder("buildings/kaggle", data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(sample_dir)))
    return str(data_dir), builder


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A small prepared synthetic dataset that train.py finds and does not rebuild."""
    from unittest import mock

    from data.buildings import buildings_dataset_builder
    from data.pipeline import load_split

    data_dir = tmp_path_factory.mktemp("tfds")
    with mock.patch.object(buildings_dataset_builder, "SYNTHETIC_SPLITS", {"train": 12, "validation": 4, "test": 2}):
        load_split("buildings/synthetic", "train", data_dir=str(data_dir))
    return str(data_dir)
