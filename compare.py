"""Compare training runs: per-run and per-model tables, answers with intervals, plots, the grid.

    python compare.py                          # tables of runs/*/results.json + plots in runs/compare/
    python compare.py --runs path/to/runs      # another folder of runs
    python compare.py --static --size 256      # params and GMACs of every arch x encoder, no training
    python compare.py --grid seed --repeats 3 --budget 96 [train.py options, e.g. --holdout dubai_t8]
    python compare.py --grid pretrained --folds 4 --repeats 3 --runs results/questions --work runs/questions \
        --dataset buildings/kaggle --manual-dir DIR   # the questions over ImageNet Lite0; committed as runs finish
    python compare.py --runs results/questions --readme README.md   # the README's block from the committed runs

The scores are each run's held-out IoU and building F1 (results.json "heldout_iou" and
"heldout_building_f1": predict.py's scorer on places kept out of training when the run held
out groups; --score picks one). Runs of one model (arch, encoder, encoder weights) and
recipe are pooled into mean ± standard deviation over n runs, and each of the questions
the project was started for (FCN-8 vs CNN, U-Net vs FCN-8, U-Net vs FPN, which
EfficientNet under U-Net, what ImageNet weights buy) gets one line: the difference of the
means with a 95% t-interval, paired by held-out places and seed where both models have those
runs (else Welch's), and a plain verdict. ``--grid seed`` trains the random-init B0 models,
``--grid pretrained`` the questions over ImageNet EfficientNet-Lite0, ``--grid recipe``
U-Net/B0 with today's recipe and the one before, ``--grid previous-default`` U-Net/B0 with
train.py's default before the ImageNet one; each entry with --repeats seeds and the same
budget. A finished grid run is never trained again; an interrupted one resumes.
"""

import argparse
import sys
from pathlib import Path

from experiments.aggregate import INTERVAL_METHOD, aggregate
from experiments.grid import KINDS, run_grid
from experiments.plots import plot_iou_vs_gmacs, plot_prediction_grid, plot_run_curves
from experiments.report import (
    SCORES,
    SUMMARY_COLUMNS,
    load_runs,
    markdown_table,
    results_markdown,
    selection_markdown,
    static_table,
    summary_rows,
    write_csv,
)


def add_grid_options(parser):
    """--grid and what shapes it: where it trains, seeds, entries, folds, budget."""
    parser.add_argument(
        "--grid",
        choices=KINDS,
        default=None,
        help="train a grid first: seed = the original experiments (random-init B0..B3), recipe = U-Net/B0 "
        "with today's recipe and with the one before, pretrained = the original questions over ImageNet "
        "EfficientNet-Lite0 (every decoder), Lite1/Lite2 and random-init Lite0/B0 under U-Net, previous-default "
        "= U-Net/B0 with train.py's default before ImageNet Lite0 (random init, raw colours, lr 2e-3)",
    )
    parser.add_argument(
        "--work",
        default=None,
        help="with --grid: where the runs train (weights, logs); each finished run's small files are then "
        "copied into --runs (e.g. --runs results/STUDY --work runs/STUDY). Default: in --runs itself",
    )
    parser.add_argument("--repeats", type=int, default=1, help="seeds per grid entry (--seed, --seed + 1, ...)")
    parser.add_argument(
        "--entries",
        default=None,
        help="comma-separated arch/encoder entries of the grid to train, or of the --static table "
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


def parse_args(argv=None):
    """(options, the train.py options passed on to --grid, the parser)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="folder holding one directory per run")
    parser.add_argument("--out", default=None, help="where tables and plots go (default RUNS/compare)")
    parser.add_argument("--static", action="store_true", help="params and GMACs of every arch x encoder instead")
    parser.add_argument("--size", type=int, default=256, help="input size for --static")
    add_grid_options(parser)
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
    parser.add_argument(
        "--readme",
        default=None,
        help="also rewrite this Markdown file's result block for --runs (between its compare.py markers, "
        "e.g. README.md with --runs results/questions) from the runs' small files",
    )
    args, extra = parser.parse_known_args(argv)
    if extra and not args.grid:
        parser.error(f"unrecognized arguments: {' '.join(extra)} (train.py options are only passed on with --grid)")
    return args, extra, parser


def print_static(args, parser):
    """The --static table: params and GMACs at --size of every arch x encoder (or of --entries)."""
    from models import list_archs, list_encoders

    pairs = None
    if args.entries:
        pairs = [tuple(entry.split("/")) for entry in args.entries.split(",")]
        bad = [p for p in pairs if len(p) != 2 or p[0] not in list_archs() or p[1] not in list_encoders()]
        if bad:
            parser.error(
                f"--entries {','.join('/'.join(p) for p in bad)}: write each entry as arch/encoder of the registered "
                f"ones (archs: {', '.join(list_archs())}; encoders: {', '.join(list_encoders())})"
            )
    rows = static_table(args.size, pairs=pairs)
    columns = (("arch", "arch"), ("encoder", "encoder"), ("params_m", "params (M)"), ("gmacs", f"GMACs @{args.size}"))
    print(markdown_table(rows, columns))
    return rows


def report(args):
    """Tables of the runs in --runs (printed and written with the plots to --out), the answer lines."""
    from experiments.aggregate import main_recipe, score_answer_lines

    if not Path(args.runs).is_dir():
        sys.exit(
            f"compare.py: no runs folder at {args.runs}; train something first (python train.py) or pass --runs DIR."
        )
    out = Path(args.out or Path(args.runs) / "compare")
    rows, problems = load_runs(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    table = aggregate(rows)
    per_run, summary = markdown_table(rows), markdown_table(summary_rows(table), SUMMARY_COLUMNS)
    recipe = args.recipe or main_recipe(table)
    answers = score_answer_lines(rows, recipe, SCORES if args.score == "both" else (args.score,))
    selections = selection_markdown(rows)
    summary += "\n\n" + selections if selections else ""
    print(per_run + "\n\n" + summary + "\n")
    for line in answers:
        print(line)
    print(
        f"(models trained with recipe {recipe}; differences of mean held-out scores with a {INTERVAL_METHOD}, or "
        "a 95% paired t-interval where the line says paired: runs matched by held-out places and seed)"
        if answers
        else ""
    )
    for problem in problems:
        print(problem if problem.startswith("note: ") else f"skipped {problem}")
    (out / "results.md").write_text(results_markdown(per_run, summary, answers, problems))
    write_csv(rows, out / "results.csv")
    write_csv(summary_rows(table), out / "summary.csv", SUMMARY_COLUMNS)
    if rows:
        plot_iou_vs_gmacs(table, out / "iou_vs_gmacs.png")
        plot_run_curves(rows, args.runs, out / "learning_curves.png")
        if not args.no_predictions:
            plot_prediction_grid(rows, args.runs, out / "predictions.png")
    print(f"tables and plots in {out}")
    return rows


def main(argv=None):
    args, extra, parser = parse_args(argv)
    if args.static:
        return print_static(args, parser)
    if args.grid:
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        work = args.work or args.runs
        failed = run_grid(
            work,
            keep=None if Path(work).resolve() == Path(args.runs).resolve() else args.runs,
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
    rows = report(args)
    if args.readme:
        from experiments.readme import update_readme

        changed = update_readme(args.readme, args.runs)
        print(f"{args.readme}: the block of {args.runs} {'rewritten' if changed else 'already up to date'}")
    return rows


if __name__ == "__main__":
    main()
