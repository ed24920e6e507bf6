"""Building-level scores (the SpaceNet rule) and valid footprints."""

import numpy as np
import pytest
from affine import Affine

from common.scores import building_matches
from inference.evaluation import evaluation_report, scene_scores
from inference.footprints import trace
from tests.helpers import count_buildings


def _box(mask, top, left, height, width):
    mask[top : top + height, left : left + width] = True


def test_building_matches_by_hand():
    truth = np.zeros((40, 60), bool)
    pred = np.zeros((40, 60), bool)
    _box(truth, 2, 2, 6, 6)  # A: found exactly
    _box(pred, 2, 2, 6, 6)
    _box(truth, 2, 20, 6, 6)  # B: found shifted by one row, IoU 30 / 42 = 0.71
    _box(pred, 3, 20, 6, 6)
    _box(truth, 20, 2, 6, 6)  # C: missed
    _box(pred, 20, 40, 5, 5)  # D: a false building
    _box(truth, 30, 20, 8, 8)  # E: just under IoU 0.5: 31 / 64 = 0.484
    _box(pred, 30, 20, 8, 4)  # 32 pixels ...
    pred[30, 23] = False  # ... minus one = 31, all inside E
    # two matched (A, B), one missed (C), one false (D), and one pair just under IoU 0.5 (E), which
    # counts as a missed true building and a false predicted one
    assert building_matches(truth, pred, min_area=4) == (2, 2, 2)
    assert building_matches(truth, pred, min_area=4, match_iou=0.48) == (3, 1, 1)  # E matches below 0.484


def test_one_to_one_and_specks():
    truth = np.zeros((20, 40), bool)
    pred = np.zeros((20, 40), bool)
    _box(truth, 2, 2, 10, 10)  # one true building
    _box(pred, 2, 2, 10, 10)  # found ...
    _box(pred, 14, 30, 2, 2)  # ... plus a 4-pixel speck, dropped at min_area 5
    assert building_matches(truth, pred, min_area=5) == (1, 0, 0)
    assert building_matches(truth, pred, min_area=4) == (1, 1, 0)
    both = np.zeros((20, 40), bool)
    _box(both, 2, 2, 10, 4)
    _box(both, 2, 8, 10, 4)  # two predictions side by side under one true building: at most one may match
    assert building_matches(truth, both, min_area=1) == (0, 2, 1)  # each covers 40 / 100 < 0.5


def test_scene_and_overall_building_scores():
    truth = np.zeros((30, 30), bool)
    pred = np.zeros((30, 30), bool)
    _box(truth, 1, 1, 8, 8)
    _box(pred, 1, 1, 8, 8)
    _box(truth, 15, 15, 8, 8)
    row = scene_scores("a", truth, pred, min_area=4)
    assert (row["building_tp"], row["building_fp"], row["building_fn"]) == (1, 0, 1)
    assert row["building_precision"] == 1.0 and row["building_recall"] == 0.5
    assert row["building_f1"] == pytest.approx(2 / 3)
    other = scene_scores("b", truth, np.zeros_like(pred), min_area=4)
    overall = evaluation_report([row, other])["overall"]
    assert (overall["building_tp"], overall["building_fp"], overall["building_fn"]) == (1, 0, 3)
    assert overall["building_recall"] == 0.25 and overall["building_f1"] == pytest.approx(2 / 5)


def test_footprints_are_valid_and_one_per_building():
    rng = np.random.default_rng(0)
    noisy = rng.random((120, 160)) > 0.55  # corner-touching pixels everywhere: the old tracer's invalid rings
    transform = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)
    polygons = [building["polygon"] for building in trace(noisy, transform=transform, min_area=1)]
    assert polygons and all(p.is_valid for p in polygons)
    from scipy import ndimage

    assert len(polygons) == ndimage.label(noisy)[1] == count_buildings(noisy, min_area=1)  # one per component
    assert sum(p.area for p in polygons) == pytest.approx(noisy.sum() * 0.25)  # exactly the mask's pixels
