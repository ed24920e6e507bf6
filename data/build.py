"""Build the `buildings` TFDS dataset.

python -m data.build --config kaggle --manual-dir ~/Downloads/buildings   # zip or folder
python -m data.build --config synthetic
python -m data.build --config polygons --manual-dir ../shared/data/kampala_chips --data-dir ~/.cache/kampala_tfds
"""

import argparse
import sys

from data.pipeline import DatasetBuildError, prepare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=["kaggle", "synthetic", "polygons"], default="kaggle")
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default ~/tensorflow_datasets)")
    parser.add_argument("--manual-dir", default=None, help="the Kaggle zip or its folder; chips or scenes and polygons")
    parser.add_argument("--verbose", action="store_true", help="print the full traceback of a failed build")
    args = parser.parse_args(argv)
    try:
        builder = prepare(f"buildings/{args.config}", data_dir=args.data_dir, manual_dir=args.manual_dir)
    except DatasetBuildError as error:
        if args.verbose:
            raise
        print(f"data.build: {error}\n(the full traceback: add --verbose)", file=sys.stderr)
        raise SystemExit(2) from None
    for split, info in builder.info.splits.items():
        print(f"{split:<11} {info.num_examples:>6} examples")
    print(builder.data_dir)


if __name__ == "__main__":
    main()
