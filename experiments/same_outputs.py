"""Does a change keep behaviour? A seeded tiny train.py + predict.py at another commit and here, compared bit for bit.

    python -m experiments.same_outputs --before d9e0105          # a commit, tag or branch
    python -m experiments.same_outputs --compare A B             # two folders this script filled earlier

Both sides train the same seeded U-Net / EfficientNet-B0 for 2 x 4 steps on the synthetic set (every option
pinned, in flags that every version of train.py since the calibrated threshold understands), then predict a
Rio GeoTIFF and a Dubai JPEG of the real sample in float32. Compared: every array of best/last.weights.h5
and of model.keras, the held-out scores and calibrated threshold in results.json, every picture and raster
predict.py wrote, and every footprint (geometry WKB and attributes). Exit status 1 when anything differs.
"""

import argparse
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "buildings_sample" / "building_data" / "src"
SCENES = ("rio_3band_013022223130_Public_img50.tif", "dubai_image_part_001t8.jpg")
TRAIN = [
    "--dataset",
    "buildings/synthetic",
    "--arch",
    "unet",
    "--encoder",
    "effnet-b0",
    "--encoder-weights",
    "none",
    "--standardize",
    "none",
    "--augment",
    "basic",
    "--select",
    "ema",
    "--calibrate",
    "train",
    "--image-size",
    "64",
    "--batch-size",
    "4",
    "--epochs",
    "2",
    "--steps-per-epoch",
    "4",
    "--warmup-steps",
    "1",
    "--tracker",
    "local",
    "--seed",
    "0",
    "--lr",
    "0.002",
    "--optimizer",
    "adamw",
    "--schedule",
    "cosine",
    "--loss",
    "dice+focal",
    "--weight-decay",
    "0.0001",
    "--bn-momentum",
    "0.9",
    "--crops-per-image",
    "8",
    "--ema-fraction",
    "0.1",
    "--precision",
    "float32",
]  # fmt: skip  (every default pinned: defaults may change)


def run_side(code, out):
    """Train and predict with the train.py / predict.py of folder ``code``; outputs under ``out``."""
    run = [sys.executable, "train.py", *TRAIN, "--data-dir", str(out / "tfds"), "--run-dir", str(out / "run")]
    subprocess.run(run, cwd=code, check=True, capture_output=True)
    help_text = subprocess.run([sys.executable, "predict.py", "--help"], cwd=code, capture_output=True, text=True)
    extra = ["--separate", "none"] if "--separate" in help_text.stdout else []  # older versions never separate
    scenes = [str(SAMPLE / name) for name in SCENES]
    predict = [sys.executable, "predict.py", "--model", str(out / "run"), *scenes, "--out", str(out / "pred")]
    subprocess.run([*predict, "--precision", "float32", *extra], cwd=code, check=True, capture_output=True)


def _h5_arrays(source):
    import h5py

    arrays = {}

    def keep(name, item):  # returns None: visititems stops at the first other value
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(source) as handle:
        handle.visititems(keep)
    return arrays


def _same_arrays(first, second):
    return bool(first) and first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


def _contents(path):
    """What a file holds, in a form that compares exactly (None: not compared)."""
    from PIL import Image

    if path.suffix in (".png", ".jpg"):
        return {"pixels": np.asarray(Image.open(path))}
    if path.suffix == ".tif":
        import rasterio

        with rasterio.open(path) as raster:
            return {"pixels": raster.read(), "transform": np.asarray(raster.transform)}
    if path.suffix in (".gpkg", ".geojson"):
        import pyogrio.raw

        meta, _, geometry, fields = pyogrio.raw.read(path)
        return {"geometry": np.asarray(geometry, dtype=object), "names": np.asarray(meta["fields"]), **dict(
            zip(meta["fields"], fields))}  # fmt: skip
    return None


def _equal(a, b):
    """Arrays equal, NaN equal to NaN where the values are numbers (a footprint's area_m2 without a CRS)."""
    a, b = np.asarray(a), np.asarray(b)
    numbers = a.dtype.kind in "fc" and b.dtype.kind in "fc"
    return np.array_equal(a, b, equal_nan=numbers)


def compare(before, after):
    """Lines of '<what>: same' / '<what>: DIFFERENT'; the second value is True when everything is the same."""
    lines, same = [], True

    def record(what, equal):
        nonlocal same
        same &= bool(equal)
        lines.append(f"{what}: {'same' if equal else 'DIFFERENT'}")

    for name in ("best.weights.h5", "last.weights.h5"):
        record(name, _same_arrays(_h5_arrays(before / "run" / name), _h5_arrays(after / "run" / name)))
    weights = [_h5_arrays(io.BytesIO(zipfile.ZipFile(side / "run" / "model.keras").read("model.weights.h5")))
               for side in (before, after)]  # fmt: skip
    record("model.keras weights", _same_arrays(*weights))
    results = [json.loads((side / "run" / "results.json").read_text()) for side in (before, after)]
    for key in ("heldout_iou", "heldout_f1", "heldout_precision", "heldout_recall"):
        record(f"results.json {key}", results[0][key] == results[1][key])
    record("calibrated threshold", results[0]["calibration"]["threshold"] == results[1]["calibration"]["threshold"])
    for path in sorted((before / "pred").iterdir()):
        contents = _contents(path)
        if contents is not None and (after / "pred" / path.name).exists():
            other = _contents(after / "pred" / path.name)
            record(f"pred/{path.name}", other.keys() == contents.keys() and all(
                _equal(contents[k], other[k]) for k in contents))  # fmt: skip
    return lines, same


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="a git commit, tag or branch of this repository")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if not args.compare and not args.before:
        parser.error("pass --before COMMIT or --compare BEFORE AFTER")
    if not args.compare and not SAMPLE.is_dir():
        parser.error(f"the real sample is not at {SAMPLE}: its scenes are what predict.py maps here")
    work = Path(tempfile.mkdtemp(prefix="same_outputs_"))
    if args.compare:
        before, after = args.compare
    else:
        code = work / "code"
        subprocess.run(["git", "worktree", "add", "--detach", str(code), args.before], cwd=ROOT, check=True)
        try:
            before, after = work / "before", work / "after"
            run_side(code, before)
            run_side(ROOT, after)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(code)], cwd=ROOT, check=False)
    lines, same = compare(before, after)
    print("\n".join(lines))
    print(f"{'identical' if same else 'DIFFERENT'}: {before} vs {after}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
