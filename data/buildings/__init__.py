"""The `buildings` TFDS dataset; importing this package registers it with TFDS."""

from data.buildings.buildings_dataset_builder import Builder

__all__ = ["Builder"]
