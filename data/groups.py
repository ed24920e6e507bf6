"""Spatial groups: which place (source tile or scene) each image comes from.

Images cut from one tile share buildings styles, light and ground, so a model scored on
other parts of a tile it trained on is scored on a place it has seen. Splits and folds
here keep every group whole: all of its images are on one side.

A group is named by a regular expression searched in the file stem; the non-empty
capture groups of the first match, joined by "_", are the group's name. The default rule
reads the Kaggle "buildings-dataset" layout and similar names:

    dubai_image_part_003t5   -> dubai_t5   (Dubai tile t5, part 3)
    rio_3band_..._img50      -> rio        (the SpaceNet Rio scene)
    austin12, chicago_tile_3 -> austin, chicago   (a trailing image number is dropped)
    z19_309606_261636__OAM-1238424-1046544-21 -> z19_309606_261636   (the polygons config: place__name;
                                                                       the default rule reads the place)

Pass another rule with ``--group-pattern``; ``(.*)`` makes every image its own group (a
random split, which overstates how well a model does on new places).
"""

import re
from pathlib import PurePosixPath

DEFAULT_GROUP_PATTERN = r"^(dubai)_image_part_\d+(t\d+)$|^(rio)_|^(.+?)[-_]?(?:img|image|tile|part)?[-_]?\d+$"
PLACE_MARK = "__"  # the polygons config names examples "<place>__<chip or window>": the default rule reads the place


def group_of(file_name, pattern=DEFAULT_GROUP_PATTERN):
    """The group name of one image file (its stem is matched against ``pattern``)."""
    stem = PurePosixPath(str(file_name)).stem
    if pattern == DEFAULT_GROUP_PATTERN and PLACE_MARK in stem:  # a block of web-map tiles, or a scene
        return stem.split(PLACE_MARK)[0]
    match = re.search(pattern, stem)
    name = "_".join(part for part in match.groups() if part) if match and match.groups() else (match and match.group(0))
    if match is not None and not name:
        raise ValueError(
            f"--group-pattern {pattern!r} matches an empty part of {file_name!r} (it matches the empty string), so it "
            "names no place. Make its capture groups match part of the name, e.g. '^(.+)_\\d+$'. "
            f"Received: file_name={file_name!r}"
        )
    if not name:
        raise ValueError(
            f"Cannot tell which place {file_name!r} comes from: --group-pattern {pattern!r} does not match its "
            "name. Pass a --group-pattern whose capture groups name the source tile or scene, e.g. "
            "'^(.+)_\\d+$' for '<tile>_<number>' names, or '(.*)' to put every image in its own group. "
            f"Received: file_name={file_name!r}"
        )
    return name


def group_names(file_names, pattern=DEFAULT_GROUP_PATTERN):
    """{file name: group} for every file."""
    return {name: group_of(name, pattern) for name in file_names}


def group_folds(groups, folds):
    """Split the groups into ``folds`` lists, each group in exactly one.

    ``groups`` maps each file name to its group. Groups go largest first to the fold with
    the fewest images so far (ties: the lower fold), so folds are about equal in images
    and the assignment depends only on the names. ``folds`` equal to the number of groups
    is leave-one-group-out.
    """
    sizes = {}
    for group in groups.values():
        sizes[group] = sizes.get(group, 0) + 1
    if not 2 <= folds <= len(sizes):
        raise ValueError(
            f"--folds must lie between 2 and the number of groups ({len(sizes)}: {', '.join(sorted(sizes))}); "
            f"{len(sizes)} is leave-one-group-out. Received: folds={folds}"
        )
    members, loads = [[] for _ in range(folds)], [0] * folds
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        target = min(range(folds), key=lambda i: (loads[i], i))
        members[target].append(group)
        loads[target] += sizes[group]
    return [sorted(fold) for fold in members]


def split_by_groups(groups, held_out):
    """(kept, held-out) file names: every file of a held-out group goes to the second list."""
    known = set(groups.values())
    unknown = sorted(set(held_out) - known)
    if unknown:
        raise ValueError(
            f"--holdout names group(s) that no image belongs to: {', '.join(unknown)}. The groups are: "
            f"{', '.join(sorted(known))}. Received: holdout={','.join(sorted(held_out))!r}"
        )
    held_out = set(held_out)
    kept = sorted(name for name, group in groups.items() if group not in held_out)
    away = sorted(name for name, group in groups.items() if group in held_out)
    return kept, away
