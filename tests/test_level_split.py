"""Splitting buildings at a second, higher probability (experiments.level_split)."""

import json

import numpy as np
import pytest

from experiments.level_split import main, parse_levels, split_by_level
from experiments.shape_split import PATCHES, TRAINING


def _two_blocks_and_a_faint_one():
    """Two 10 x 10 blocks sure at 0.95 joined by a 4-pixel bridge at 0.6, and a lone faint block at 0.6."""
    building = np.zeros((20, 50), "float32")
    building[5:15, 2:12] = 0.95
    building[5:15, 16:26] = 0.95
    building[8:11, 12:16] = 0.6  # the bridge: 3 rows x 4 columns
    building[5:15, 35:45] = 0.6
    return building


def test_a_dip_between_sure_parts_splits_them_and_a_seedless_patch_stays_whole():
    building = _two_blocks_and_a_faint_one()
    body = building >= 0.5
    labels, count = split_by_level(building, body, 0.8, min_area=16)
    assert count == 3 and ((labels > 0) == body).all()  # split, never changed
    assert sorted(np.bincount(labels.ravel())[1:].tolist()) == [100, 106, 106]  # the bridge's 12 pixels shared
    assert labels[10, 5] != labels[10, 20] and len(np.unique(labels[5:15, 35:45])) == 1
    # below the bridge's probability every part is one seed: the patches as they are
    labels, count = split_by_level(building, body, 0.55, min_area=16)
    assert count == 2 and labels[10, 5] == labels[10, 20]


def test_seeds_smaller_than_min_area_are_dropped():
    building = _two_blocks_and_a_faint_one()
    building[5:15, 16:26] = 0.6
    building[9:12, 19:22] = 0.95  # a sure 3 x 3 speck inside the second block
    body = building >= 0.5
    assert split_by_level(building, body, 0.8, min_area=16)[1] == 2  # the speck seeds nothing: two patches
    assert split_by_level(building, body, 0.8, min_area=9)[1] == 3


@pytest.mark.parametrize("text", ["0.5", "1.0", "0.4,0.8", "high", ""])
def test_levels_outside_the_mask_and_certainty_are_refused(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="between 0.5"):
        parse_levels(text)


def test_the_table_comes_from_kept_counts(tmp_path, capsys):
    def counts(tp):
        return {
            TRAINING: {PATCHES: [tp, 2, 2], "shape": [tp, 2, 2], "level 0.8": [tp + 1, 1, 1]},
            "t8": {PATCHES: [tp, 2, 2], "shape": [tp, 2, 2], "level 0.8": [2 * tp, 0, 0]},
        }

    kept = tmp_path / "levels.json"
    kept.write_text(json.dumps({"a_f0_s0": counts(1), "a_f0_s1": counts(2)}))
    main([str(tmp_path / "a_f0_s0"), str(tmp_path / "a_f0_s1"), "--levels", "0.8", "--counts", str(kept)])
    out = capsys.readouterr().out
    assert out.count("counted ") == 2  # from the file: the folders hold no model
    # t8 patches: F1 1/3 and 2/4 -> 0.417; level 0.8: F1 1 in both -> +0.583, 2.40x
    row = next(line for line in out.splitlines() if line.startswith("| t8 | 2 |"))
    assert row.startswith("| t8 | 2 | 0.417 | 0.417 (1.00x; +0.000") and "1.000 (2.40x; +0.583" in row
    assert "level with the highest building F1 on the training images (all runs): 0.8" in out
