"""The bound on what separation can buy: a predicted patch cut by the true buildings' cells, and the merged share."""

import numpy as np

from experiments.separation_bound import (
    best_split_counts,
    close_counts,
    f1,
    merged_share,
    scene_counts,
    split_by_truth,
)


def _scene():
    truth = np.zeros((40, 60), bool)
    truth[5:15, 5:15] = truth[5:15, 16:26] = True  # two 10 x 10 buildings, a one-pixel gap between them
    truth[25:35, 40:50] = True  # a third one, alone
    predicted = np.zeros_like(truth)
    predicted[5:15, 5:26] = True  # one patch over the first two (the gap filled)
    predicted[26:35, 40:50] = True  # the third, one row short (IoU 0.9)
    predicted[0:3, 50:58] = True  # a 24-pixel false building
    return predicted, truth


def test_split_by_truth_cuts_a_fused_patch_along_the_gap():
    predicted, truth = _scene()
    ids = split_by_truth(predicted, truth)
    assert (ids[~predicted] == 0).all() and (ids[predicted] > 0).all()
    # the fused patch becomes two pieces: columns 5..15 (the gap column, equally near both, goes to the
    # left one) and 16..25; the lone building and the false one stay whole
    assert len(np.unique(ids[5:15, 5:26])) == 2
    assert (ids == ids[10, 5]).sum() == 110 and (ids == ids[10, 25]).sum() == 100
    assert len(np.unique(ids[predicted])) == 4


def test_scene_counts_by_hand():
    predicted, truth = _scene()
    counts = scene_counts(predicted, truth, min_area=16)
    # patches: the fused patch matches neither (IoU 100 / 210 < 0.5), the third matches, the false one does not
    assert counts["patches"].tolist() == [1, 2, 2]
    # split by the truth: all three true buildings matched, only the false one is extra
    assert counts["split"].tolist() == [3, 1, 0]
    assert counts["merged"].tolist() == [2, 3]
    # the bound: all three true buildings are covered at least half (the third 90 of 100), the false
    # patch touches none
    assert counts["bound"].tolist() == [3, 1, 0]
    # the first two are one pixel apart, the third is 10 rows from the second
    assert counts["close"].tolist() == [2, 2, 3]
    # true gaps (background within 3 pixels of both of the first two): the gap column's 10 pixels, and
    # 3 rows x 5 columns (13..17) above and below it; the fused patch covers the 10 of the column
    assert counts["gaps"].tolist() == [10, 10 + 2 * 3 * 5]
    # pixels: 200 of the fused patch's 210 and the third's 90 are true; the gap column's 10 and the
    # 24-pixel false building are extra; the third building's first row (10) is missed
    assert counts["pixels"].tolist() == [290, 34, 10]
    assert f1(counts["patches"]) == 2 / (2 + 2 + 2) and f1(counts["split"]) == 6 / 7


def test_the_bound_counts_a_building_the_mask_covers_less_than_half_as_missed():
    truth = np.zeros((30, 30), bool)
    truth[0:10, 0:10] = truth[20:30, 20:30] = True
    predicted = np.zeros_like(truth)
    predicted[0:10, 0:4] = True  # 40 of the first building's 100 pixels
    predicted[20:30, 20:30] = predicted[20:30, 10:19] = True  # the second building, and a patch beside it
    predicted[12:17, 0:5] = True  # a 25-pixel patch touching nothing
    # tp: only the second building; fp: the untouching patch and the one at columns 10..18 (a gap of one
    # column from the second building, so its own patch); fn: the first building
    assert best_split_counts(predicted, truth, 16) == (1, 2, 1)


def test_close_counts_by_gap():
    truth = np.zeros((20, 60), bool)
    truth[5:15, 0:10] = truth[5:15, 12:22] = True  # a 2-pixel gap
    truth[5:15, 26:36] = True  # 4 pixels from the second
    truth[5:15, 41:51] = True  # 5 pixels from the third
    assert close_counts(truth, 16, gaps=(1, 2, 4, 5)) == (0, 2, 3, 4, 4)
    assert close_counts(np.ones((8, 8), bool), 16) == (0, 0, 1)


def test_merged_share_without_truth_or_prediction():
    empty = np.zeros((8, 8), bool)
    full = np.ones((8, 8), bool)
    assert merged_share(empty, full, 16) == (0, 1) and merged_share(full, empty, 16) == (0, 0)
    assert (split_by_truth(full, empty) == 1).all()


def test_raw_threshold_must_be_a_probability(capsys):
    import pytest

    from experiments.separation_bound import main

    with pytest.raises(SystemExit):
        main(["runs/none", "--raw-threshold", "1.5"])
    assert "--raw-threshold 1.5: a probability between 0 and 1" in capsys.readouterr().err


def test_with_polygon_ids_touching_buildings_count_apart_and_no_data_counts_nowhere():
    ids = np.zeros((30, 40), np.int64)
    ids[5:15, 5:15], ids[5:15, 15:25] = 1, 2  # two 10 x 10 roofs sharing a wall: one part of the mask
    truth = ids > 0
    valid = np.ones_like(truth)
    valid[:, 30:] = False  # no data on the right
    predicted = truth.copy()
    predicted[20:25, 32:38] = True  # a "building" where there is no data
    as_mask = scene_counts(predicted, truth, 16)
    as_ids = scene_counts(predicted, truth, 16, ids, valid)
    assert as_mask["patches"].tolist() == [1, 1, 0] and as_mask["merged"].tolist() == [0, 1]
    # one patch over both roofs: IoU 0.5 with each, so it matches one; the truth's cells cut it into both
    assert as_ids["patches"].tolist() == [1, 0, 1] and as_ids["split"].tolist() == [2, 0, 0]
    assert as_ids["merged"].tolist() == [2, 2] and as_ids["close"].tolist() == [2, 2, 2]
    assert as_ids["pixels"].tolist() == [200, 0, 0]  # the no-data "building" is neither false nor counted
