"""Build the `buildings` TFDS dataset.

    python -m data.build --config kaggle --manual-dir ~/Downloads/buildings   # zip or folder
    python -m data.build --config synthetic
"""

import argparse

import tensorflow_datasets as tfds

import data.buildings  # noqa: F401  (registers the builder)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=["kaggle", "synthetic"], default="kaggle")
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default ~/tensorflow_datasets)")
    parser.add_argument("--manual-dir", default=None, help="folder holding the Kaggle zip or extracted folder")
    args = parser.parse_args(argv)
    builder = tfds.builder(f"buildings/{args.config}", data_dir=args.data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir))
    for split, info in builder.info.splits.items():
        print(f"{split:<11} {info.num_examples:>6} examples")
    print(builder.data_dir)


if __name__ == "__main__":
    main()
