"""Compare training runs: per-run and per-model tables, answers with intervals, plots, the grid.

    python compare.py                          # tables of runs/*/results.json + plots in runs/compare/
    python compare.py --runs path/to/runs      # another folder of runs
    python compare.py --static --size 256      # params and GMACs of every arch x encoder, no training
    python compare.py --grid seed --repeats 3 --budget 96 [train.py options, e.g. --holdout dubai_t8]

The scores are each run's held-out IoU and building F1 (results.json "heldout_iou" and
"heldout_building_f1": predict.py's scorer on places kept out of training when the run held
out groups; --score picks one). Runs of one (arch, encoder,
recipe) are pooled into mean ± standard deviation over n runs, and each of the questions
the project was started for (FCN-8 vs CNN, U-Net vs FCN-8, U-Net vs FPN, which
EfficientNet under U-Net) gets one line: the difference of the means with a 95% Welch
t-interval and a plain verdict. ``--grid seed`` trains those models, ``--grid recipe``
U-Net/B0 with today's recipe and the one before; each entry with --repeats seeds and the
same budget. A finished grid run is never trained again; an interrupted one resumes.
"""

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from experiments.aggregate import INTERVAL_METHOD, SCORE, aggregate

COLUMNS = (
    ("arch", "arch"),
    ("encoder", "encoder"),
    ("recipe_label", "recipe"),
    ("params_m", "params (M)"),
    ("gmacs", "GMACs"),
    ("train_images_per_sec", "train img/s"),
    ("predict_mp_per_sec", "predict MP/s"),
    ("heldout_iou", "held-out IoU"),
    ("heldout_f1", "F1"),
    ("heldout_precision", "precision"),
    ("heldout_recall", "recall"),
    ("heldout_building_f1", "building F1"),
    ("heldout_label", "held out"),
    ("epochs", "epochs"),
    ("wall_seconds", "wall s"),
    ("seed", "seed"),
    ("format", "format"),
    ("run", "run"),
)
SUMMARY_COLUMNS = (
    ("arch", "arch"),
    ("encoder", "encoder"),
    ("recipe_label", "recipe"),
    ("iou", "held-out IoU (mean ± sd)"),
    ("n", "n"),
    ("params_m", "params (M)"),
    ("gmacs", "GMACs"),
    ("train_images_per_sec", "train img/s"),
    ("predict_mp_per_sec", "predict MP/s"),
    ("building_f1", "building F1 (mean)"),
    ("heldout", "held out"),
)
SCORES = {"heldout_iou": "held-out IoU", "heldout_building_f1": "building F1"}  # what --score chooses from


GRID = (
    ("cnn", "effnet-b0"),
    ("fcn8", "effnet-b0"),
    ("unet", "effnet-b0"),
    ("fpn", "effnet-b0"),
    ("unet", "effnet-b1"),
    ("unet", "effnet-b3"),
)
# today's recipe against the one before held-out groups were measured: basic augmentation, the best
# epoch, threshold 0.5 (tag, train.py options)
BASIC_RECIPE = ("basic-best", ["--augment", "basic", "--select", "best", "--calibrate", "none"])


def recipe_label(recipe, selection):
    """augment/selection, plus what else differs from the reference recipe (e.g. "basic/ema/lr 0.0005/96 steps").

    A run recorded before thresholds were calibrated (no "calibrate" in its recipe) is "threshold none".
    """
    if not recipe:
        return ""
    from training.results import REFERENCE_RECIPE as reference

    parts = [recipe.get("augment", "?"), selection]
    if recipe.get("calibrate", "none") != reference["calibrate"]:  # runs from before calibration used 0.5
        parts.append(f"threshold {recipe.get('calibrate', 'none')}")
    if recipe.get("encoder_weights", "none") != reference["encoder_weights"]:
        parts.append(f"weights {recipe['encoder_weights']}")
    if recipe.get("standardize", reference["standardize"]) != reference["standardize"]:
        parts.append(f"standardize {recipe['standardize']}")
    if recipe.get("targets", reference["targets"]) != reference["targets"]:
        parts.append(f"targets {recipe['targets']}")
    if recipe.get("loss", reference["loss"]) != reference["loss"]:
        parts.append(f"loss {recipe['loss']}")
    if recipe.get("lr", reference["lr"]) != reference["lr"]:
        parts.append(f"lr {recipe['lr']:g}")
    if recipe.get("steps", reference["steps"]) != reference["steps"]:
        parts.append(f"{recipe['steps']} steps")
    return "/".join(parts)


def load_runs(runs_dir):
    """(rows, problems): one row per readable results.json; a problem line per broken run.

    A run without a held-out score (an older format, ``training.results``, or a score that is
    not a number) is kept with NaN there, labelled by its format, and ranked last.
    """
    from experiments.aggregate import score_of
    from training.results import read_results

    rows, problems = [], []
    for run_dir in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
        path = run_dir / "results.json"
        if not path.exists():
            if (run_dir / "config.json").exists():
                problems.append(
                    f"{run_dir.name}: no results.json (unfinished or killed; resume it with train.py --resume)"
                )
            continue
        results, problem = read_results(path)
        if problem:
            problems.append(f"{run_dir.name}: {problem}")
            continue
        recipe = results.get("recipe") if isinstance(results.get("recipe"), dict) else {}
        groups = results.get("heldout_groups") or []
        rows.append(
            {
                **results,
                "params_m": results["params"] / 1e6,
                "run": run_dir.name,
                SCORE: score_of(results),
                "recipe_label": recipe_label(recipe, results.get("selection", "?")),
                "heldout_label": "groups " + "+".join(groups) if groups else results.get("heldout_kind", ""),
            }
        )
    rows.sort(
        key=lambda r: (
            math.isnan(r[SCORE]),
            -r[SCORE] if not math.isnan(r[SCORE]) else 0.0,
            str(r["arch"]),
            str(r["encoder"]),
        )
    )
    return rows, problems


def selection_markdown(rows):
    """The weight-selection study (runs with --score-selections) as a Markdown table, or ''."""
    from experiments.aggregate import selection_table

    table = selection_table(rows)
    if not table:
        return ""
    lines = [
        "| arch | encoder | recipe | weights scored | held-out IoU (mean ± sd) | spread (max - min) | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        sd = "" if math.isnan(row["std"]) else f" ± {row['std']:.3f}"
        kept = " (kept)" if row["kept"] else ""
        lines.append(
            f"| {row['arch']} | {row['encoder']} | {row['recipe_label']} | {row['selection']}{kept} | "
            f"{row['mean']:.3f}{sd} | {max(row['scores']) - min(row['scores']):.3f} | {row['n']} |"
        )
    return "\n".join(lines)


def summary_rows(table):
    """The aggregate table's cells: mean ± sd as one string."""
    rows = []
    for model in table:
        sd = "" if math.isnan(model["std"]) else f" ± {model['std']:.3f}"
        iou = "" if math.isnan(model["mean"]) else f"{model['mean']:.3f}{sd}"
        rows.append({**model, "iou": iou, "heldout": ", ".join(model["heldout"])})
    return rows


def _cell(value):
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


def markdown_table(rows, columns=COLUMNS):
    header = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def write_csv(rows, path, columns=COLUMNS):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[key for key, _ in columns], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot_iou_vs_gmacs(table, path):
    """Mean held-out IoU against GMACs, one point per model with a ±1 sd error bar (none for n = 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in table:
        if math.isnan(model["mean"]):
            continue
        ax.errorbar(
            model["gmacs"],
            model["mean"],
            yerr=0.0 if math.isnan(model["std"]) else model["std"],
            fmt="o",
            capsize=3,
            markersize=5,
        )
        label = f"{model['arch']}/{model['encoder']}" + (f" [{model['recipe_label']}]" if model["recipe_label"] else "")
        ax.annotate(
            f"{label} n={model['n']}",
            (model["gmacs"], model["mean"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
        )
    ax.set(
        xscale="log",
        xlabel="GMACs per image at the training size (log)",
        ylabel="held-out IoU (mean ± sd)",
        title="held-out IoU vs compute",
    )
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())  # the default minor labels of a log axis overlap
    low, high = ax.get_xlim()
    ax.set_xlim(low, high * 3)  # room for the labels right of the last point
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_run_curves(rows, runs_dir, path):
    """Every readable run's validation curves in one figure; returns the runs skipped, with the reason."""
    from training.checkpoints import read_history
    from training.plots import plot_runs_learning_curves

    histories, skipped = {}, []
    for row in rows:
        try:
            history = read_history(Path(runs_dir) / row["run"])
        except ValueError as error:
            skipped.append(f"{row['run']}: {error}")
            continue
        if history:
            histories[f"{row['arch']}/{row['encoder']} s{row.get('seed', '')} ({row['run']})"] = history
    plot_runs_learning_curves(histories, path)
    for reason in skipped:
        print(f"learning curves: skipped {reason}")
    return skipped


def plot_prediction_grid(rows, runs_dir, path, *, count=4):
    """Each run's model on the same validation tiles: one column per model (False: data not prepared)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf
    import tensorflow_datasets as tfds

    import data.buildings  # noqa: F401  (registers the builder)
    from data.pipeline import eval_dataset, load_split
    from inference.loading import load_segmenter

    usable = []
    for row in rows:  # a column needs the run's config.json (its data) and model.keras (its model)
        run = Path(runs_dir) / row["run"]
        try:
            config = json.loads((run / "config.json").read_text())
        except (OSError, ValueError) as error:
            print(f"prediction grid: skipped {row['run']}: no readable config.json ({type(error).__name__})")
            continue
        if not (run / "model.keras").exists():
            print(f"prediction grid: skipped {row['run']}: no model.keras (resume the run to write it)")
            continue
        usable.append((row, config if isinstance(config, dict) else {}))
    if not usable:
        print("prediction grid skipped: no run has both config.json and model.keras")
        return False
    rows, first = [row for row, _ in usable], usable[0][1]
    data_dir = first.get("data_dir") or None
    if not tfds.builder(rows[0]["dataset"], data_dir=data_dir).is_prepared():
        # never build a dataset as a side effect of drawing a figure (it would land in the user's TFDS folder)
        print(f"prediction grid skipped: {rows[0]['dataset']} is not prepared in {data_dir or '~/tensorflow_datasets'}")
        return False
    examples = load_split(
        rows[0]["dataset"], "validation", data_dir=data_dir, manual_dir=first.get("manual_dir") or None
    )
    images, masks, _ = next(iter(eval_dataset(examples, size=rows[0].get("image_size", 256), batch_size=count)))
    columns = [("image", None), ("truth", None)] + [(f"{r['arch']}/{r['encoder']}", r) for r in rows]
    fig, axes = plt.subplots(len(images), len(columns), figsize=(2.4 * len(columns), 2.4 * len(images)), squeeze=False)
    for col, (title, row) in enumerate(columns):
        if row is None:
            panels = images.numpy().astype("uint8") if title == "image" else masks.numpy()[..., 0]
        else:
            try:
                model = load_segmenter(Path(runs_dir) / row["run"] / "model.keras")[0]
            except Exception as error:  # a damaged or foreign archive: this column stays empty, the others are drawn
                print(
                    f"prediction grid: {row['run']}/model.keras could not be loaded ({type(error).__name__}); "
                    "column left empty"
                )
                model = None
            fits = model is not None and model.input.shape[1] in (None, images.shape[1])
            panels = tf.sigmoid(model.predict(images, verbose=0)).numpy()[..., 0] if fits else None
        for index in range(len(images)):
            ax = axes[index, col]
            ax.axis("off")
            if panels is not None:
                ax.imshow(
                    panels[index],
                    cmap=None if panels.ndim == 4 else "gray",
                    vmin=0,
                    vmax=1 if panels.ndim == 3 else None,
                )
            if index == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def static_table(size, archs=None, encoders=None):
    """Rows of params and GMACs of every arch x encoder at size x size (no training)."""
    from models import count_macs, create_model, list_archs, list_encoders

    rows = []
    for encoder in encoders or list_encoders():
        for arch in archs or list_archs():
            model = create_model(arch, encoder, input_shape=(size, size, 3))
            rows.append(
                {
                    "arch": arch,
                    "encoder": encoder,
                    "params_m": model.count_params() / 1e6,
                    "gmacs": count_macs(model) / 1e9,
                }
            )
    return rows


def grid_entries(kind, only=None):
    """(arch, encoder, recipe tag, train.py options) of a grid; tag "" is the default recipe.

    ``only``: "arch/encoder" names to keep (None: the whole grid).
    """
    if kind == "recipe":
        entries = [("unet", "effnet-b0", "", []), ("unet", "effnet-b0", *BASIC_RECIPE)]
    else:
        entries = [(arch, encoder, "", []) for arch, encoder in GRID]
    if only is None:
        return entries
    known = {f"{arch}/{encoder}" for arch, encoder, _, _ in entries}
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(
            f"compare.py: --entries {','.join(unknown)} is not in the {kind} grid; "
            f"choose from {', '.join(sorted(known))}"
        )
    return [entry for entry in entries if f"{entry[0]}/{entry[1]}" in only]


def grid_run_dir(runs_dir, arch, encoder, tag, seed, fold=None):
    fold = "" if fold is None else f"_f{fold}"
    return Path(runs_dir) / f"grid_{arch}_{encoder}{'_' + tag if tag else ''}{fold}_s{seed}"


def run_grid(runs_dir, *, kind="seed", budget, epochs, seed, repeats=1, folds=0, only=None, extra=()):
    """Train every grid entry with seeds seed .. seed + repeats - 1, all with the same budget.

    With ``folds`` > 1 every entry and seed is trained once per fold of a group split
    (train.py --folds/--fold), and compare.py pools the folds. Seeds are the outer loop, so
    a grid cut short still holds whole repeats. A finished run is kept; a killed one
    resumes from its last epoch. Each run is its own process, so one run's failure is
    reported and the others still train. Returns the failed run dirs.
    """
    import subprocess

    per_epoch = max(budget // epochs, 1)
    failed = []
    jobs = [
        (s, f, entry)
        for s in range(seed, seed + repeats)
        for f in (range(folds) if folds else [None])
        for entry in grid_entries(kind, only)
    ]
    for repeat_seed, fold, (arch, encoder, tag, options) in jobs:
        run_dir = grid_run_dir(runs_dir, arch, encoder, tag, repeat_seed, fold)
        if fold is not None:
            options = [*options, "--folds", str(folds), "--fold", str(fold)]
        if (run_dir / "results.json").exists():
            print(f"grid: {run_dir.name} finished earlier, kept", flush=True)
            continue
        args = [
            "--arch",
            arch,
            "--encoder",
            encoder,
            "--epochs",
            str(epochs),
            "--steps-per-epoch",
            str(per_epoch),
            "--seed",
            str(repeat_seed),
            "--run-dir",
            str(run_dir),
            *extra,
            *options,
        ]
        if (run_dir / "state.json").exists():
            args.append("--resume")
        print(f"grid: training {run_dir.name} ({epochs} x {per_epoch} steps)", flush=True)
        if subprocess.run([sys.executable, str(Path(__file__).with_name("train.py")), *args]).returncode:
            print(f"grid: {run_dir.name} failed (its output is above); the other runs go on", flush=True)
            failed.append(run_dir)
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="folder holding one directory per run")
    parser.add_argument("--out", default=None, help="where tables and plots go (default RUNS/compare)")
    parser.add_argument("--static", action="store_true", help="params and GMACs of every arch x encoder instead")
    parser.add_argument("--size", type=int, default=256, help="input size for --static")
    parser.add_argument(
        "--grid",
        choices=["seed", "recipe"],
        default=None,
        help="train a grid first: seed = the original experiments, recipe = U-Net/B0 with today's "
        "recipe and with the one before (basic augmentation, best epoch on validation)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="seeds per grid entry (--seed, --seed + 1, ...)")
    parser.add_argument(
        "--entries",
        default=None,
        help="comma-separated arch/encoder entries of the grid to train "
        "(default: all of it), e.g. cnn/effnet-b0,unet/effnet-b0",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="train each grid entry once per fold of a K-fold group split (K = number of groups: "
        "leave-one-group-out); the table pools folds and seeds",
    )
    parser.add_argument("--budget", type=int, default=240, help="training steps per grid run")
    parser.add_argument("--grid-epochs", type=int, default=4, help="epochs the budget is split into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-predictions", action="store_true", help="skip the prediction grid plot")
    parser.add_argument(
        "--score",
        choices=("both", *SCORES),
        default="both",
        help="which held-out score the answer lines compare (default: pixel IoU and building F1)",
    )
    parser.add_argument(
        "--recipe",
        default=None,
        help="answer the questions among runs of this recipe label "
        "(e.g. aerial/ema; default: the recipe most models were trained with)",
    )
    args, extra = parser.parse_known_args(argv)
    out = Path(args.out or Path(args.runs) / "compare")

    if args.static:
        rows = static_table(args.size)
        print(
            markdown_table(
                rows,
                (
                    ("arch", "arch"),
                    ("encoder", "encoder"),
                    ("params_m", "params (M)"),
                    ("gmacs", f"GMACs @{args.size}"),
                ),
            )
        )
        return rows
    if args.grid:
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        failed = run_grid(
            args.runs,
            kind=args.grid,
            budget=args.budget,
            epochs=args.grid_epochs,
            seed=args.seed,
            repeats=args.repeats,
            folds=args.folds,
            extra=extra,
            only=args.entries.split(",") if args.entries else None,
        )
        for run_dir in failed:
            print(f"grid: {run_dir} failed; run the same command again to resume it")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)} (train.py options are only passed on with --grid)")
    if not Path(args.runs).is_dir():
        sys.exit(
            f"compare.py: no runs folder at {args.runs}; train something first (python train.py) or pass --runs DIR."
        )
    from experiments.aggregate import answer_lines, main_recipe, recipe_lines

    rows, problems = load_runs(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    table = aggregate(rows)
    per_run, summary = markdown_table(rows), markdown_table(summary_rows(table), SUMMARY_COLUMNS)
    recipe = args.recipe or main_recipe(table)
    answers = []
    for score in SCORES if args.score == "both" else (args.score,):
        scored = table if score == SCORE else aggregate(rows, score=score)
        prefix = "" if score == SCORE else f"{SCORES[score]}: "
        answers += [prefix + line for line in answer_lines(scored, recipe) + recipe_lines(scored)]
    selections = selection_markdown(rows)
    summary += "\n\n" + selections if selections else ""
    print(per_run + "\n\n" + summary + "\n")
    for line in answers:
        print(line)
    print(
        f"(models trained with recipe {recipe}; differences of mean held-out scores with a {INTERVAL_METHOD})"
        if answers
        else ""
    )
    for problem in problems:
        print(f"skipped {problem}")
    (out / "results.md").write_text(
        per_run
        + "\n\n"
        + summary
        + "\n\n"
        + "".join(f"- {line}\n" for line in answers)
        + "".join(f"\nskipped {p}" for p in problems)
        + "\n"
    )
    write_csv(rows, out / "results.csv")
    write_csv(summary_rows(table), out / "summary.csv", SUMMARY_COLUMNS)
    if rows:
        plot_iou_vs_gmacs(table, out / "iou_vs_gmacs.png")
        plot_run_curves(rows, args.runs, out / "learning_curves.png")
        if not args.no_predictions:
            plot_prediction_grid(rows, args.runs, out / "predictions.png")
    print(f"tables and plots in {out}")
    return rows


if __name__ == "__main__":
    main()
