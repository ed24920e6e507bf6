"""compare.py's plots: held-out score against GMACs, learning curves, a grid of predictions."""

import json
import math
from pathlib import Path

from experiments.aggregate import short_name


def plot_iou_vs_gmacs(table, path):
    """Held-out IoU and building F1 against GMACs: one point per model with a ±1 sd error bar (none for n = 1);
    the legend below names each model with its runs and predict MP/s (and its recipe where models differ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    models = [m for m in table if not math.isnan(m["mean"])]
    recipes = {m["recipe_label"] for m in models}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5 + 0.22 * ((len(models) + 1) // 2)))
    panels = (("mean", "std", "held-out IoU"), ("building_f1", "building_f1_std", "held-out building F1"))
    for index, model in enumerate(models):
        colour, marker = plt.cm.tab10(index % 10), "osD^v"[index // 10 % 5]
        recipe = f" [{model['recipe_label']}]" if len(recipes) > 1 else ""
        speed = model.get("predict_mp_per_sec", math.nan)
        speed = "" if math.isnan(speed) else f", {speed:.2f} MP/s"
        label = f"{short_name(model)}{recipe}: n={model['n']}{speed}"
        for ax, (mean_key, sd_key, _) in zip(axes, panels):
            mean, sd = model.get(mean_key, math.nan), model.get(sd_key, math.nan)
            if not math.isnan(mean):
                yerr = 0.0 if math.isnan(sd) else sd
                ax.errorbar(model["gmacs"], mean, yerr=yerr, fmt=marker, color=colour, capsize=3, markersize=6,
                            label=label if ax is axes[0] else None)  # fmt: skip
    for ax, (_, _, title) in zip(axes, panels):
        ax.set(xscale="log", xlabel="GMACs per image at the training size (log)", ylabel=f"{title} (mean ± sd)")
        ax.set_title(f"{title} vs compute" + (f" ({recipes.pop()})" if len(recipes) == 1 else ""), fontsize=9)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())  # the default minor labels of a log axis overlap
        ax.grid(alpha=0.3)
        recipes = {m["recipe_label"] for m in models}
    rows = (len(models) + 1) // 2
    fig.legend(loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.22 * rows / fig.get_figheight() + 0.02, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


PER_RUN = 10  # more runs than this: one colour and legend entry per model


def plot_run_curves(rows, runs_dir, path):
    """Every readable run's curves in one figure, one colour per run (up to ``PER_RUN`` runs) or per model (more);
    returns the runs skipped, with the reason."""
    from training.checkpoints import read_history
    from training.plots import plot_runs_learning_curves

    curves, skipped = [], []
    for row in rows:
        try:
            history = read_history(Path(runs_dir) / row["run"])
        except ValueError as error:
            skipped.append(f"{row['run']}: {error}")
            continue
        if history:
            curves.append((row, history))
    if len(curves) <= PER_RUN:
        labels = [f"{short_name(row)} s{row.get('seed', '')} ({row['run']})" for row, _ in curves]
    else:
        several = len({row.get("recipe_label") for row, _ in curves}) > 1  # name the recipe where models differ
        labels = [short_name(row) + (f" [{row['recipe_label']}]" if several else "") for row, _ in curves]
    plot_runs_learning_curves([(label, history) for label, (_, history) in zip(labels, curves)], path)
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
            # a finished run writes model.keras; committed summaries (results/) keep only the small files by design
            why = "finished, but its weights are not kept here" if (run / "results.json").exists() else "not finished"
            print(f"prediction grid: skipped {row['run']}: no model.keras ({why}; the grid draws runs that have one)")
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
