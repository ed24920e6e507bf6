"""Plots of runs: learning curves (one run, or several side by side) and a grid of validation predictions."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from training.checkpoints import MONITOR
from training.metrics import KINDS


def plot_learning_curves(history, path):
    """Loss and validation metrics per epoch, saved as a PNG."""
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "val_loss"):
        if history and key in history[0]:
            left.plot(epochs, [row[key] for row in history], marker="o", label=key)
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    if left.lines:  # a run killed before its first epoch has none
        left.legend()
    for key in [f"val_{kind}" for kind in KINDS] + ["iou"]:
        if history and key in history[0]:
            right.plot(epochs, [row[key] for row in history], marker="o", label=key)
    right.set(xlabel="epoch", ylabel="score", title="metrics (threshold 0.5)", ylim=(0, 1))
    if right.lines:
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_runs_learning_curves(curves, path):
    """Training loss, validation loss and validation IoU per epoch of several runs ([(label, history rows)]).

    Runs that share a label (seeds and folds of one model) share a colour and one legend entry, below the panels.
    """
    labels = list(dict.fromkeys(label for label, _ in curves))
    rows = (len(labels) + 2) // 3
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5 + 0.2 * rows), sharex=True)
    panels = (("loss", "training loss"), ("val_loss", "validation loss"), (MONITOR, "validation IoU"))
    seen = set()
    for label, history in curves:
        index = labels.index(label)
        style = dict(color=plt.cm.tab10(index % 10), marker="osD^v"[index // 10 % 5], markersize=4)
        epochs = [row["epoch"] for row in history]
        for ax, (key, _) in zip(axes, panels):
            legend = label if ax is axes[0] and label not in seen else "_nolegend_"
            ax.plot(epochs, [row.get(key, float("nan")) for row in history], label=legend, **style)
        seen.add(label)
    for ax, (_, title) in zip(axes, panels):
        ax.set(xlabel="epoch", ylabel=title, title=title)
    axes[2].set_ylim(0, 1)
    fig.legend(loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.2 * rows + 0.05) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_predictions(images, masks, probabilities, path, *, max_rows=6):
    """Rows of image | ground truth | probability | overlay of the 0.5-threshold mask."""
    rows = min(max_rows, len(images))
    fig, axes = plt.subplots(rows, 4, figsize=(12, 3 * rows), squeeze=False)
    for row in range(rows):
        image = np.clip(images[row, ..., :3], 0, 255).astype("uint8")  # RGB of any further bands
        predicted = probabilities[row, ..., 0] > 0.5
        overlay = image.copy()
        overlay[predicted] = (0.5 * overlay[predicted] + [127, 0, 0]).astype("uint8")
        panels = (image, masks[row, ..., 0], probabilities[row, ..., 0], overlay)
        for col, (panel, title) in enumerate(zip(panels, ("image", "truth", "probability", "prediction"))):
            axes[row, col].imshow(
                panel, cmap=None if panel.ndim == 3 else "gray", vmin=0, vmax=1 if panel.ndim == 2 else None
            )
            axes[row, col].set_title(title)
            axes[row, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
