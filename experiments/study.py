"""A study's runs, place by place, with paired comparisons: ``python -m experiments.study results/STUDY``.

A study folder holds one folder per held-out place, and in it one folder per run named
``<recipe>_s<seed>``: the small files train.py writes (results.json, config.json, history.csv,
heldout_metrics.json), or a predict.py evaluation's metrics.json. Runs of two recipes with the
same place and seed are paired (same held-out place, seed and data order), so each comparison
is the paired t-interval of their differences; a recipe pair without two shared runs falls back
to Welch's interval.

    python -m experiments.study results/pretrained --baseline b0rand
"""

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np

from experiments.aggregate import is_number, paired_interval

SCORES = (("heldout_iou", "pixel IoU"), ("heldout_building_f1", "building F1"))
RUN_NAME = re.compile(r"^(?P<recipe>.+)_s(?P<seed>\d+)$")


def load_study(folder):
    """{(place, recipe): {seed: results}} of every finished run under ``folder``.

    A run is a train.py run (its results.json) or a predict.py evaluation (its metrics.json,
    whose overall scores count as the held-out ones).
    """
    runs = {}
    for path in sorted([*Path(folder).glob("*/*/results.json"), *Path(folder).glob("*/*/metrics.json")]):
        match = RUN_NAME.match(path.parent.name)
        if not match:
            continue
        data = json.loads(path.read_text())
        if path.name == "metrics.json":
            data = {f"heldout_{key}": value for key, value in data["overall"].items()}
        runs.setdefault((path.parent.parent.name, match["recipe"]), {})[int(match["seed"])] = data
    return runs


def _mean_sd(values):
    values = [v for v in values if is_number(v)]
    if not values:
        return "n/a"
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd}"


def summary_table(runs, extra=("heldout_unseparated_building_f1",)):
    """Markdown: one row per (place, recipe): runs, then mean ± sd of each score."""
    columns = [*SCORES, *((key, key.removeprefix("heldout_").replace("_", " ")) for key in extra)]
    lines = ["| place | recipe | runs | " + " | ".join(label for _, label in columns) + " |"]
    lines.append("|---|---|---|" + "---|" * len(columns))
    for (place, recipe), seeds in sorted(runs.items()):
        cells = [_mean_sd([r.get(key) for r in seeds.values()]) for key, _ in columns]
        lines.append(f"| {place} | {recipe} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_lines(runs, baseline):
    """Every recipe against ``baseline`` on each place and each score, paired by seed."""
    lines = []
    for (place, recipe), seeds in sorted(runs.items()):
        if recipe == baseline or (place, baseline) not in runs:
            continue
        base = runs[(place, baseline)]
        for key, label in SCORES:
            a = {s: r[key] for s, r in seeds.items() if is_number(r.get(key))}
            b = {s: r[key] for s, r in base.items() if is_number(r.get(key))}
            if not a or not b:
                continue
            diff, low, high, method = paired_interval(a, b)
            span = "" if math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
            lines.append(f"{place}: {recipe} - {baseline}, {label}: {diff:+.3f}{span} ({method})")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--baseline", default="", help="the recipe the others are compared with")
    args = parser.parse_args(argv)
    runs = load_study(args.folder)
    if not runs:
        raise SystemExit(f"experiments.study: no runs under {args.folder} (<place>/<recipe>_s<seed>/results.json)")
    print(summary_table(runs))
    if args.baseline:
        print()
        print("\n".join(comparison_lines(runs, args.baseline)))


if __name__ == "__main__":
    main()
