"""Repeated runs -> one row per model, and plain answers with an interval.

A model is (arch, encoder, encoder weights); runs of the same model and recipe are pooled: the
held-out IoU's mean, sample standard deviation and n (runs without a held-out score are counted
in ``runs`` but not in ``n``). Two models are compared by the difference of their mean held-out
score. When both were trained on the same held-out places with the same seeds (a grid's runs),
the runs are paired by (place, seed) and the interval is the 95% paired t-interval of the
differences, which removes what places and seeds add to both; otherwise a 95% Welch
t-interval (unequal variances, Welch-Satterthwaite degrees of freedom). A model is called
better only when the interval excludes zero.
"""

import math

import numpy as np
from scipy import stats

from training.results import is_number  # the results.json schema owns what a number is

SCORE = "heldout_iou"
SCORES = {"heldout_iou": "held-out IoU", "heldout_building_f1": "building F1"}  # what --score chooses from
CONFIDENCE = 0.95
INTERVAL_METHOD = "95% Welch t-interval"

# The questions the project was started for: (question, model A, model B), a model being (arch, encoder,
# encoder weights). First as the random-init B0 grid (compare.py --grid seed) asked them, then in the setting
# they were first asked, over the ImageNet-pretrained EfficientNet-Lite0 (compare.py --grid pretrained).
QUESTIONS = (
    ("FCN vs CNN", ("fcn8", "effnet-b0", "none"), ("cnn", "effnet-b0", "none")),
    ("FCN-8 vs U-Net", ("unet", "effnet-b0", "none"), ("fcn8", "effnet-b0", "none")),
    ("U-Net vs FPN", ("unet", "effnet-b0", "none"), ("fpn", "effnet-b0", "none")),
    ("EfficientNet-B1 vs B0 (U-Net)", ("unet", "effnet-b1", "none"), ("unet", "effnet-b0", "none")),
    ("EfficientNet-B3 vs B0 (U-Net)", ("unet", "effnet-b3", "none"), ("unet", "effnet-b0", "none")),
    ("FCN vs CNN", ("fcn8", "effnet-lite0", "imagenet"), ("cnn", "effnet-lite0", "imagenet")),
    ("FCN-8 vs FCN-32", ("fcn8", "effnet-lite0", "imagenet"), ("fcn32", "effnet-lite0", "imagenet")),
    ("FCN-8 vs U-Net", ("unet", "effnet-lite0", "imagenet"), ("fcn8", "effnet-lite0", "imagenet")),
    ("U-Net vs FPN", ("unet", "effnet-lite0", "imagenet"), ("fpn", "effnet-lite0", "imagenet")),
    ("LinkNet vs U-Net", ("linknet", "effnet-lite0", "imagenet"), ("unet", "effnet-lite0", "imagenet")),
    ("DeepLabV3+ vs U-Net", ("deeplabv3plus", "effnet-lite0", "imagenet"), ("unet", "effnet-lite0", "imagenet")),
    ("EfficientNet-Lite1 vs Lite0 (U-Net)", ("unet", "effnet-lite1", "imagenet"), ("unet", "effnet-lite0", "imagenet")),
    ("EfficientNet-Lite2 vs Lite0 (U-Net)", ("unet", "effnet-lite2", "imagenet"), ("unet", "effnet-lite0", "imagenet")),
    ("ImageNet vs random init (U-Net/Lite0)", ("unet", "effnet-lite0", "imagenet"), ("unet", "effnet-lite0", "none")),
    ("ImageNet Lite0 vs random-init B0 (U-Net)", ("unet", "effnet-lite0", "imagenet"), ("unet", "effnet-b0", "none")),
)


def score_of(row, score=SCORE):
    """The run's held-out IoU (or another ``score`` key) as a float, or NaN when it has none."""
    value = row.get(score)
    return float(value) if is_number(value) else math.nan


def _mean(values):
    values = [v for v in values if is_number(v)]
    return float(np.mean(values)) if values else math.nan


def pair_key(row):
    """What two runs of different models must share to be paired: the held-out places and the seed."""
    return (row.get("heldout_label", ""), row.get("seed"))


def aggregate(rows, score=SCORE):
    """One dict per (arch, encoder, weights, recipe): n, runs, mean, std (NaN for n < 2), costs and speeds.

    ``score``: the results.json key pooled (held-out IoU, or e.g. "heldout_building_f1").
    ``paired``: {(held-out places, seed): score} for pairing with another model's runs.
    Sorted by its mean, best first; models without any score last.
    """
    pooled = {}
    for row in rows:
        key = (row["arch"], row["encoder"], row.get("weights", "none"), row.get("recipe_label", ""))
        pooled.setdefault(key, []).append(row)
    table = []
    for (arch, encoder, weights, recipe), members in pooled.items():
        scored = [(pair_key(m), score_of(m, score)) for m in members]
        scores = [s for _, s in scored if math.isfinite(s)]
        f1 = [s for s in (score_of(m, "heldout_building_f1") for m in members) if math.isfinite(s)]
        table.append(
            {
                "arch": arch,
                "encoder": encoder,
                "weights": weights,
                "recipe_label": recipe,
                "n": len(scores),
                "runs": len(members),
                "scores": scores,
                "paired": {key: s for key, s in scored if math.isfinite(s)},
                "mean": float(np.mean(scores)) if scores else math.nan,
                "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan,
                "params_m": _mean([r.get("params_m") for r in members]),
                "gmacs": _mean([r.get("gmacs") for r in members]),
                "train_images_per_sec": _mean([r.get("train_images_per_sec") for r in members]),
                "predict_mp_per_sec": _mean([r.get("predict_mp_per_sec") for r in members]),
                "building_f1": _mean(f1),
                "building_f1_std": float(np.std(f1, ddof=1)) if len(f1) > 1 else math.nan,
                "heldout": sorted({r.get("heldout_label", "") for r in members}),
            }
        )
    table.sort(
        key=lambda m: (
            math.isnan(m["mean"]),
            -m["mean"] if m["n"] else 0.0,
            m["arch"],
            m["encoder"],
            m["weights"],
            m["recipe_label"],
        )
    )
    return table


def difference_interval(a, b, confidence=CONFIDENCE):
    """(mean(a) - mean(b), low, high) with a Welch t-interval; low/high are NaN when n < 2 on a side."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0.0:  # identical repeats on both sides: the difference is exact
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb))
    return diff, diff - half, diff + half


def paired_interval(a, b, confidence=CONFIDENCE):
    """(mean of a - b, low, high, method) over runs paired by key (dicts key -> score).

    Paired runs share everything but the compared choice (same place, seed and data order), so
    the t-interval of their differences removes what places and seeds add to both. With fewer
    than two shared keys it falls back to Welch's interval on the two sets of scores, and says so.
    """
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        diffs = np.array([a[key] - b[key] for key in shared], dtype="float64")
        mean = float(diffs.mean())
        half = float(stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs)))
        return mean, mean - half, mean + half, f"{confidence:.0%} paired t-interval, {len(diffs)} pairs"
    diff, low, high = difference_interval(list(a.values()), list(b.values()), confidence)
    return diff, low, high, f"{INTERVAL_METHOD} (runs cannot be paired)"


def verdict(name_a, name_b, a, b, pairs=None):
    """A plain sentence: who is better by how much, or that no difference is detectable, and the interval used.

    ``a``, ``b``: the two models' scores; ``pairs``: their {pair key: score} dicts, used when at
    least two keys are shared (paired t-interval), else Welch's interval on the scores.
    """
    if not len(a) or not len(b):
        missing = name_a if not len(a) else name_b
        return f"cannot tell: {missing} has no run with a held-out score"
    shared = len(set(pairs[0]) & set(pairs[1])) if pairs else 0
    if shared >= 2:
        diff, low, high, _ = paired_interval(*pairs)
        method = f"paired, {shared} pairs"
    else:
        diff, low, high = difference_interval(a, b)
        method = "Welch" if pairs else ""
    if math.isnan(low):
        return (
            f"cannot tell: {len(a)} vs {len(b)} run(s) (difference {diff:+.3f}); an interval needs at least "
            "2 runs per model (more seeds: --repeats; or more places: --folds)"
        )
    half = (high - low) / 2
    tail = f" [{method}]" if method else ""
    if low > 0:
        return f"{name_a} better by {diff:.3f} ± {half:.3f}{tail}"
    if high < 0:
        return f"{name_b} better by {-diff:.3f} ± {half:.3f}{tail}"
    return f"no difference detectable at this budget ({diff:+.3f} ± {half:.3f}){tail}"


def main_recipe(table):
    """The recipe label the most models were trained with (the grid's), ties broken by name."""
    counts = {}
    for model in table:
        counts[model["recipe_label"]] = counts.get(model["recipe_label"], 0) + 1
    return min(counts, key=lambda label: (-counts[label], label)) if counts else ""


def short_name(model):
    """arch/encoder of a table row or run row, marked "(random init)" when its encoder had no pretrained weights."""
    return f"{model['arch']}/{model['encoder']}" + (" (random init)" if model.get("weights") == "none" else "")


def model_name(arch, encoder, weights, other_weights):
    """arch/encoder, with its weights when the model it is compared with has other ones."""
    if weights == other_weights:
        return f"{arch}/{encoder}"
    return f"{arch}/{encoder} ({'random init' if weights == 'none' else weights})"


def answer_lines(table, recipe):
    """One line per question, comparing models trained with ``recipe``; questions without both models are left out."""
    models = {(m["arch"], m["encoder"], m.get("weights", "none")): m for m in table if m["recipe_label"] == recipe}
    lines = []
    for question, key_a, key_b in QUESTIONS:
        if key_a not in models or key_b not in models:
            continue
        a, b = models[key_a], models[key_b]
        name_a, name_b = model_name(*key_a, key_b[2]), model_name(*key_b, key_a[2])
        cost = f"; {a['gmacs'] / b['gmacs']:.2f}x the GMACs" if b["gmacs"] and a["encoder"] != b["encoder"] else ""
        pairs = _pairs(a, b)
        lines.append(
            f"{question}: {name_a} {_mean_sd(a)} vs {name_b} {_mean_sd(b)}{cost} -> "
            f"{verdict(name_a, name_b, a['scores'], b['scores'], pairs)}"
        )
    return lines


def score_answer_lines(rows, recipe, scores):
    """answer_lines and recipe_lines for each held-out score key in ``scores`` (its name before all but the IoU's)."""
    lines = []
    for score in scores:
        table = aggregate(rows, score=score)
        prefix = "" if score == SCORE else f"{SCORES[score]}: "
        lines += [prefix + line for line in answer_lines(table, recipe) + recipe_lines(table)]
    return lines


def recipe_lines(table):
    """Each recipe against every other one, for the models trained with both."""
    lines = []
    by_model = {}
    for m in table:
        by_model.setdefault((m["arch"], m["encoder"], m.get("weights", "none")), []).append(m)
    for (arch, encoder, _), members in sorted(by_model.items()):
        members = sorted(members, key=lambda m: m["recipe_label"])
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                name_a, name_b = f"recipe {a['recipe_label']}", f"recipe {b['recipe_label']}"
                pairs = _pairs(a, b)
                lines.append(
                    f"Recipe ({arch}/{encoder}): {a['recipe_label']} {_mean_sd(a)} vs {b['recipe_label']} "
                    f"{_mean_sd(b)} -> {verdict(name_a, name_b, a['scores'], b['scores'], pairs)}"
                )
    return lines


def _pairs(a, b):
    """Both models' {pair key: score} for ``verdict``, or None when either table row has none."""
    return (a["paired"], b["paired"]) if "paired" in a and "paired" in b else None


def _mean_sd(model):
    sd = "" if math.isnan(model["std"]) else f" ± {model['std']:.3f}"
    return f"{model['mean']:.3f}{sd} (n={model['n']})"


def selection_table(rows):
    """Held-out IoU of each weight selection (ema / last / best) over the runs that scored all of them.

    One dict per (arch, encoder, recipe, selection): mean, std (NaN for n < 2), n, and
    ``kept``, whether it is the selection those runs kept. Only runs trained with
    ``--score-selections`` carry more than one selection.
    """
    pooled = {}
    for row in rows:
        selections = row.get("selections")
        if not isinstance(selections, dict) or len(selections) < 2:
            continue
        for name, scores in selections.items():
            value = scores.get("iou") if isinstance(scores, dict) else None
            if isinstance(value, (int, float)) and math.isfinite(value):
                key = (row["arch"], row["encoder"], row.get("recipe_label", ""), name)
                pooled.setdefault(key, []).append(float(value))
    table = []
    for (arch, encoder, recipe, name), values in sorted(pooled.items()):
        table.append(
            {
                "arch": arch,
                "encoder": encoder,
                "recipe_label": recipe,
                "selection": name,
                "n": len(values),
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                "kept": recipe.endswith("/" + name),
                "scores": values,
            }
        )
    return table
