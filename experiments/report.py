"""compare.py's tables: finished runs read through training.results, recipe labels, Markdown and CSV."""

import csv
import math
from pathlib import Path

from experiments.aggregate import SCORE, SCORES  # noqa: F401  (SCORES: what --score chooses from)

COLUMNS = (
    ("arch", "arch"),
    ("encoder", "encoder"),
    ("weights", "weights"),
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
    ("weights", "weights"),
    ("recipe_label", "recipe"),
    ("iou", "held-out IoU (mean ± sd)"),
    ("f1", "building F1 (mean ± sd)"),
    ("n", "n"),
    ("params_m", "params (M)"),
    ("gmacs", "GMACs"),
    ("train_images_per_sec", "train img/s"),
    ("predict_mp_per_sec", "predict MP/s"),
    ("heldout", "held out"),
)


def recipe_label(recipe, selection):
    """augment/selection, plus what else differs from the reference recipe (e.g. "basic/ema/lr 0.0005/96 steps").

    A run recorded before thresholds were calibrated (no "calibrate" in its recipe) is "threshold none".
    The encoder's weights are not part of it: they are part of the model (its "weights" column).
    """
    if not recipe:
        return ""
    from training.results import REFERENCE_RECIPE as reference

    parts = [recipe.get("augment", "?"), selection]
    if recipe.get("calibrate", "none") != reference["calibrate"]:  # runs from before calibration used 0.5
        parts.append(f"threshold {recipe.get('calibrate', 'none')}")
    if recipe.get("standardize", reference["standardize"]) != reference["standardize"]:
        parts.append(f"standardize {recipe['standardize']}")
    if recipe.get("targets", reference["targets"]) != reference["targets"]:
        parts.append(f"targets {recipe['targets']}")
    if recipe.get("gap_weight", reference["gap_weight"]) != reference["gap_weight"]:
        parts.append(f"gap weight {recipe['gap_weight']:g}")
    if recipe.get("fine_skip", reference["fine_skip"]):
        parts.append("fine skip")
    if recipe.get("tta", False):  # scored as predict.py --tta predicts
        parts.append("tta")
    if recipe.get("zoom", reference["zoom"]) != reference["zoom"]:
        parts.append(f"zoom {recipe['zoom']}x")
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
        problems += [f"note: {run_dir.name} is tabulated, but its {note}" for note in results.pop("notes")]
        recipe = results.get("recipe") if isinstance(results.get("recipe"), dict) else {}
        groups = results.get("heldout_groups") or []
        rows.append(
            {
                **results,
                "params_m": results["params"] / 1e6,
                "run": run_dir.name,
                SCORE: score_of(results),
                "recipe_label": recipe_label(recipe, results.get("selection", "?")),
                "weights": str(recipe.get("encoder_weights", "none")),
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
        iou = _mean_sd(model["mean"], model["std"])
        f1 = _mean_sd(model.get("building_f1", math.nan), model.get("building_f1_std", math.nan))
        rows.append({**model, "iou": iou, "f1": f1, "heldout": ", ".join(model["heldout"])})
    return rows


def _mean_sd(mean, sd):
    if math.isnan(mean):
        return ""
    return f"{mean:.3f}" + ("" if math.isnan(sd) else f" ± {sd:.3f}")


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


def static_table(size, archs=None, encoders=None, *, pairs=None):
    """Rows of params and GMACs at size x size (no training): of every arch x encoder (or of ``archs`` x
    ``encoders``), or of the (arch, encoder) ``pairs``."""
    from models import count_macs, create_model, list_archs, list_encoders

    if pairs is None:
        pairs = [(arch, encoder) for encoder in encoders or list_encoders() for arch in archs or list_archs()]
    rows = []
    for arch, encoder in pairs:
        model = create_model(arch, encoder, input_shape=(size, size, 3))
        rows.append(
            {"arch": arch, "encoder": encoder, "params_m": model.count_params() / 1e6, "gmacs": count_macs(model) / 1e9}
        )
    return rows


def results_markdown(per_run, summary, answers, problems):
    """results.md of compare.py: the per-run and summary tables, the answer lines, the skipped runs."""
    notes = "".join(f"\n{p}" if p.startswith("note: ") else f"\nskipped {p}" for p in problems)
    return per_run + "\n\n" + summary + "\n\n" + "".join(f"- {line}\n" for line in answers) + notes + "\n"
