"""experiments.same_outputs finds a change in any weight, score or output pixel, and none where there is none."""

import json
import shutil
import zipfile

import h5py
import numpy as np
from PIL import Image

from experiments.same_outputs import compare


def _side(folder, weight=1.0, pixel=0, iou=0.5):
    (folder / "run").mkdir(parents=True)
    (folder / "pred").mkdir()
    for name in ("best.weights.h5", "last.weights.h5", "model.weights.h5"):
        with h5py.File(folder / "run" / name, "w") as handle:
            handle["layers/conv/kernel"] = np.full((3, 3), weight, "float32")
    with zipfile.ZipFile(folder / "run" / "model.keras", "w") as archive:
        archive.write(folder / "run" / "model.weights.h5", "model.weights.h5")
    scores = {"heldout_iou": iou, "heldout_f1": 0.6, "heldout_precision": 0.7, "heldout_recall": 0.8}
    (folder / "run" / "results.json").write_text(json.dumps({**scores, "calibration": {"threshold": 0.42}}))
    mask = np.zeros((8, 8), "uint8")
    mask[0, 0] = pixel
    Image.fromarray(mask).save(folder / "pred" / "a_mask.png")
    return folder


def test_same_outputs_are_same_and_each_change_is_named(tmp_path):
    before = _side(tmp_path / "before")
    lines, same = compare(before, _side(tmp_path / "same"))
    assert same and len(lines) == 9 and all(line.endswith(": same") for line in lines)
    lines, same = compare(before, _side(tmp_path / "weight", weight=1.0 + 2**-23))  # one float32 step
    assert not same and [line for line in lines if "DIFFERENT" in line] == [
        "best.weights.h5: DIFFERENT", "last.weights.h5: DIFFERENT", "model.keras weights: DIFFERENT"]  # fmt: skip
    lines, same = compare(before, _side(tmp_path / "pixel", pixel=255))
    assert not same and [line for line in lines if "DIFFERENT" in line] == ["pred/a_mask.png: DIFFERENT"]
    lines, same = compare(before, _side(tmp_path / "score", iou=0.5000001))
    assert not same and [line for line in lines if "DIFFERENT" in line] == ["results.json heldout_iou: DIFFERENT"]
    shutil.rmtree(tmp_path / "same")
