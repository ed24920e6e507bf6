"""A study's runs, place by place, with paired comparisons: ``python -m experiments.study results/STUDY``.

A study folder holds one folder per held-out place, and in it one folder per run named
``<recipe>_s<seed>``: the small files train.py writes (results.json, config.json, history.csv,
heldout_metrics.json), or a predict.py evaluation's metrics.json. Runs of two recipes with the
same place and seed are paired (same held-out place, seed and data order), so each comparison
is the paired t-interval of their differences; a recipe pair without two shared runs falls back
to Welch's interval.

A folder may also hold runs side by side, named ``<recipe>_f<fold>_s<seed>`` (a fold of a group
split, as compare.py --grid names them, its ``grid_`` prefix dropped): their place is the groups
the fold held out. ``--by-place`` splits every run into the places (groups) it was scored on,
from the per-scene counts in its heldout_metrics.json, so a fold holding out two places counts
as two.

    python -m experiments.study results/pretrained --baseline b0rand
    python -m experiments.study results/defaults results/questions --by-place \
        --recipes b0rand,unet_effnet-lite0 --baseline b0rand

A Markdown file keeps a study's output between two markers, the first holding the arguments; ``--readme FILE``
rewrites that block with what the same arguments print (tests/test_readme_results.py checks the README's):

    <!-- python -m experiments.study results/recipe/baseline results/questions --wide ...: begin -->
    ...
    <!-- experiments.study: end -->
"""

import argparse
import json
import math
import re
import shlex
import sys
from pathlib import Path

import numpy as np

from data.groups import DEFAULT_GROUP_PATTERN, group_of
from experiments.aggregate import is_number, paired_interval
from inference.evaluation import COUNTS

SCORES = (("heldout_iou", "pixel IoU"), ("heldout_building_f1", "building F1"))
RUN_NAME = re.compile(r"^(?P<recipe>.+)_s(?P<seed>\d+)$")
TOOL = "experiments.study"
FOLD_RUN_NAME = re.compile(r"^(?:grid_)?(?P<recipe>.+)_f(?P<fold>\d+)_s(?P<seed>\d+)$")


def load_study(*folders, by_place=False, recipes=None, prefixes=None):
    """{(place, recipe): {seed: results}} of every finished run under ``folders``.

    A run is a train.py run (its results.json) or a predict.py evaluation (its metrics.json,
    whose overall scores count as the held-out ones), in ``<place>/<recipe>_s<seed>/`` or
    ``<recipe>_f<fold>_s<seed>/`` (place: the groups the fold held out). ``by_place``: each
    train.py run counts once per place it was scored on (``place_scores``). ``recipes``: keep
    only these. A damaged or partial run is read through ``training.results``: named, skipped and
    counted in a closing note, as compare.py does. ``prefixes``: {folder: prefix} put before the recipe
    names of that folder's runs (two folders with runs of the same names, e.g. one study under two recipes).
    """
    from training.results import skipped_note

    runs, skipped = {}, 0
    for folder in folders:
        prefix = (prefixes or {}).get(Path(folder), "")
        for place, recipe, seed, path, data in _run_files(Path(folder)):
            recipe = prefix + recipe
            if recipes is not None and recipe not in recipes:
                continue
            if data is None:
                skipped += 1
                continue
            if path.name not in ("results.json", "metrics.json"):  # a yardstick: its own scores per place
                per_place = {p: v for p, v in data.items() if p != "all"} if by_place else {place: data["all"]}
            elif by_place and path.name == "results.json":
                per_place = place_scores(path.parent)
            else:
                per_place = {place: data}
            if per_place is None:
                skipped += 1
                continue
            for name, scores in per_place.items():
                runs.setdefault((name, recipe), {})[seed] = scores
    if skipped:
        print(skipped_note("experiments.study", skipped), file=sys.stderr)
    return runs


def _run_files(folder):
    """(place, recipe, seed, score file, its scores or None when damaged) of each run in either layout."""
    from training.results import read_run, read_yardstick

    for path in sorted([*folder.glob("*/*/results.json"), *folder.glob("*/*/metrics.json")]):
        match = RUN_NAME.match(path.parent.name)
        if match and not FOLD_RUN_NAME.match(path.parent.parent.name):
            yield path.parent.parent.name, match["recipe"], int(match["seed"]), path, read_run(path, tool=TOOL)
    for path in sorted(folder.glob("*.json")):  # a yardstick's runs (../shared/baselines): <recipe>_f<F>_s<S>.json
        match = FOLD_RUN_NAME.match(path.stem)
        if match:
            scores, problem = read_yardstick(path)
            if problem:
                print(f"{TOOL}: skipped {path}: {problem}", file=sys.stderr)
            places = sorted(p for p in scores or {} if p != "all")
            yield "+".join(places), match["recipe"], int(match["seed"]), path, scores
    for path in sorted(folder.glob("*/results.json")):
        match = FOLD_RUN_NAME.match(path.parent.name)
        if match:
            data = read_run(path, tool=TOOL)
            groups = (data or {}).get("heldout_groups") or [f"fold {match['fold']}"]
            yield "+".join(groups), match["recipe"], int(match["seed"]), path, data


def place_scores(run):
    """{place: {"heldout_iou", "heldout_building_f1"}} of one run, from its heldout_metrics.json's per-scene counts.

    A place's scores pool its scenes as the run's own overall scores do: pixel IoU from the summed
    pixel counts, building F1 from the summed matched / missed / extra buildings.
    """
    metrics_file = Path(run) / "heldout_metrics.json"
    if not metrics_file.exists():
        raise SystemExit(f"experiments.study: {metrics_file} is missing, so {run} cannot be split by place")
    config_file = Path(run) / "config.json"
    try:
        config = json.loads(config_file.read_text()) if config_file.exists() else {}
        pattern = config.get("group_pattern") or DEFAULT_GROUP_PATTERN
        counts = {}
        for scene in json.loads(metrics_file.read_text())["scenes"]:
            total = counts.setdefault(group_of(scene["scene"], pattern), dict.fromkeys(COUNTS, 0.0))
            for key in COUNTS:
                total[key] += float(scene[key])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        print(f"{TOOL}: skipped {run}: its heldout_metrics.json or config.json is damaged ({type(error).__name__})",
              file=sys.stderr)  # fmt: skip
        return None
    return {place: _scores_from_counts(c) for place, c in counts.items()}


def _scores_from_counts(c):
    from common.scores import scores_from_counts
    from inference.evaluation import building_scores

    return {
        "heldout_iou": scores_from_counts(c["tp"], c["fp"], c["fn"])["iou"],
        "heldout_building_f1": building_scores(c["building_tp"], c["building_fp"], c["building_fn"])["building_f1"],
    }


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


def wide_table(runs, recipes, names=None):
    """Markdown: one row per place with each of ``recipes`` side by side (mean ± sd of each score over seeds), and
    a last row over all places every recipe was scored on (per seed, the mean over those places); ``names``: the
    recipes' column names."""
    places = sorted({place for place, recipe in runs if recipe in recipes})
    header = [f"{name}: {label}" for name in (names or recipes) for _, label in SCORES]
    lines = ["| place | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for place in places:
        cells = [_mean_sd([r.get(key) for r in runs.get((place, recipe), {}).values()])
                 for recipe in recipes for key, _ in SCORES]  # fmt: skip
        lines.append(f"| {place} | " + " | ".join(cells) + " |")
    shared = [p for p in places if all((p, recipe) in runs for recipe in recipes)]
    if shared:
        cells = []
        for recipe in recipes:
            seeds = set.intersection(*(set(runs[(p, recipe)]) for p in shared))
            for key, _ in SCORES:
                cells.append(_mean_sd([np.mean([runs[(p, recipe)][s].get(key) for p in shared]) for s in seeds]))
        lines.append(f"| all {len(shared)} places | " + " | ".join(cells) + " |")
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
            base_mean = float(np.mean(list(b.values())))
            ratio = f", {np.mean(list(a.values())) / base_mean:.2f}x" if base_mean > 0 else ""
            lines.append(f"{place}: {recipe} - {baseline}, {label}: {diff:+.3f}{span}{ratio} ({method})")
    return lines


def overall_lines(runs, baseline, names=None):
    """Every recipe against ``baseline`` over all the places both were scored on: per seed, the mean over the
    places of each score, paired by seed; and the place where the recipe falls furthest below. ``names``:
    {recipe: name} to print instead of the recipes' ids."""
    names = names or {}
    lines = []
    for recipe in sorted({r for _, r in runs} - {baseline}):
        places = sorted(p for p, r in runs if r == recipe and (p, baseline) in runs)
        if not places:
            continue
        for key, label in SCORES:
            seeds = set.intersection(*(set(runs[(p, recipe)]) & set(runs[(p, baseline)]) for p in places))
            a = {s: float(np.mean([runs[(p, recipe)][s][key] for p in places])) for s in sorted(seeds)}
            b = {s: float(np.mean([runs[(p, baseline)][s][key] for p in places])) for s in sorted(seeds)}
            if not a:
                continue
            diff, low, high, method = paired_interval(a, b)
            span = "" if math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
            worst = min(places, key=lambda p: np.mean([runs[(p, recipe)][s][key] - runs[(p, baseline)][s][key]
                                                       for s in seeds]))  # fmt: skip
            gap = np.mean([runs[(worst, recipe)][s][key] - runs[(worst, baseline)][s][key] for s in seeds])
            lines.append(
                f"all {len(places)} places: {names.get(recipe, recipe)} - {names.get(baseline, baseline)}, "
                f"{label}: {diff:+.3f}{span} "
                f"({np.mean(list(a.values())):.3f} vs {np.mean(list(b.values())):.3f}; {method}); "
                f"worst place {worst} {gap:+.3f}"
            )
    return lines


def study_text(argv=None):
    """What ``python -m experiments.study`` prints for ``argv``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder")
    parser.add_argument("--baseline", default="", help="the recipe the others are compared with")
    parser.add_argument("--by-place", action="store_true", help="score each run once per place it held out")
    parser.add_argument("--recipes", default="", help="comma-separated recipes to keep (default: all)")
    parser.add_argument("--wide", action="store_true",
                        help="one row per place, --recipes side by side in their order, and all places together; "
                             "with --baseline, only the comparisons over all places")  # fmt: skip
    parser.add_argument("--names", default="", help="--wide: comma-separated column names for --recipes")
    parser.add_argument("--prefix", action="append", default=[], metavar="FOLDER=PREFIX",
                        help="put PREFIX before the recipe names of FOLDER's runs (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    prefixes = {}
    for item in args.prefix:
        folder, _, prefix = item.rpartition("=")
        if not folder or not prefix or Path(folder) not in args.folders:
            parser.error(f"--prefix {item!r}: expected FOLDER=PREFIX with FOLDER one of the folders given")
        prefixes[Path(folder)] = prefix
    recipes = set(args.recipes.split(",")) if args.recipes else None
    if args.wide and not recipes:
        parser.error("--wide needs --recipes (the columns, in order)")
    runs = load_study(*args.folders, by_place=args.by_place, recipes=recipes, prefixes=prefixes)
    if not runs:
        raise SystemExit(
            f"experiments.study: no runs under {', '.join(map(str, args.folders))}"
            + (f" with recipes {args.recipes}" if recipes else "")
            + " (<place>/<recipe>_s<seed>/results.json or <recipe>_f<fold>_s<seed>/results.json)"
        )
    names = args.names.split(",") if args.names else None
    if names and len(names) != len(args.recipes.split(",")):
        parser.error(f"--names {args.names!r}: one name per recipe of --recipes {args.recipes!r}")
    parts = [wide_table(runs, args.recipes.split(","), names) if args.wide else summary_table(runs)]
    if args.baseline:
        if not args.wide:
            parts.append("\n".join(comparison_lines(runs, args.baseline)))
        if args.wide:  # Markdown bullets, by the columns' names
            named = dict(zip(args.recipes.split(","), names or []))
            parts.append("\n".join(f"- {line}" for line in overall_lines(runs, args.baseline, named)))
        elif args.by_place:
            parts.append("\n".join(overall_lines(runs, args.baseline)))
    return "\n\n".join(parts)


STUDY_BEGIN = "<!-- python -m experiments.study {args}: begin -->"
STUDY_END = "<!-- experiments.study: end -->"
STUDY_BLOCK = re.compile(
    r"<!-- python -m experiments\.study (?P<args>[^\n]+?): begin -->\n(?P<body>.*?)" + re.escape(STUDY_END), re.S
)


def study_blocks(text):
    """[(experiments.study arguments, body)] of every study block in ``text``."""
    return [(m["args"], m["body"]) for m in STUDY_BLOCK.finditer(text)]


def study_body(args):
    """A study block's body: what ``python -m experiments.study ARGS`` prints (paths from the repository's root)."""
    return study_text(shlex.split(args)) + "\n"


def update_study_block(readme, args):
    """Rewrite the block of the study ``args`` (a string, as in its marker) in ``readme``; returns whether the file
    changed."""
    readme = Path(readme)
    text = readme.read_text()
    found = [m for m in STUDY_BLOCK.finditer(text) if shlex.split(m["args"]) == shlex.split(args)]
    if not found:
        raise SystemExit(
            f"experiments.study --readme: {readme} has no block for these arguments; put these two lines where it "
            f"belongs:\n{STUDY_BEGIN.format(args=args)}\n{STUDY_END}"
        )
    new = text
    for match in reversed(found):
        new = new[: match.start("body")] + study_body(match["args"]) + new[match.end("body") :]
    if new != text:
        readme.write_text(new)
    return new != text


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--readme" in argv:  # rewrite the README block of these arguments instead of printing
        at = argv.index("--readme")
        if at + 1 >= len(argv):
            raise SystemExit("experiments.study --readme: name the Markdown file, e.g. --readme README.md")
        readme = argv[at + 1]
        args = shlex.join(argv[:at] + argv[at + 2 :])
        changed = update_study_block(readme, args)
        print(f"{readme}: the block of experiments.study {args} {'rewritten' if changed else 'already up to date'}")
        return
    print(study_text(argv))


if __name__ == "__main__":
    main()
