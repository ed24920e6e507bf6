"""The default recipe against the plain baseline, and an ablation from the one towards the other (issue #34).

    python -m experiments.recipe_ablation            # list the runs: done, or the command still to run
    python -m experiments.recipe_ablation --run      # run what is missing, in order; a killed run resumes
    python -m experiments.recipe_ablation --table 0 0   # fold 0, seed 0: scores and calibration of each run

Runs, in this order (seeds are the outer loop, so a study cut short has paired runs on both folds):

- the yardstick ``../shared/baselines/plain_unet.py`` (run from there, never copied) on the 4 folds of
  train.py's group split, 3 seeds, at train.py's budget (210 steps of 8 crops at 128): its --json output
  in ``results/recipe/baseline/baseline128_f<F>_s<S>.json``; at the issue's second budget (200 steps of 8
  crops at 256) the yardstick (``baseline256_f<F>_s<S>.json``, selected as ``yardstick256``) and the default
  (the element ``newcosine256``), each yardstick run listed beside the element runs of its fold and seed;
- the previous default (``training.recipes.PREVIOUS_PRETRAINED``, passed in full) with one element at a time
  set as the baseline has it, on folds 0 (Dubai t8, Rio) and 2 (t3, t6), seeds 0-2, small files kept in
  ``results/recipe/ablation/<element>_f<F>_s<S>/`` (the previous default itself: the committed grid runs
  ``results/questions/grid_unet_effnet-lite0_f*_s*``); the candidates (``FOLDS_OF``) on all four folds;

- recipes on every place of the sample, nothing held out, seeds 0-4, with ``--calibrate train`` so that
  results.json records the kept weights' best threshold on their own training images and their IoU there at
  0.5 (the collapse check): ``previous`` (seeds 0-2 are the Kampala study's base models, the same command),
  ``new`` (train.py's defaults from the change, the ``plainstd`` recipe: ``--schedule constant`` pinned),
  ``newcosine`` (the same with ``--schedule cosine``: train.py's default since), ``newcosine256`` (the default at
  the second budget), ``lite1tta`` and ``lite1tta256`` (train.py's default since, at both budgets), ``bce`` and
  ``bce256`` (that default trained with BCE alone), ``halfdice256`` and ``halfdice`` (with half
  the Dice weight: ``--loss bce+0.5*dice``), ``start0`` and ``start1`` (the default on seeds 0 and 1 with
  ``--model-seed`` 0 or 1: the batches of one seed from the start of another), ``longema0`` (``start0`` keeping
  the weights averaged over about the last quarter of the run: ``--select ema --ema-fraction 0.25``),
  ``twice0`` and ``twice1`` (``start0`` and ``start1`` over twice the steps: ``--epochs 12``), ``plainflips``;
  in ``results/recipe/allplaces/``.

Each run is a process, as a user runs it; a finished one (its results) is never run again. Read them with
``python -m experiments.study results/recipe/ablation results/questions --by-place --baseline
unet_effnet-lite0`` and, beside the yardstick, ``... results/recipe/baseline --baseline baseline128``.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from experiments.collect import comma_integers, resume_args
from training.recipes import LITE0_CALIBRATED, PLAIN_CONSTANT, PREVIOUS_PRETRAINED

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "buildings_sample"
BASELINE = ROOT.parent / "shared" / "baselines" / "plain_unet.py"
FOLD_PLACES = {0: "dubai_t8,rio", 1: "dubai_t1,dubai_t5", 2: "dubai_t3,dubai_t6", 3: "dubai_t4,dubai_t7"}
ELEMENTS = {  # element -> train.py options that set it as the baseline has it
    "trainall": ["--train-on", "all"],  # every image of the training places trains (no validation split)
    "crops1": ["--crops-per-image", "1"],  # each crop from another image
    "bcedice": ["--loss", "bce+dice"],
    "adamconst": ["--optimizer", "adam", "--schedule", "constant"],  # no warm-up, no decay, no weight decay
    "last": ["--select", "last"],  # the last weights, not their moving average
    "plain": ["--train-on", "all", "--crops-per-image", "1", "--loss", "bce+dice", "--optimizer", "adam",
              "--schedule", "constant", "--standardize", "none", "--select", "last", "--calibrate", "none"],
    "flips": ["--augment", "flips"],  # flips and 90-degree turns only, no small rotations, scaling or colour jitter
    "plainflips": ["--train-on", "all", "--crops-per-image", "1", "--loss", "bce+dice", "--optimizer", "adam",
                   "--schedule", "constant", "--standardize", "none", "--select", "last", "--calibrate", "none",
                   "--augment", "flips"],
    "plainflipsnotop": ["--train-on", "all", "--crops-per-image", "1", "--loss", "bce+dice", "--optimizer", "adam",
                        "--schedule", "constant", "--standardize", "none", "--select", "last", "--calibrate", "none",
                        "--augment", "flips", "--encoder-top", "drop"],
    "nosd": ["--drop-connect", "0"],  # no stochastic depth in the encoder (the yardstick's encoder has none)
    "plainnosd": ["--train-on", "all", "--crops-per-image", "1", "--loss", "bce+dice", "--optimizer", "adam",
                  "--schedule", "constant", "--standardize", "none", "--select", "last", "--calibrate", "none",
                  "--augment", "flips", "--encoder-top", "drop", "--drop-connect", "0"],
    "plainstd": ["--train-on", "all", "--crops-per-image", "1", "--loss", "bce+dice", "--optimizer", "adam",
                 "--schedule", "constant", "--standardize", "image", "--select", "last", "--calibrate", "none",
                 "--augment", "flips", "--encoder-top", "drop", "--drop-connect", "0"],
}  # fmt: skip
# plainstd with train.py's end (calibrated on training images, split by shape) and its learning rate warmed up over
# 20 steps and decayed to 0 by a cosine (a later flag wins): the default since
ELEMENTS["newcosine"] = [*ELEMENTS["plainstd"], "--calibrate", "train", "--split", "shape", "--schedule", "cosine"]
# the default with every crop's image drawn at random, with replacement (the yardstick's draws), not once per pass
ELEMENTS["randomdraw"] = [*ELEMENTS["newcosine"], "--draw", "random"]
# the default with twice the peak learning rate: its cosine then averages the yardstick's constant 1e-3
ELEMENTS["peak2e3"] = [*ELEMENTS["newcosine"], "--lr", "2e-3"]
# the default over the next pip-shipped ImageNet encoder (EfficientNet-Lite1: 1.04x the GMACs of Lite0 at one size)
ELEMENTS["lite1"] = [*ELEMENTS["newcosine"], "--encoder", "effnet-lite1"]
# and the one after it (EfficientNet-Lite2: 1.08x the GMACs of Lite0 at one size, its last pip-shipped encoder)
ELEMENTS["lite2"] = [*ELEMENTS["newcosine"], "--encoder", "effnet-lite2"]
# Lite1 cut at 0.5 (--calibrate none): the threshold calibrated on training images lowered held-out IoU at 256
ELEMENTS["lite1nocal"] = [*ELEMENTS["lite1"], "--calibrate", "none"]
# the second budget: 200 steps (10 x 20) of 8 crops at 256, for the default and the yardstick alike
BUDGET_256 = ["--image-size", "256", "--epochs", "10", "--steps-per-epoch", "20"]
ELEMENTS["newcosine256"] = [*ELEMENTS["newcosine"], *BUDGET_256]
ELEMENTS["lite1256"] = [*ELEMENTS["lite1"], *BUDGET_256]
# train.py's default since 2026-12-04: Lite1, its threshold calibrated and its places scored with test-time
# augmentation (experiments.posthoc's "-cal-tta-shape" variant of lite1 / lite1256, run as train.py runs it)
ELEMENTS["lite1tta"] = [*ELEMENTS["lite1"], "--tta"]
ELEMENTS["lite1tta256"] = [*ELEMENTS["lite1tta"], *BUDGET_256]
# the default over the FPN decoder (the grid's one pixel-IoU gain over U-Net clear of 0: +0.014 +- 0.009 on Lite0)
ELEMENTS["fpn"] = [*ELEMENTS["lite1tta"], "--arch", "fpn"]
ELEMENTS["fpn256"] = [*ELEMENTS["fpn"], *BUDGET_256]
# the default trained with the Lovasz hinge (Berman et al., 2018), a surrogate of 1 - IoU over the batch's pixels,
# in place of soft Dice: pooled pixel IoU is what the places are scored by
ELEMENTS["lovasz"] = [*ELEMENTS["lite1tta"], "--loss", "bce+lovasz"]
ELEMENTS["lovasz256"] = [*ELEMENTS["lovasz"], *BUDGET_256]
# the default trained with binary cross-entropy alone (a proper scoring rule: its minimiser is the pixel's true
# probability), in place of BCE + soft Dice, whose best cut drifts either way (the all-places thresholds 0.70,
# 0.55, 0.71, 0.36, 0.36 at 256). Not the fix: a calibrated model's best cut sits near half its best F1, and
# BCE's IoU falls away from it more sharply (docs/experiments.md "BCE alone, and why no loss puts the best cut
# at 0.5")
ELEMENTS["bce"] = [*ELEMENTS["lite1tta"], "--loss", "bce"]
ELEMENTS["bce256"] = [*ELEMENTS["bce"], *BUDGET_256]
# the default with half the Dice weight (--loss bce+0.5*dice): on every place at 256, seed 0's best cut moved from
# 0.70 to 0.58, but seed 1 at train.py's budget lost 0.025 at 0.5, so these held-out runs were not made
# (docs/experiments.md "Half the Dice weight, and what sets a run's best cut")
ELEMENTS["halfdice"] = [*ELEMENTS["lite1tta"], "--loss", "bce+0.5*dice"]
ELEMENTS["halfdice256"] = [*ELEMENTS["halfdice"], *BUDGET_256]
YARDSTICK_BUDGETS = {"yardstick": ("baseline128", "128", "210"), "yardstick256": ("baseline256", "256", "200")}
NAMES = {"plain": "the yardstick's recipe in our code, basic augmentation",
         "plainflips": "the yardstick's recipe in our code, flips only (as the yardstick)",
         "plainflipsnotop": "the same, P5 from the last block before the top conv (as the yardstick)",
         "nosd": "the default without stochastic depth in the encoder (as the yardstick)",
         "plainnosd": "plainflipsnotop without stochastic depth: the yardstick's whole recipe in our code",
         "plainstd": "plainnosd with each image's colours standardised (--standardize image)",
         "newcosine": "the new default with a cosine decay of the learning rate (--schedule cosine)",
         "newcosine256": "the default at the second budget: 200 steps of 8 crops at 256",
         "randomdraw": "the default with each crop's image drawn with replacement (--draw random)",
         "peak2e3": "the default with a peak learning rate of 2e-3 (--lr 2e-3), the yardstick's mean rate",
         "lite1": "the default over ImageNet EfficientNet-Lite1 (--encoder effnet-lite1)",
         "lite1256": "lite1 at the second budget",
         "lite2": "the default over ImageNet EfficientNet-Lite2 (--encoder effnet-lite2)",
         "lite1nocal": "lite1 cut at probability 0.5 (--calibrate none)",
         "lite1tta": "lite1 calibrated and scored with test-time augmentation (--tta): the default since 2026-12-04",
         "lite1tta256": "lite1tta at the second budget",
         "fpn": "the default over the FPN decoder (--arch fpn)",
         "fpn256": "fpn at the second budget",
         "lovasz": "the default with BCE + Lovasz hinge in place of BCE + Dice (--loss bce+lovasz)",
         "lovasz256": "lovasz at the second budget",
         "bce": "the default with BCE alone in place of BCE + Dice (--loss bce)",
         "bce256": "bce at the second budget",
         "halfdice": "the default with half the Dice weight (--loss bce+0.5*dice)",
         "halfdice256": "halfdice at the second budget"}  # fmt: skip
ABLATION_FOLDS = (0, 2)
# the candidates run on every fold, to be paired with the yardstick
FOLDS_OF = {
    name: (0, 1, 2, 3)
    for name in (
        "plainflips",
        "plainflipsnotop",
        "nosd",
        "plainnosd",
        "plainstd",
        "newcosine",
        "newcosine256",
        "randomdraw",
        "peak2e3",
        "lite1",
        "lite1256",
        "lite2",
        "lite1nocal",
        "lite1tta",
        "lite1tta256",
        "fpn",
        "fpn256",
        "lovasz",
        "lovasz256",
        "bce",
        "bce256",
        "halfdice",
        "halfdice256",
    )
}
SEEDS = (0, 1, 2)
ALL_PLACES_SEEDS = (0, 1, 2, 3, 4)
ALL_PLACES = {"plainflips": ["--crops-per-image", "1", "--loss", "bce+dice", "--optimizer", "adam", "--schedule",
                             "constant", "--standardize", "none", "--select", "last", "--augment", "flips",
                             *LITE0_CALIBRATED],
              "previous": PREVIOUS_PRETRAINED,
              "new": PLAIN_CONSTANT,  # train.py's defaults from 2026-12-03 (plainstd, split by shape): constant rate
              "newcosine": ["--schedule", "cosine", *LITE0_CALIBRATED],  # the same with a cosine decay
              "newcosine256": ["--schedule", "cosine", *LITE0_CALIBRATED, *BUDGET_256],  # at the second budget
              # train.py's defaults since 2026-12-04: Lite1, calibrated and scored with test-time augmentation
              "lite1tta": [],
              "lite1tta256": BUDGET_256,
              "bce": ["--loss", "bce"],  # the default with BCE alone: does the collapse go with soft Dice?
              "bce256": ["--loss", "bce", *BUDGET_256],
              # half the Dice weight: between BCE's steep but centred cut and Dice's flat but wandering one
              "halfdice256": ["--loss", "bce+0.5*dice", *BUDGET_256],
              "halfdice": ["--loss", "bce+0.5*dice"],
              # the default with its initial weights seeded apart from its batches (--model-seed): on data seeds 0
              # and 1 (their best cuts the furthest apart at this budget) from two starts, does the cut follow the
              # crops or the start?
              "start0": ["--model-seed", "0"],
              "start1": ["--model-seed", "1"],
              # start0 keeping a moving average of the weights over about the last quarter of the run instead of
              # its last weights (a longer span keeps the first step's weights: 0.5 would keep 13% of them): does
              # an average over more batches narrow the draw of the best cut that the batches set?
              "longema0": ["--model-seed", "0", "--select", "ema", "--ema-fraction", "0.25"],
              # start0 trained twice as long (12 epochs of 35 steps): is the draw of the cut the budget's?
              "twice0": ["--model-seed", "0", "--epochs", "12"],
              "twice1": ["--model-seed", "1", "--epochs", "12"]}  # fmt: skip
# the others: ALL_PLACES_SEEDS
ALL_PLACES_SEEDS_OF = {name: (0, 1) for name in ("start0", "start1", "longema0", "twice0", "twice1")}
# the default on every place, seeds 0-2, is the Kampala study's base model: the same command, run there
SAME_RUNS = {("previous", seed): ROOT / "results" / "kampala" / f"base_s{seed}" / "results.json" for seed in (0, 1, 2)}


RESULTS = ROOT / "results" / "recipe"


def planned(data_dir, work, elements=None, seeds=SEEDS, results=RESULTS):
    """(name, result file, command, run folder or None) of every run, in order; ``elements``: only these
    (None: the yardstick's runs and every element); ``seeds``: of the runs on held-out folds; ``results``: where
    their small files go (``baseline/``, ``ablation/``, ``allplaces/``)."""
    runs = []

    def yardstick(key, seed, fold):
        if elements and key not in elements:
            return
        stem, size, steps = YARDSTICK_BUDGETS[key]
        out = Path(results) / "baseline" / f"{stem}_f{fold}_s{seed}.json"
        command = [sys.executable, str(BASELINE), "--sample", str(SAMPLE), "--holdout", FOLD_PLACES[fold], "--seed",
                   str(seed), "--size", size, "--steps", steps, "--json", str(out)]  # fmt: skip
        runs.append((out.stem, out, command, None))

    for seed in seeds:
        for fold in FOLD_PLACES:
            yardstick("yardstick", seed, fold)
    for seed in seeds:
        for fold in sorted({fold for folds in FOLDS_OF.values() for fold in folds} | set(ABLATION_FOLDS)):
            yardstick("yardstick256", seed, fold)  # beside the element runs of its fold and seed: they pair as they end
            for element, options in ELEMENTS.items():
                if fold not in FOLDS_OF.get(element, ABLATION_FOLDS) or (elements and element not in elements):
                    continue
                name = f"{element}_f{fold}_s{seed}"
                run = Path(work) / name
                command = [sys.executable, "train.py", "--dataset", "buildings/kaggle", "--manual-dir", str(SAMPLE),
                           "--data-dir", str(data_dir), "--tracker", "local", "--folds", "4", "--fold", str(fold),
                           "--seed", str(seed), *PREVIOUS_PRETRAINED, *options, "--run-dir", str(run)]  # fmt: skip
                runs.append((name, Path(results) / "ablation" / name / "results.json", command, run))
    for recipe, options in ALL_PLACES.items():
        if elements and "allplaces" not in elements and f"allplaces_{recipe}" not in elements:
            continue
        for seed in ALL_PLACES_SEEDS_OF.get(recipe, ALL_PLACES_SEEDS):
            name = f"{recipe}_s{seed}"
            run = Path(work) / "allplaces" / name
            command = [sys.executable, "train.py", "--dataset", "buildings/kaggle", "--manual-dir", str(SAMPLE),
                       "--data-dir", str(data_dir), "--tracker", "local", "--seed", str(seed), *options,
                       "--run-dir", str(run)]  # fmt: skip
            result = SAME_RUNS.get((recipe, seed), Path(results) / "allplaces" / name / "results.json")
            runs.append((f"allplaces_{name}", result, command, run))
    return runs


def share(runs, part):
    """The runs of ``part`` ("K/N": the K-th of N, from 1) of the plan: every N-th run from the K-th, so that N
    processes beside each other run the plan once between them, none of them waiting for the others."""
    try:
        k, n = (int(x) for x in part.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise SystemExit(f"experiments.recipe_ablation: --share {part!r} is not K/N with 1 <= K <= N (e.g. 1/2)")
    return runs[k - 1 :: n]


def calibration_table(fold, seed):
    """Markdown rows of one fold and seed: the default, each finished element, the yardstick; held-out pixel IoU
    and building F1 (the fold's places pooled) beside the calibration on the run's own training images."""
    import json

    def row(label, path):
        results = json.loads(path.read_text())
        found = results.get("calibration") or {}
        calibrated = (
            f"{found['threshold']:.2f} | {found['iou']:.3f} | {found['iou_at_0.5']:.3f}" if found else "(0.5) | |"
        )
        return f"| {label} | {results['heldout_iou']:.3f} | {results['heldout_building_f1']:.3f} | {calibrated} |"

    results = ROOT / "results"
    lines = [
        "| run | held-out pixel IoU | building F1 | calibrated threshold | IoU there | IoU at 0.5 |",
        "|---|---|---|---|---|---|",
        row("the default", results / "questions" / f"grid_unet_effnet-lite0_f{fold}_s{seed}" / "results.json"),
    ]
    for element, options in ELEMENTS.items():
        path = results / "recipe" / "ablation" / f"{element}_f{fold}_s{seed}" / "results.json"
        if path.exists():
            lines.append(row(NAMES.get(element, f"`{' '.join(options)}`"), path))
    yardstick = results / "recipe" / "baseline" / f"baseline128_f{fold}_s{seed}.json"
    if yardstick.exists():
        pooled = json.loads(yardstick.read_text())["all"]
        lines.append(f"| the yardstick | {pooled['pixel_iou']:.3f} | {pooled['building_f1']:.3f} | (0.5) | | |")
    return "\n".join(lines)


def collapse_table(recipe):
    """Markdown rows: each all-places run of ``recipe``, its calibrated threshold on its own training images, the
    IoU there and at 0.5, and the IoU lost at 0.5 (the no-collapse check: at most 0.02); then the threshold as a
    logit (how far the best cut is from 0.5) and the IoU lost per squared logit (how sharply the IoU falls away
    from the best cut: lost ~ sharpness x offset^2 near it)."""
    import json

    from blocks.calibration import threshold_offset

    lines = ["| seed | calibrated threshold | IoU there | IoU at 0.5 | lost at 0.5 | logit offset | lost / offset^2 |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for seed in ALL_PLACES_SEEDS_OF.get(recipe, ALL_PLACES_SEEDS):
        path = SAME_RUNS.get((recipe, seed), RESULTS / "allplaces" / f"{recipe}_s{seed}" / "results.json")
        if path.exists():
            found = json.loads(path.read_text())["calibration"]
            lost = found["iou"] - found["iou_at_0.5"]
            threshold = found["threshold"]  # the offset's exact value when results.json has it (since 2026-12-03)
            offset = found.get("logit_offset", threshold_offset(threshold))
            sharpness = f"{lost / offset**2:.3f}" if abs(offset) >= 0.1 else "(cut at 0.5)"
            lines.append(f"| {seed} | {threshold:.2f} | {found['iou']:.3f} | {found['iou_at_0.5']:.3f} | {lost:.3f} | "
                         f"{offset:+.2f} | {sharpness} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run the missing runs, in order")
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "buildings_sample_tfds")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "recipe", help="where train.py runs write")
    parser.add_argument("--table", nargs=2, type=int, metavar=("FOLD", "SEED"),
                        help="print the calibration table of one fold and seed from the committed runs")  # fmt: skip
    parser.add_argument(
        "--only", default="", help="elements (and 'yardstick', 'yardstick256') to list or run, comma-separated"
    )
    parser.add_argument(
        "--share", default="1/1", metavar="K/N", help="run only the K-th of every N planned runs (N processes: 1/2 2/2)"
    )
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="comma-separated seeds of the runs on held-out folds (default: %(default)s)")  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the runs' small files go (more seeds: a folder of their own, so that the "
                        "studies committed before print what they printed)")  # fmt: skip
    parser.add_argument("--collapse", choices=tuple(ALL_PLACES), help="print the all-places runs' calibration")
    args = parser.parse_args(argv)
    if args.collapse:
        print(collapse_table(args.collapse))
        return
    if args.table:
        print(calibration_table(*args.table))
        return
    seeds = comma_integers(args.seeds, "experiments.recipe_ablation: --seeds", "0,1,2")
    only = [e for e in args.only.split(",") if e]
    plan = share(planned(args.data_dir, args.work, only, seeds, args.results), args.share)
    for name, result, command, run in plan:
        if result.exists():
            print(f"done     {name}")
            continue
        if not args.run:
            print(f"missing  {name}: {' '.join(command)}")
            continue
        command = [*command, *resume_args(run)]  # a killed run continues from its last epoch
        print(f"running  {name}", flush=True)
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            raise SystemExit(f"experiments.recipe_ablation: {name} failed; its output is above")
        if run is not None:
            from experiments.collect import copy_small_files

            copy_small_files(run, result.parent)
    if not SAMPLE.is_dir() or not BASELINE.is_file():
        print(f"note: the runs need {SAMPLE} and {BASELINE} (../shared beside the repository)")


if __name__ == "__main__":
    main()
