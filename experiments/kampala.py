"""Kampala (fAIr's chips, OSM polygons): from ImageNet on Kampala alone, the sample's model fine-tuned on
Kampala (fAIr's workflow), and the sample's model with no fine-tuning, paired by fold and seed (issue #35).

    python -m experiments.kampala            # list the runs: done, or the command still to run
    python -m experiments.kampala --run      # run what is missing, in order; a finished run is never run again
    python -m experiments.kampala --table    # pixel IoU and building F1 on the held-out chips, per fold and seed
    python -m experiments.kampala --gaps runs/kampala/kampala_separation_f0_s0   # true gaps the mask bridges
    python -m experiments.kampala --recipe lite1tta --run --folds 0   # today's default; --folds 1 beside it

Runs, seeds the outer loop:

- ``base_s<S>``: train.py's default on every place of ``../shared/data/buildings_sample`` (its own validation
  split, nothing held out), seed S: the model a mapper starts from;
- ``kampala_building_f<F>_s<S>``: train.py's default on Kampala from ImageNet, fold F of 4 spatial folds (blocks
  of zoom-19 tiles), seed S;
- ``finetuned_f<F>_s<S>``: the same from ``base_s<S>`` (``--init``, ``--freeze-encoder 1``: one epoch of the
  decoder alone, then all of it);
- ``base_s<S>`` scored as it is on the held-out chips of ``kampala_building_f<F>_s<S>`` (the same examples),
  written to ``results/kampala/base_f<F>_s<S>/results.json``;
- ``shape_f<F>_s<S>``: ``kampala_building_f<F>_s<S>``'s mask split by its shape (``--separate shape``);
- last, ``kampala_separation_f<F>_s<S>``: the ImageNet run with ``--targets building,border,contact``, paired
  with ``kampala_building_f<F>_s<S>`` (separation against the same recipe's patches).

Small files of every run go to ``results/kampala/<run>/``. Scores are against the true polygons: building F1
counts OSM buildings, and pixels without data (alpha 0) count nowhere.

``--recipe`` picks the recipe every run trains with: ``previous`` (the default before 2026-12-03, passed in full:
the committed runs in ``results/kampala``) or ``lite1tta`` (train.py's defaults since 2026-12-04, no recipe option
passed: ``results/kampala_lite1tta``). Its base models are the runs ``experiments.recipe_ablation`` lists as
``allplaces_lite1tta_s<S>`` (the same command), so they are not trained twice.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from inference import defaults

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "results" / "kampala"
FOLDS = (0, 1)
SEEDS = (0, 1, 2)
# recipe -> where its small files go; its train.py options are those experiments.recipe_ablation's all-places
# runs of the same name pass (ALL_PLACES: "previous" the recipe before 2026-12-03 in full, "lite1tta" none)
RECIPES = {"previous": RESULTS, "lite1tta": ROOT / "results" / "kampala_lite1tta"}


def base_run(recipe, seed, work):
    """(result file, run folder) of the base model of ``seed``: the sample's every place, the recipe's options.
    Today's default's base is experiments.recipe_ablation's all-places run of the same command."""
    from experiments.recipe_ablation import RESULTS as RECIPE_RESULTS

    if recipe == "lite1tta":
        return (RECIPE_RESULTS / "allplaces" / f"lite1tta_s{seed}" / "results.json",
                ROOT / "runs" / "recipe" / "allplaces" / f"lite1tta_s{seed}")  # fmt: skip
    return RECIPES[recipe] / f"base_s{seed}" / "results.json", Path(work) / f"base_s{seed}"


def planned(work, sample_dir, kampala_dir, recipe="previous", folds=FOLDS):
    """(name, result file, command or None (a scoring), run folder) of every run of ``recipe`` on ``folds``, in
    order (the base models whatever the folds: run them once before splitting the folds between processes)."""
    from experiments.recipe_ablation import ALL_PLACES

    options, results = ALL_PLACES[recipe], RECIPES[recipe]
    sample = ["--dataset", "buildings/kaggle", "--manual-dir", str(SHARED / "buildings_sample"),
              "--data-dir", str(sample_dir), *options]  # fmt: skip
    kampala = ["--dataset", "buildings/polygons", "--manual-dir", str(SHARED / "kampala_chips"),
               "--data-dir", str(kampala_dir), "--folds", "4", *options]  # fmt: skip
    runs = []
    for seed in SEEDS:
        result, base = base_run(recipe, seed, work)
        command = ["train.py", *sample, "--seed", str(seed), "--tracker", "local", "--run-dir", str(base)]
        runs.append((f"base_s{seed}", result, command, base))
        for fold in folds:
            common = [*kampala, "--fold", str(fold), "--seed", str(seed), "--tracker", "local"]
            starts = {f"kampala_building_f{fold}_s{seed}": [],
                      f"finetuned_f{fold}_s{seed}": ["--init", str(base), "--freeze-encoder", "1"]}  # fmt: skip
            for name, extra in starts.items():
                run = Path(work) / name
                command = ["train.py", *common, *extra, "--run-dir", str(run)]
                runs.append((name, results / name / "results.json", command, run))
            name, like = f"base_f{fold}_s{seed}", Path(work) / f"kampala_building_f{fold}_s{seed}"
            runs.append((name, results / name / "results.json", None, (base, like)))
            name = f"shape_f{fold}_s{seed}"  # the building run's mask split by its shape (predict.py --separate shape)
            runs.append((name, results / name / "results.json", None, (like, like, defaults.SPLIT_DEPTH)))
    for seed in SEEDS:  # separation, paired with kampala_building_f<F>_s<S>: the same recipe learning the outlines
        for fold in folds:
            name = f"kampala_separation_f{fold}_s{seed}"
            run = Path(work) / name
            command = ["train.py", *kampala, "--fold", str(fold), "--seed", str(seed), "--tracker", "local",
                       "--targets", "building,border,contact", "--run-dir", str(run)]  # fmt: skip
            runs.append((name, results / name / "results.json", command, run))
    return runs


def score_as_is(model_run, like_run, depth=None):
    """results.json-like scores of ``model_run``'s kept model, as predict.py applies it, on the held-out examples
    of ``like_run`` (the same split, against its labels: true polygons, no-data left out); ``depth``: its mask
    split by its shape at that depth (``predict.py --separate shape --split-depth``); the 8 flips and turns averaged
    if ``model_run`` was scored with them (train.py --tta), as predict.py does by default."""
    from data.splits import run_examples
    from inference.heldout import score_model
    from inference.loading import load_segmenter, scored_with_tta
    from training.setup import marks_nodata

    config, _, heldout = run_examples(like_run)
    model, fixed = load_segmenter(model_run)
    polygons = marks_nodata(config["dataset"])
    tta = scored_with_tta(model_run)  # as predict.py applies the model: with the 8 flips and turns if its run was
    scores = score_model(model, heldout, fixed, separate=depth is not None, depth=depth, polygons=polygons, tta=tta)
    overall = scores["overall"]
    return {"model": str(model_run), "scored_like": str(like_run), "seed": config["seed"], "fold": config["fold"],
            "split_depth": depth, "tta": tta,
            **{f"heldout_{key}": overall[key] for key in ("iou", "f1", "building_f1", "building_precision",
                                                          "building_recall")}}  # fmt: skip


def gaps_bridged(run_dir):
    """(gap pixels the kept model's mask covers, gap pixels) over a run's held-out chips: the background pixels
    between neighbouring true buildings that the contact target marks, from the true polygons' ids (no-data left
    out), the mask cut as train.py scored it. A mask that covers most gaps leaves separation nothing to cut."""
    from experiments.predicted import predicted_scenes
    from experiments.separation_bound import gap_counts
    from inference.heldout import THRESHOLD

    covered = total = 0
    for scene in predicted_scenes(run_dir, polygons=True):
        found, gaps = gap_counts(scene.probabilities >= THRESHOLD, scene.truth, scene.ids, scene.valid)
        covered, total = covered + found, total + gaps
    return covered, total


STARTS = {"kampala_building": "ImageNet, Kampala alone", "finetuned": "sample's model fine-tuned",
          "base": "sample's model as it is"}  # fmt: skip
SEPARATIONS = {"kampala_building": "patches (building only)", "shape": "split by shape (--separate shape)",
               "kampala_separation": "separation channels (building,border,contact)"}  # fmt: skip


def table(kinds, results=RESULTS):
    """Markdown rows: each fold and seed, the runs of ``kinds`` ({name prefix: column}) in ``results`` side by side
    as pixel IoU / building F1, then the means over the pairs where all of them finished."""
    rows = ["| fold | seed | " + " | ".join(kinds.values()) + " |", "|---|---|" + "---|" * len(kinds)]
    complete = []
    for seed in SEEDS:
        for fold in FOLDS:
            found = {}
            for kind in kinds:
                path = results / f"{kind}_f{fold}_s{seed}" / "results.json"
                if path.exists():
                    result = json.loads(path.read_text())
                    found[kind] = (result["heldout_iou"], result["heldout_building_f1"])
            cells = [f"{found[k][0]:.3f} / {found[k][1]:.3f}" if k in found else "" for k in kinds]
            rows.append(f"| {fold} | {seed} | " + " | ".join(cells) + " |")
            if len(found) == len(kinds):
                complete.append([found[k] for k in kinds])
    if complete:
        means = [[sum(pairs[i][j] for pairs in complete) / len(complete) for j in (0, 1)] for i in range(len(kinds))]
        rows.append(f"| mean of {len(complete)} | | " + " | ".join(f"{m[0]:.3f} / {m[1]:.3f}" for m in means) + " |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run the missing runs, in order")
    parser.add_argument("--table", action="store_true", help="print the table of the committed results")
    parser.add_argument("--gaps", nargs="+", type=Path, metavar="RUN",
                        help="the share of true gaps between neighbours the mask of each run bridges")  # fmt: skip
    parser.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="previous",
        help="the recipe every run trains with (default: %(default)s, the committed runs)",
    )
    parser.add_argument(
        "--folds", default=",".join(map(str, FOLDS)), help="comma-separated folds to list or run (default: %(default)s)"
    )
    parser.add_argument("--work", type=Path, help="where train.py runs write (default: runs/kampala, "
                        "runs/kampala_<recipe> for another recipe)")  # fmt: skip
    parser.add_argument("--sample-data-dir", type=Path, default=Path.home() / ".cache" / "buildings_sample_tfds")
    parser.add_argument("--kampala-data-dir", type=Path, default=Path.home() / ".cache" / "kampala_tfds")
    args = parser.parse_args(argv)
    if args.table:
        print(table(STARTS, RECIPES[args.recipe]), table(SEPARATIONS, RECIPES[args.recipe]), sep="\n\n")
        return
    if args.gaps:
        for run in args.gaps:
            covered, total = gaps_bridged(run)
            print(f"{run.name}: the mask covers {covered} of {total} gap pixels ({covered / max(total, 1):.0%})")
        return
    from experiments.collect import comma_integers, copy_small_files, resume_args

    folds = comma_integers(args.folds, "experiments.kampala: --folds", "0,1")
    if set(folds) - set(FOLDS):
        raise SystemExit(f"experiments.kampala: --folds {args.folds!r}: the study's folds are {FOLDS}")
    work = args.work or ROOT / "runs" / ("kampala" if args.recipe == "previous" else f"kampala_{args.recipe}")
    for name, result, command, run in planned(work, args.sample_data_dir, args.kampala_data_dir, args.recipe, folds):
        if result.exists():
            print(f"done     {name}")
            continue
        if not args.run:
            print(f"missing  {name}: " + (" ".join(command) if command else f"scored: {run[0]} on {run[1]}"))
            continue
        print(f"running  {name}", flush=True)
        if command is None:
            result.parent.mkdir(parents=True, exist_ok=True)
            result.write_text(json.dumps(score_as_is(*run), indent=2))
            continue
        command = [*command, *resume_args(run)]  # a killed run continues from its last epoch
        if subprocess.run([sys.executable, *command], cwd=ROOT).returncode != 0:
            raise SystemExit(f"experiments.kampala: {name} failed; its output is above")
        copy_small_files(run, result.parent)


if __name__ == "__main__":
    main()
