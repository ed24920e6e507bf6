"""TFDS DatasetBuilderTestCase for the configs of the `buildings` dataset."""

from unittest import mock

import tensorflow_datasets as tfds

from data.buildings import buildings_dataset_builder


class BuildingsKaggleTest(tfds.testing.DatasetBuilderTestCase):
    """Builds the kaggle config from dummy_data/ (PNG, JPEG, TIFF images; grey, 0/1 and RGB masks)."""

    DATASET_CLASS = buildings_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["kaggle"]
    SPLITS = {"train": 3, "validation": 1, "test": 2}


class BuildingsSyntheticTest(tfds.testing.DatasetBuilderTestCase):
    """Builds the synthetic config with a handful of scenes per split."""

    DATASET_CLASS = buildings_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["synthetic"]
    SPLITS = {"train": 4, "validation": 2, "test": 2}

    @classmethod
    def setUpClass(cls):
        cls._patch = mock.patch.object(buildings_dataset_builder, "SYNTHETIC_SPLITS", dict(cls.SPLITS))
        cls._patch.start()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls._patch.stop()


class BuildingsPolygonsTest(tfds.testing.DatasetBuilderTestCase):
    """Builds the polygons config from dummy_data/chips (four web-map chips and a labels.geojson)."""

    DATASET_CLASS = buildings_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["polygons"]
    SPLITS = {"train": 3, "validation": 1}


if __name__ == "__main__":
    tfds.testing.test_main()
