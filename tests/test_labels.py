"""experiments.labels: how large the scored buildings of each place are."""

import numpy as np
import pytest
from PIL import Image

from experiments.labels import main, part_areas


def _save(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype("uint8") * 255).save(path)


def test_touching_outlines_are_one_part_and_specks_are_left_out():
    mask = np.zeros((40, 40), bool)
    mask[2:12, 2:12] = True
    mask[2:12, 12:22] = True  # touches the first along an edge: one part of 200
    mask[30:33, 30:33] = True  # a 9-pixel speck
    mask[20:30, 2:7] = True  # 50 pixels, apart
    assert sorted(part_areas(mask, 16).tolist()) == [50, 200]
    assert sorted(part_areas(mask, 1).tolist()) == [9, 50, 200]


def test_table_by_place(tmp_path, capsys):
    block = np.zeros((100, 100), bool)
    block[0:80, 0:80] = True  # one block of 6,400 px
    houses = np.zeros((100, 100), bool)
    for x in range(0, 100, 20):
        houses[10:20, x : x + 10] = True  # five houses of 100 px
    _save(tmp_path / "building_data" / "label" / "dubai_image_part_001t4.png", block)
    _save(tmp_path / "building_data" / "label" / "dubai_image_part_002t4.png", houses)
    _save(tmp_path / "building_data" / "test" / "label" / "rio_3band_1_img5.tif", houses)
    _save(tmp_path / "building_data" / "src" / "dubai_image_part_001t4.png", block)  # an image, not a mask
    main([str(tmp_path), "--large", "5000"])
    rows = {line.split(" | ")[0][2:]: line for line in capsys.readouterr().out.splitlines()[2:]}
    # t4: parts 6400, 100 x 5 -> median 100; 6400 of 6900 building pixels in a large part; 6900 of 20,000 pixels
    assert rows["dubai_t4"] == "| dubai_t4 | 6 | 100 | 3250 | 93% | 34.5% |"
    assert rows["rio"] == "| rio | 5 | 100 | 100 | 0% | 5.0% |"
    assert len(rows) == 2


def test_a_folder_without_masks_is_named(tmp_path):
    with pytest.raises(SystemExit, match=f"no mask below {tmp_path}"):
        main([str(tmp_path)])
