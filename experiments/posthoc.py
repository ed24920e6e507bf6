"""What a trained run's held-out scores become with the choices made after training (issue #34): the decision
threshold, test-time augmentation and splitting buildings by the mask's shape, each on the same weights.

    python -m experiments.posthoc runs/recipe/plainstd_f0_s0 [more runs]      # writes results/posthoc/
    python -m experiments.study results/posthoc --by-place --recipes plainstd,plainstd-tta --baseline plainstd

For each run (a train.py run folder with model.keras, its dataset built), the kept model's logit offset is set to 0
and every held-out image is predicted twice, as predict.py predicts it (blended 1024-pixel windows) and with
``--tta`` (the mean logit of the 8 flips and 90-degree turns; ``--no-tta`` leaves those out). Each prediction is cut
at 0.5 and at the threshold train.py's ``--calibrate train`` would choose (the best pixel IoU on the run's first 16
training images, measured without test-time augmentation, as train.py measures it), and its buildings are counted as
the mask's connected patches and as predict.py's ``--separate shape`` splits them. Each of the 8 combinations is a
run folder of its own, ``<recipe>[-cal][-tta][-shape]_f<F>_s<S>``, with the small files ``experiments.study`` reads
(results.json, heldout_metrics.json, config.json), so the variants of one run pair with each other and with the
yardstick by place and seed. A run whose variants are all written is skipped.

``--calibrate-tta`` writes two variants more, ``<recipe>-ttacal-tta[-shape]``: the threshold measured on the same
training images with the flips and turns averaged, as the held-out places are then predicted (8x the calibration's
cost); the prediction without test-time augmentation is left out.
"""

import argparse
import json
from pathlib import Path

from experiments.study import FOLD_RUN_NAME

ROOT = Path(__file__).resolve().parents[1]
KEPT = ("arch", "encoder", "params", "gmacs", "epochs", "wall_seconds", "dataset", "image_size", "seed",
        "heldout_kind", "heldout_groups")  # fmt: skip


def variant_name(recipe, calibrated, tta, shape):
    """``calibrated``: False (cut at 0.5), True (the threshold calibrated without test-time augmentation) or
    "tta" (calibrated with it)."""
    cut = {False: "", True: "-cal", "tta": "-ttacal"}[calibrated]
    return recipe + cut + "-tta" * tta + "-shape" * shape


def variants(recipe, tta=True, calibrate_tta=False):
    """The (name, calibrated, tta, shape) of one recipe, the plain one first: 8, or 4 without ``tta``; with
    ``calibrate_tta`` the 2 cut at the threshold calibrated with test-time augmentation instead."""
    if calibrate_tta:
        return [(variant_name(recipe, "tta", True, s), "tta", True, s) for s in (False, True)]
    return [(variant_name(recipe, c, t, s), c, t, s)
            for c in (False, True) for t in ((False, True) if tta else (False,)) for s in (False, True)]  # fmt: skip


def posthoc_rows(run_dir, tta=True, calibrate_tta=False):
    """({variant name: [scene scores]}, calibration) of one finished run: see the module docstring."""
    from data.splits import run_examples
    from inference import defaults
    from inference.evaluation import scene_scores
    from inference.heldout import at_threshold, calibrate_model, decoded_scenes, tiling
    from inference.loading import load_segmenter
    from inference.separation import separate
    from inference.tiling import make_logit_fn, predict_probabilities
    from models.segmenter import set_logit_offset
    from training.setup import marks_nodata

    config, train_examples, heldout = run_examples(run_dir)
    polygons = marks_nodata(config["dataset"])
    model, fixed = load_segmenter(run_dir)
    set_logit_offset(model, 0.0)
    calibration = calibrate_model(model, train_examples, fixed, polygons=polygons, tta=calibrate_tta)
    set_logit_offset(model, 0.0)  # the threshold is applied below, to the same probabilities
    recipe = FOLD_RUN_NAME.match(Path(run_dir).name)["recipe"]
    chosen = variants(recipe, tta, calibrate_tta)
    averaging = sorted({averaged for _, _, averaged, _ in chosen})
    functions = {each: make_logit_fn(model, tta=each, fixed_size=fixed) for each in averaging}
    rows = {name: [] for name, *_ in chosen}
    for name, image, truth, *more in decoded_scenes(heldout, polygons=polygons):
        valid, true_buildings = more if more else (None, None)
        for averaged, logit_fn in functions.items():
            probabilities = predict_probabilities(logit_fn, image, **tiling(fixed))
            for variant, calibrated, _, shape in (each for each in chosen if each[2] == averaged):
                threshold = calibration["threshold"] if calibrated else 0.5
                mask = probabilities >= threshold
                # the split weighs the distance to a patch's edge by the probability the model outputs, and a
                # calibrated model outputs them moved by its stored offset (the threshold lands on 0.5)
                moved = at_threshold(probabilities, threshold) if calibrated else probabilities
                buildings = separate(moved, depth=defaults.SPLIT_DEPTH) if shape else None
                rows[variant].append(
                    scene_scores(name, truth, mask, buildings=buildings, valid=valid, true_buildings=true_buildings)
                )
    return rows, calibration


def write_variants(run_dir, out, tta=True, calibrate_tta=False):
    """Score one run's variants and write each as a run folder under ``out``; returns their names."""
    from inference.evaluation import evaluation_report

    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    rows, calibration = posthoc_rows(run_dir, tta, calibrate_tta)
    recipe = FOLD_RUN_NAME.match(run_dir.name)["recipe"]
    fold_seed = run_dir.name[len(recipe) :]
    cut = {name: calibrated for name, calibrated, *_ in variants(recipe, tta, calibrate_tta)}
    for name, scenes in rows.items():
        calibrated = bool(cut[name])
        report = evaluation_report(scenes, threshold=calibration["threshold"] if calibrated else 0.5)
        overall = report["overall"]
        folder = Path(out) / (name + fold_seed)
        folder.mkdir(parents=True, exist_ok=True)
        summary = {key: results[key] for key in KEPT if key in results}
        chosen = {
            "run": run_dir.name,
            "threshold": report["threshold"],
            "tta": "-tta" in name,
            "separate": "shape" if "-shape" in name else "none",
            "calibration": calibration,
            "calibrated_with_tta": cut[name] == "tta",
        }
        summary.update(heldout_iou=overall["iou"], heldout_building_f1=overall["building_f1"], posthoc=chosen)
        (folder / "heldout_metrics.json").write_text(json.dumps(report, indent=1))
        (folder / "config.json").write_text(json.dumps({"group_pattern": config.get("group_pattern")}, indent=1))
        (folder / "results.json").write_text(json.dumps(summary, indent=1))  # last: its presence marks it done
    return list(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="train.py run folders named <recipe>_f<F>_s<S>")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "posthoc")
    parser.add_argument("--no-tta", action="store_true", help="leave out the test-time augmented variants (8x slower)")
    parser.add_argument("--calibrate-tta", action="store_true",
                        help="only the variants cut at a threshold calibrated with test-time augmentation")  # fmt: skip
    args = parser.parse_args(argv)
    for run in args.runs:
        match = FOLD_RUN_NAME.match(run.name)
        if not match or not (run / "model.keras").is_file():
            raise SystemExit(f"experiments.posthoc: {run} is not a finished run named <recipe>_f<F>_s<S> with "
                             "model.keras; pass train.py run folders (runs/recipe/...)")  # fmt: skip
        fold_seed = run.name[match.end("recipe") :]
        names = [name for name, *_ in variants(match["recipe"], not args.no_tta, args.calibrate_tta)]
        if all((args.out / (name + fold_seed) / "results.json").exists() for name in names):
            print(f"done     {run.name}")
            continue
        print(f"scoring  {run.name}", flush=True)
        write_variants(run, args.out, tta=not args.no_tta, calibrate_tta=args.calibrate_tta)


if __name__ == "__main__":
    main()
