"""Kampala (fAIr's chips, OSM polygons): from ImageNet on Kampala alone, the sample's model fine-tuned on
Kampala (fAIr's workflow), and the sample's model with no fine-tuning, paired by fold and seed (issue #35).

    python -m experiments.kampala            # list the runs: done, or the command still to run
    python -m experiments.kampala --run      # run what is missing, in order; a finished run is never run again
    python -m experiments.kampala --table    # pixel IoU and building F1 on the held-out chips, per fold and seed
    python -m experiments.kampala --gaps runs/kampala/kampala_separation_f0_s0   # true gaps the mask bridges

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


def planned(work, sample_dir, kampala_dir):
    """(name, result file, command or None (a scoring), run folder) of every run, in order."""
    from training.recipes import PREVIOUS_PRETRAINED  # the recipe these runs were made with, in full

    sample = ["--dataset", "buildings/kaggle", "--manual-dir", str(SHARED / "buildings_sample"),
              "--data-dir", str(sample_dir), *PREVIOUS_PRETRAINED]  # fmt: skip
    kampala = ["--dataset", "buildings/polygons", "--manual-dir", str(SHARED / "kampala_chips"),
               "--data-dir", str(kampala_dir), "--folds", "4", *PREVIOUS_PRETRAINED]  # fmt: skip
    runs = []
    for seed in SEEDS:
        base = Path(work) / f"base_s{seed}"
        command = ["train.py", *sample, "--seed", str(seed), "--tracker", "local", "--run-dir", str(base)]
        runs.append((base.name, RESULTS / base.name / "results.json", command, base))
        for fold in FOLDS:
            common = [*kampala, "--fold", str(fold), "--seed", str(seed), "--tracker", "local"]
            starts = {f"kampala_building_f{fold}_s{seed}": [],
                      f"finetuned_f{fold}_s{seed}": ["--init", str(base), "--freeze-encoder", "1"]}  # fmt: skip
            for name, extra in starts.items():
                run = Path(work) / name
                command = ["train.py", *common, *extra, "--run-dir", str(run)]
                runs.append((name, RESULTS / name / "results.json", command, run))
            name, like = f"base_f{fold}_s{seed}", Path(work) / f"kampala_building_f{fold}_s{seed}"
            runs.append((name, RESULTS / name / "results.json", None, (base, like)))
            name = f"shape_f{fold}_s{seed}"  # the building run's mask split by its shape (predict.py --separate shape)
            runs.append((name, RESULTS / name / "results.json", None, (like, like, defaults.SPLIT_DEPTH)))
    for seed in SEEDS:  # separation, paired with kampala_building_f<F>_s<S>: the same recipe learning the outlines
        for fold in FOLDS:
            name = f"kampala_separation_f{fold}_s{seed}"
            run = Path(work) / name
            command = ["train.py", *kampala, "--fold", str(fold), "--seed", str(seed), "--tracker", "local",
                       "--targets", "building,border,contact", "--run-dir", str(run)]  # fmt: skip
            runs.append((name, RESULTS / name / "results.json", command, run))
    return runs


def score_as_is(model_run, like_run, depth=None):
    """results.json-like scores of ``model_run``'s kept model, as predict.py applies it, on the held-out examples
    of ``like_run`` (the same split, against its labels: true polygons, no-data left out); ``depth``: its mask
    split by its shape at that depth (``predict.py --separate shape --split-depth``)."""
    from data.splits import run_examples
    from inference.heldout import score_model
    from inference.loading import load_segmenter
    from training.setup import marks_nodata

    config, _, heldout = run_examples(like_run)
    model, fixed = load_segmenter(model_run)
    polygons = marks_nodata(config["dataset"])
    overall = score_model(model, heldout, fixed, separate=depth is not None, depth=depth, polygons=polygons)["overall"]
    return {"model": str(model_run), "scored_like": str(like_run), "seed": config["seed"], "fold": config["fold"],
            "split_depth": depth,
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


def table(kinds):
    """Markdown rows: each fold and seed, the runs of ``kinds`` ({name prefix: column}) side by side as pixel IoU /
    building F1, then the means over the pairs where all of them finished."""
    rows = ["| fold | seed | " + " | ".join(kinds.values()) + " |", "|---|---|" + "---|" * len(kinds)]
    complete = []
    for seed in SEEDS:
        for fold in FOLDS:
            found = {}
            for kind in kinds:
                path = RESULTS / f"{kind}_f{fold}_s{seed}" / "results.json"
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
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "kampala", help="where train.py runs write")
    parser.add_argument("--sample-data-dir", type=Path, default=Path.home() / ".cache" / "buildings_sample_tfds")
    parser.add_argument("--kampala-data-dir", type=Path, default=Path.home() / ".cache" / "kampala_tfds")
    args = parser.parse_args(argv)
    if args.table:
        print(table(STARTS), table(SEPARATIONS), sep="\n\n")
        return
    if args.gaps:
        for run in args.gaps:
            covered, total = gaps_bridged(run)
            print(f"{run.name}: the mask covers {covered} of {total} gap pixels ({covered / max(total, 1):.0%})")
        return
    from experiments.collect import copy_small_files, resume_args

    for name, result, command, run in planned(args.work, args.sample_data_dir, args.kampala_data_dir):
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
