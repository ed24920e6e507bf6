"""TFDS builder for building segmentation: the Kaggle "buildings-dataset" and a synthetic set."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from data.buildings import readers
from data.synthetic import synthetic_scene
from data.targets import instance_ids

# examples per split of the synthetic config, and the scene size
SYNTHETIC_SPLITS = {"train": 600, "validation": 64, "test": 64}
SYNTHETIC_SIZE = 256
_SPLIT_SEED_OFFSET = {"train": 0, "validation": 1_000_000, "test": 2_000_000}


@dataclasses.dataclass
class BuildingsConfig(tfds.core.BuilderConfig):
    """kind: "kaggle" (manual download) or "synthetic"; validation_fraction for kaggle."""

    kind: str = "kaggle"
    validation_fraction: float = 0.05


class Builder(tfds.core.GeneratorBasedBuilder):
    """Aerial RGB images with binary building masks."""

    VERSION = tfds.core.Version("1.1.0")  # the polygons config (added later) changes no example of the others
    RELEASE_NOTES = {
        "1.0.0": "Initial release: kaggle and synthetic configs.",
        "1.1.0": "instances: each mask's 4-connected components numbered (uint16 PNG), for the separation targets.",
    }
    BUILDER_CONFIGS = [
        BuildingsConfig(
            name="kaggle", description="Kaggle 'buildings-dataset' (hyyyrwang), manual download.", kind="kaggle"
        ),
        BuildingsConfig(name="synthetic", description="Procedural aerial-like scenes, no download.", kind="synthetic"),
        BuildingsConfig(
            name="polygons",
            description="Building polygons (GeoJSON, GeoPackage, ...) over web-map chips (fAIr / RAMP layout) or "
            "GeoTIFF / VRT scenes cut into windows (every band kept); by --manual-dir.",
            kind="polygons",
            version=tfds.core.Version("1.2.0"),
            release_notes={"1.2.0": "image: every band of a scene (uint8 array), not only RGB."},
        ),
    ]
    DEFAULT_CONFIG_NAME = "synthetic"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    The Kaggle dataset needs a login, so download it yourself:
      1. Sign in at https://www.kaggle.com and open the dataset "buildings-dataset" by hyyyrwang.
      2. Click Download; you get a zip (e.g. archive.zip).
      3. Put the zip, or the folder you extracted from it, into the manual folder:
         ~/tensorflow_datasets/downloads/manual/  (or pass --manual-dir / manual_dir=...).
         Anything containing building_data/src, building_data/label and
         building_data/test/{src,label} works.
      4. Build: python -m data.build --config kaggle   (or: tfds build data/buildings --config kaggle)
    """

    def _info(self):
        if self.builder_config.kind == "polygons":  # scenes may have more bands than PNG holds (RGB + NIR ...)
            image = tfds.features.Tensor(shape=(None, None, None), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB)
        else:
            image = tfds.features.Image(shape=(None, None, 3), encoding_format="png")
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": image,
                    "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                    "instances": tfds.features.Image(shape=(None, None, 1), dtype=np.uint16, encoding_format="png"),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "mask"),
            homepage="https://www.kaggle.com/datasets/hyyyrwang/buildings-dataset",
        )

    def _split_generators(self, dl_manager):
        if self.builder_config.kind == "synthetic":
            return {split: self._generate_examples(split=split) for split in SYNTHETIC_SPLITS}
        if self.builder_config.kind == "polygons":
            return self._polygon_splits(dl_manager.manual_dir)
        source = readers.Source(dl_manager.manual_dir)
        # pair everything first, so that all pairing problems are reported before any work
        pairs = readers.pair_files(source, "src", "label")
        test_pairs = readers.pair_files(source, "test/src", "test/label")
        chosen = readers.validation_stems([p[0] for p in pairs], self.builder_config.validation_fraction)
        validation = [p for p in pairs if p[0] in chosen]
        train = [p for p in pairs if p[0] not in chosen]
        return {
            "train": self._generate_examples(split="train", source=source, pairs=train),
            "validation": self._generate_examples(split="validation", source=source, pairs=validation),
            "test": self._generate_examples(split="test", source=source, pairs=test_pairs),
        }

    def _polygon_splits(self, manual_dir):
        """Chips or scene windows with their polygons burnt in; a hash of each name picks the validation ones.

        Each split reads only its own examples, one at a time, so a large scene builds in bounded memory.
        """
        from data.buildings import polygon_sources

        kind, folder = polygon_sources.find_layout(manual_dir)
        names = polygon_sources.example_names(kind, folder)
        if len(names) < 2:
            raise ValueError(f"{folder} holds {len(names)} chip(s) or window(s); training needs at least 2.")
        chosen = readers.validation_stems(names, self.builder_config.validation_fraction)  # never none
        examples = polygon_sources.chip_examples if kind == "chips" else polygon_sources.scene_examples
        return {
            "train": self._polygon_examples(examples(folder, keep=lambda name: name not in chosen)),
            "validation": self._polygon_examples(examples(folder, keep=lambda name: name in chosen)),
        }  # no test split: --holdout / --folds hold out whole places

    def _polygon_examples(self, examples):
        for name, image, mask, ids in examples:
            yield name, {"image": image, "mask": mask, "instances": ids, "file_name": name}

    def _generate_examples(self, *, split, source=None, pairs=None):
        """Kaggle pairs decoded from the source, or synthetic scenes of ``split``."""
        if source is not None:
            for stem, image_path, mask_path in pairs:
                image, mask = readers.decode_pair(source, image_path, mask_path)
                yield (
                    stem,
                    {
                        "image": readers.encode_png(image),
                        "mask": readers.encode_png(mask),
                        "instances": instance_ids(mask),
                        "file_name": image_path.split("/")[-1],
                    },
                )
            return
        for index in range(SYNTHETIC_SPLITS[split]):
            image, mask = synthetic_scene(_SPLIT_SEED_OFFSET[split] + index, size=SYNTHETIC_SIZE)
            name = f"synthetic_{split}_{index:05d}"
            mask = mask[..., None].astype(np.uint8)
            yield name, {"image": image, "mask": mask, "instances": instance_ids(mask), "file_name": f"{name}.png"}
