"""Would separation be kept? Building F1 with and without it, on the calibration images and the held-out places.

    python -m experiments.separation results/pretrained/dubai_t8/lite0stdsep_s0 ...   (run folders with model.keras)

For each run of a model with separation channels: its kept weights (model.keras, with their
calibrated threshold), the choice train.py makes on its first 16 training images
(``inference.heldout.choose_separation``), and the held-out building F1 both ways from its
results.json (same weights, paired). Nothing is written.
"""

import argparse
import json
from pathlib import Path


def main(argv=None):
    from data.splits import run_examples
    from inference.heldout import choose_separation
    from inference.loading import load_segmenter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| run | training F1 separated | training F1 not | kept | held-out F1 separated | held-out F1 not |")
    print("|---|---|---|---|---|---|")
    for run_dir in args.runs:
        results = json.loads((run_dir / "results.json").read_text())
        _, train_examples, _ = run_examples(run_dir)
        model, fixed = load_segmenter(run_dir)
        choice = choose_separation(model, train_examples, fixed)
        separated = results.get("heldout_separated_building_f1", results.get("heldout_building_f1"))
        plain = results.get("heldout_unseparated_building_f1")
        print(
            f"| {run_dir.parent.name}/{run_dir.name} | {choice['building_f1_separated']:.3f} | "
            f"{choice['building_f1_unseparated']:.3f} | {'yes' if choice['separate'] else 'no'} | "
            f"{separated:.3f} | {plain:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
