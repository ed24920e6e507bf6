"""Spatial groups: the rule on the sample's names, group-whole splits and folds."""

import itertools

import pytest

from data.groups import group_folds, group_names, group_of, split_by_groups

# the sample's file names (../shared/data/buildings_sample/building_data/{src,test/src})
DUBAI_TILES = {
    1: range(1, 10),
    3: range(1, 10),
    4: range(1, 10),
    5: range(1, 10),
    6: range(1, 10),
    7: range(1, 10),
    8: range(1, 10),
}
SAMPLE = [f"dubai_image_part_{part:03d}t{tile}.jpg" for tile, parts in DUBAI_TILES.items() for part in parts]
SAMPLE += [f"rio_3band_013022223130_Public_img{i}.tif" for i in (50, 51, 52, 53, 54, 55, 57, 58, 59, 60, 61, 62)]


def test_default_rule_names_the_sample_tiles():
    assert group_of("dubai_image_part_003t5.jpg") == "dubai_t5"
    assert group_of("dubai_image_part_007t8.tiff") == "dubai_t8"
    assert group_of("rio_3band_013022223130_Public_img50.tif") == "rio"
    assert group_of("austin12.tif") == "austin" and group_of("chicago_tile_3.png") == "chicago"
    groups = group_names(SAMPLE)
    counts = {g: list(groups.values()).count(g) for g in set(groups.values())}
    assert counts == {
        "dubai_t1": 9,
        "dubai_t3": 9,
        "dubai_t4": 9,
        "dubai_t5": 9,
        "dubai_t6": 9,
        "dubai_t7": 9,
        "dubai_t8": 9,
        "rio": 12,
    }


def test_user_pattern_and_unmatched_names():
    assert group_of("area-07_row3_col9.png", r"^(area-\d+)_") == "area-07"
    assert group_of("x.png", "(.*)") == "x"  # every image its own group
    with pytest.raises(ValueError, match=r"'scene\.png'.*--group-pattern"):
        group_of("scene.png")  # no trailing number, no known layout: named, never guessed
    assert "Received: file_name='scene.png'" in str(pytest.raises(ValueError, group_of, "scene.png").value)


def test_split_keeps_every_group_on_one_side():
    groups = group_names(SAMPLE)
    for held in (["dubai_t8"], ["rio", "dubai_t1"]):
        kept, away = split_by_groups(groups, held)
        assert sorted(kept + away) == sorted(SAMPLE) and not set(kept) & set(away)
        assert {groups[n] for n in away} == set(held)
        assert not {groups[n] for n in kept} & set(held)
    assert len(split_by_groups(groups, ["dubai_t8"])[1]) == 9
    with pytest.raises(ValueError, match="dubai_t2"):
        split_by_groups(groups, ["dubai_t2"])  # no such tile in the sample


@pytest.mark.parametrize("folds", [2, 3, 4, 8])
def test_folds_cover_every_group_once(folds):
    groups = group_names(SAMPLE)
    members = group_folds(groups, folds)
    assert len(members) == folds and all(members)
    flat = list(itertools.chain.from_iterable(members))
    assert sorted(flat) == sorted(set(groups.values()))  # each group in exactly one fold
    sizes = [sum(1 for g in groups.values() if g in fold) for fold in members]
    assert max(sizes) - min(sizes) <= 12  # balanced by images up to one group
    for fold in members:  # a fold's training side never shares a group with its held-out side
        kept, away = split_by_groups(groups, fold)
        assert not {groups[n] for n in kept} & {groups[n] for n in away}
    assert group_folds(groups, folds) == members  # deterministic


def test_leave_one_group_out_and_bad_fold_counts():
    groups = group_names(SAMPLE)
    assert sorted(map(tuple, group_folds(groups, 8))) == sorted((g,) for g in set(groups.values()))
    for bad in (1, 9):
        with pytest.raises(ValueError, match="between 2 and the number of groups"):
            group_folds(groups, bad)
