"""The pictures of a run hold what they say: every panel, the overlay where the model says building, the curves."""

import numpy as np
import pytest
from PIL import Image

from training.plots import plot_learning_curves, plot_predictions

# matplotlib's first two line colours
BLUE, ORANGE, GREEN = (31, 119, 180), (255, 127, 14), (44, 160, 44)


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _columns(picture, count):
    return [picture[:, index] for index in np.array_split(np.arange(picture.shape[1]), count)]


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_prediction_grid_draws_every_panel_and_overlays_only_predicted_pixels(tmp_path, probability):
    images = np.full((4, 64, 64, 3), 128.0)
    masks = np.zeros((4, 64, 64, 1))
    masks[:, 16:48, 16:48] = 1  # a quarter of every truth panel is a building
    path = tmp_path / "predictions.png"
    plot_predictions(images, masks, np.full((4, 64, 64, 1), probability), path)
    picture = _pixels(path)
    assert picture.shape == (4 * 240, 960, 3)  # 12 x 3 inches per row at 80 dpi: four rows, four panels
    image, truth, _, overlay = _columns(picture, 4)
    area = (np.abs(image - 128) <= 1).all(-1).sum()  # the grey image panels' pixels
    assert area > 4 * 180 * 180
    dark = (truth <= 5).all(-1).sum()  # the truth panels: black around a white building
    assert dark / area == pytest.approx(0.75, abs=0.02)
    red = lambda panel: ((panel[..., 0] - panel[..., 1] > 100) & (panel[..., 0] - panel[..., 2] > 100)).sum()  # noqa: E731
    assert red(image) == 0 and red(truth) == 0
    # a predicted pixel is tinted red in the overlay (grey 128 -> (191, 64, 64)), nothing else is
    assert red(overlay) > 4 * 150 * 150 if probability else red(overlay) == 0


def test_learning_curves_draw_train_and_validation_lines(tmp_path):
    history = [{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "val_iou": 0.2 * e} for e in (1, 2, 3)]
    path = tmp_path / "curves.png"
    plot_learning_curves(history, path)
    picture = _pixels(path)
    assert picture.shape == (360, 990, 3)  # 11 x 4 inches at 90 dpi
    loss, scores = _columns(picture, 2)
    near = lambda panel, colour: (np.abs(panel - colour).sum(-1) < 30).sum()  # noqa: E731
    assert near(loss, BLUE) > 200 and near(loss, ORANGE) > 200  # loss and val_loss
    assert near(scores, BLUE) > 200 and near(scores, ORANGE) == 0  # one validation metric: one line
    empty = tmp_path / "empty.png"
    plot_learning_curves([], empty)  # a run killed before its first epoch: axes, no lines
    assert near(_pixels(empty), BLUE) == 0


def test_scores_vs_gmacs_draws_each_score_in_its_own_panel(tmp_path):
    from experiments.plots import plot_iou_vs_gmacs

    nan = float("nan")
    model = {"arch": "unet", "encoder": "effnet-lite0", "weights": "imagenet", "recipe_label": "", "n": 3, "gmacs": 0.9}
    table = [
        {**model, "mean": 0.6, "std": 0.05, "building_f1": 0.2, "building_f1_std": 0.02, "predict_mp_per_sec": 1.4},
        {**model, "arch": "fcn8", "gmacs": 0.4, "mean": 0.5, "std": 0.05, "building_f1": nan, "building_f1_std": nan},
    ]
    path = tmp_path / "scores.png"
    plot_iou_vs_gmacs(table, path)
    picture = _pixels(path)
    assert picture.shape == (377, 880, 3)  # 11 x (4.5 + 0.22 per legend row) inches at 80 dpi
    count = lambda panel, colour: (np.abs(panel - colour).sum(-1) < 30).sum()  # noqa: E731
    iou, f1 = _columns(picture[:-40], 2)  # the panels, without the legend below them
    assert count(iou, BLUE) > 20 and count(iou, ORANGE) > 20  # both models have an IoU
    assert count(f1, BLUE) > 20 and count(f1, ORANGE) == 0  # only the first has a building F1
    legend = picture[-40:]
    assert count(legend, BLUE) > 5 and count(legend, ORANGE) > 5  # one entry per model


def test_runs_learning_curves_draw_training_loss_beside_the_validation_curves(tmp_path):
    from training.plots import plot_runs_learning_curves

    rows = lambda shift: [  # noqa: E731
        {"epoch": e, "loss": 0.9 - 0.1 * e + shift, "val_loss": 0.8 - 0.1 * e + shift, "val_iou": 0.1 * e + shift}
        for e in (1, 2, 3)
    ]
    path = tmp_path / "curves.png"
    b = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4}]
    plot_runs_learning_curves([("a", rows(0.0)), ("b", b), ("a", rows(0.05))], path)  # two runs of model a
    picture = _pixels(path)
    assert picture.shape == (423, 1350, 3)  # 15 x (4.5 + 0.2 per legend row) inches at 90 dpi
    count = lambda panel, colour: (np.abs(panel - colour).sum(-1) < 30).sum()  # noqa: E731
    legend = picture[-30:]
    assert count(legend, BLUE) > 5 and count(legend, ORANGE) > 5 and count(legend, GREEN) == 0  # a's runs: one entry
    loss, val_loss, val_iou = _columns(picture[:-30], 3)
    assert count(loss, BLUE) > 50 and count(loss, ORANGE) > 50  # both runs have a training loss
    assert count(picture, GREEN) == 0  # the second run of a takes a's colour, not a third one
    assert count(val_loss, BLUE) > 50 and count(val_iou, BLUE) > 50
    assert count(val_loss, ORANGE) == 0 and count(val_iou, ORANGE) == 0  # b has no validation curves
