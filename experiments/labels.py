"""What the masks call a building, by place: how large the scored "buildings" are.

    python -m experiments.labels ../shared/data/buildings_sample

Building F1 (``common.scores.building_matches``) counts each 4-connected part of a binary mask
as one building, so neighbours whose outlines touch in the labels are one building to the score,
and a place labelled block by block (one polygon over a row of houses) has blocks as its buildings.
For every mask below a folder named ``label`` (the Kaggle layout: training and test masks), by
place (``data.groups``): the parts (specks under ``--min-area`` left out, as the score does),
their median and 90th-percentile area in pixels, the share of building pixels in parts over
``--large`` pixels, and the share of all pixels that are building. Nothing is written.
"""

import argparse
from pathlib import Path

import numpy as np

MASK_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def part_areas(mask, min_area):
    """Areas (pixels) of the buildings the score counts in a bool mask (``common.scores``: 4-connected, no specks)."""
    from common.scores import _components

    return _components(mask, min_area)[1][1:]


def place_table(folder, *, min_area, large, pattern=None):
    """Markdown lines: one row per place of the masks found below ``folder``."""
    from common.images import decode_mask
    from data.groups import DEFAULT_GROUP_PATTERN, group_of

    files = sorted(
        path for path in Path(folder).rglob("*") if path.parent.name == "label" and path.suffix.lower() in MASK_SUFFIXES
    )
    if not files:
        raise SystemExit(f"experiments.labels: no mask below {folder} (expected .../label/<name>.png or .tif)")
    places = {}
    for path in files:
        mask = decode_mask(path.read_bytes(), str(path))[..., 0] > 0
        areas, pixels = places.setdefault(group_of(path.stem, pattern or DEFAULT_GROUP_PATTERN), ([], [0]))
        areas.extend(part_areas(mask, min_area).tolist())
        pixels[0] += mask.size
    lines = [
        f"| place | buildings | median area (px) | 90th percentile (px) | building pixels in parts over {large:,} px "
        "| building share of all pixels |",
        "|---|---|---|---|---|---|",
    ]
    for place, (areas, (pixels,)) in sorted(places.items()):
        areas = np.asarray(areas, "int64")
        total = int(areas.sum())
        median, p90 = (f"{np.percentile(areas, q):.0f}" for q in (50, 90)) if len(areas) else ("n/a", "n/a")
        big = f"{areas[areas > large].sum() / total:.0%}" if total else "n/a"
        lines.append(f"| {place} | {len(areas)} | {median} | {p90} | {big} | {total / pixels:.1%} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a dataset folder in the Kaggle layout (masks in .../label/)")
    parser.add_argument("--min-area", type=int, default=16, help="parts smaller than this are specks (default 16)")
    parser.add_argument("--large", type=int, default=5000, help="area (pixels) above which a part is large")
    args = parser.parse_args(argv)
    print("\n".join(place_table(args.folder, min_area=args.min_area, large=args.large)))


if __name__ == "__main__":
    main()
