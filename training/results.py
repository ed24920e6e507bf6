"""results.json: the one definition of a finished run's summary (keys, format, numbers), its writer and reader.

train.py writes it last (its presence marks a finished run); compare.py, experiments/ and the
tests read it through ``read_results``. Formats:

1. the first runs: validation scores only (``val_iou``), no held-out score;
2. held-out scores from predict.py's scorer (``heldout_iou`` ...; building scores from 2026-11-26);
3. also ``targets``, ``separated`` (whether the kept model separates buildings: chosen on the
   calibration images), a separating model's held-out building F1 both ways, and the recipe's
   encoder weights, ``--init`` and ``--freeze-encoder``.

A run of an older format is still read (and labelled by its format); only a damaged file, or one
without the keys every format has, is refused with the reason.
"""

import json
import math
from pathlib import Path

from training.checkpoints import atomic_write_json

FORMAT = 3
# compare.py labels a run's recipe by what differs from this one (train.py's defaults of 2026-11-26,
# a random-init U-Net / EfficientNet-B0), so labels keep their meaning when the defaults change
REFERENCE_RECIPE = {
    "calibrate": "train",
    "standardize": "none",
    "targets": "building",
    "gap_weight": 0.0,
    "fine_skip": False,
    "zoom": 1,
    "loss": "dice+focal",
    "lr": 2e-3,
    "steps": 210,
}
REQUIRED = ("arch", "encoder", "params", "gmacs", "epochs", "wall_seconds", "dataset")
NUMBERS = ("params", "gmacs", "epochs", "wall_seconds")
# numbers that may be missing or null (a run that trained no step has no speed); shown as n/a
OPTIONAL_NUMBERS = (
    "heldout_iou",
    "heldout_f1",
    "heldout_precision",
    "heldout_recall",
    "heldout_building_f1",
    "heldout_unseparated_building_f1",
    "heldout_separated_building_f1",
    "train_images_per_sec",
    "predict_mp_per_sec",
)


def is_number(value):
    """A finite int or float (not a bool, None, a string or NaN): what a results.json number must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_of(results):
    """The format of a results dict: its own "format", else 2 with a held-out score, else 1."""
    declared = results.get("format")
    if isinstance(declared, int) and not isinstance(declared, bool):
        return declared
    return 2 if "heldout_iou" in results else 1


def write_results(results, path):
    """Write a run's results.json (format ``FORMAT``), refusing values that are not numbers where numbers belong."""
    results = {"format": FORMAT, **results}
    missing = [key for key in REQUIRED if key not in results]
    wrong = [key for key in NUMBERS if not is_number(results.get(key))]
    wrong += [key for key in OPTIONAL_NUMBERS if results.get(key) is not None and not is_number(results[key])]
    if missing or wrong:
        raise ValueError(f"results.json would lack {missing} or hold non-numbers in {wrong}; nothing was written")
    atomic_write_json(results, Path(path))
    return results


def load_json(path):
    """(the parsed file, None) or (None, why it cannot be read), the file named by its name."""
    name = Path(path).name
    try:
        return json.loads(Path(path).read_text()), None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, f"{name} is not valid JSON ({getattr(error, 'msg', error)})"
    except OSError as error:
        return None, f"{name} cannot be read ({error.strerror})"


def read_results(path):
    """(results, problem): the run's results with ``format`` set and bad optional numbers as NaN, or
    (None, why it cannot be used)."""
    results, problem = load_json(path)
    if problem:
        return None, problem
    if not isinstance(results, dict):
        return None, "results.json is not a JSON object (edited or damaged)"
    missing = [key for key in REQUIRED if key not in results]
    if missing:
        return None, f"results.json lacks {', '.join(missing)} (partial, or not written by train.py)"
    not_numbers = [f"{key}={results[key]!r}" for key in NUMBERS if not is_number(results.get(key))]
    if not_numbers:
        return None, f"results.json has {', '.join(not_numbers)} where numbers belong (edited or damaged)"
    outside = [
        f"{key}={results[key]!r}"
        for key in OPTIONAL_NUMBERS
        if key.startswith("heldout_") and is_number(results.get(key)) and not 0 <= results[key] <= 1
    ]
    if outside:
        return None, f"results.json has {', '.join(outside)} outside [0, 1] where scores belong (edited or damaged)"
    results["format"] = format_of(results)
    notes = []
    for key in OPTIONAL_NUMBERS:
        if key in results and not is_number(results[key]):
            if results[key] is not None:
                notes.append(f"{key}={results[key]!r} is not a number (shown as n/a)")
            results[key] = math.nan
    results["notes"] = notes
    return results, None


def read_evaluation(path):
    """(scores, problem) of a predict.py evaluation's metrics.json: its overall scores as held-out ones
    (``heldout_iou`` ...), checked as read_results checks a run's, or (None, why it cannot be used)."""
    report, problem = load_json(path)
    if problem:
        return None, problem
    overall = report.get("overall") if isinstance(report, dict) else None
    if not isinstance(overall, dict):
        return None, "metrics.json has no overall scores (partial, or not written by predict.py)"
    scores = {f"heldout_{key}": value for key, value in overall.items()}
    bad = [f"{key}={value!r}" for key, value in scores.items() if key in OPTIONAL_NUMBERS
           and not (is_number(value) and 0 <= value <= 1)]  # fmt: skip
    if bad:
        return None, f"metrics.json has {', '.join(bad)} where scores in [0, 1] belong (edited or damaged)"
    return scores, None


def read_run(path, *, tool):
    """A run's results.json (or an evaluation's metrics.json) for a tool reading run folders: the scores, or None
    after saying on stderr which file was skipped and why (every tool reports a damaged run the same way)."""
    import sys

    path = Path(path)
    data, problem = (read_evaluation if path.name == "metrics.json" else read_results)(path)
    if problem:
        print(f"{tool}: skipped {path.parent}: {problem}", file=sys.stderr)
        return None
    return data


def skipped_note(tool, skipped):
    """The closing note of a tool that skipped damaged or partial runs ('' when it skipped none)."""
    return f"{tool}: note: {skipped} damaged or partial run(s) skipped (named above)" if skipped else ""


def finished_results(run_dir, tool):
    """The results of a run a study cannot do without: read through ``read_results``; a damaged or missing
    results.json stops the tool with a message naming it."""
    results, problem = read_results(Path(run_dir) / "results.json")
    if problem:
        raise SystemExit(f"{tool}: {Path(run_dir) / 'results.json'}: {problem}")
    return results


def read_yardstick(path):
    """(scores per place, problem) of a yardstick's JSON (``../shared/baselines/plain_unet.py --json``):
    {place: {"heldout_iou", "heldout_building_f1"}} plus "all" (its places pooled), checked like a run's."""
    report, problem = load_json(path)
    if problem:
        return None, problem
    places = report.get("places") if isinstance(report, dict) else None
    if not isinstance(places, dict) or not isinstance(report.get("all"), dict):
        return None, f"{Path(path).name} has no per-place scores (not a yardstick's --json output)"
    scores = {}
    for place, row in [*places.items(), ("all", report["all"])]:
        pair = {"heldout_iou": row.get("pixel_iou"), "heldout_building_f1": row.get("building_f1")}
        if not all(is_number(v) and 0 <= v <= 1 for v in pair.values()):
            return None, f"{Path(path).name} has scores outside [0, 1] or missing for {place} (edited or damaged)"
        scores[place] = pair
    return scores, None
