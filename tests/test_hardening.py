"""Real-world bad input: each case is named (file or argument, and what to do) and no file is changed or lost."""

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import images
from data.buildings import readers

ROOT = Path(__file__).resolve().parents[1]
DUMMY = Path(readers.__file__).parent / "dummy_data"


def tree_hash(folder):
    """{relative path: sha256} of every file below ``folder``."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _build(manual_dir, data_dir):
    from data.pipeline import prepare

    return prepare("buildings/kaggle", data_dir=str(data_dir), manual_dir=str(manual_dir))


def _build_error(manual_dir, tmp_path):
    from data.pipeline import DatasetBuildError

    before = tree_hash(manual_dir)
    with pytest.raises(DatasetBuildError) as info:
        _build(manual_dir, tmp_path / "tfds")
    assert tree_hash(manual_dir) == before  # the download is never touched
    return str(info.value)


@pytest.fixture
def manual(tmp_path):
    shutil.copytree(DUMMY, tmp_path / "manual")
    return tmp_path / "manual"


def _png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


# --- wrong labels -----------------------------------------------------------------------
def test_mask_with_several_colours_is_refused_with_its_colours(manual, tmp_path):
    rgb = np.zeros((64, 64, 3), "uint8")
    rgb[:10] = (0x3C, 0x10, 0x98)  # building
    rgb[20:30] = (0x6E, 0xC1, 0xE4)  # road
    (manual / "building_data" / "label" / "tile_000.png").write_bytes(_png(rgb))
    message = _build_error(manual, tmp_path)
    assert "label/tile_000.png has 3 colours" in message
    assert "#3C1098 (640 px)" in message and "#6EC1E4 (640 px)" in message and "#000000" in message


def test_mask_with_one_colour_on_black_is_building_there():
    rgb = np.zeros((8, 8, 3), "uint8")
    rgb[2:4, 2:5] = (0x3C, 0x10, 0x98)
    mask = images.decode_mask(_png(rgb), "m.png")[..., 0]
    assert mask.sum() == 6 and mask[2:4, 2:5].all()


def test_grey_alpha_mask_ignores_its_alpha():
    grey = np.zeros((8, 8), "uint8")
    grey[0, :3] = 255
    la = np.stack([grey, np.full((8, 8), 255, "uint8")], -1)  # opaque everywhere
    mask = images.decode_mask(_png(la, "LA"), "la.png")[..., 0]
    assert mask.sum() == 3  # the old decoder counted the alpha: all 64 pixels were building


def test_same_stem_with_two_extensions_is_refused(manual, tmp_path):
    label = manual / "building_data" / "label"
    shutil.copy(label / "tile_000.png", label / "tile_000.tif")
    src = manual / "building_data" / "src"
    shutil.copy(src / "tile_001.jpg", src / "tile_001.png")
    message = _build_error(manual, tmp_path)
    assert (
        "two files share the name 'tile_000'" in message
        and "label/tile_000.png" in message
        and "label/tile_000.tif" in message
    )
    assert (
        "two files share the name 'tile_001'" in message
        and "src/tile_001.jpg" in message
        and "src/tile_001.png" in message
    )


# --- crashes that are now named -----------------------------------------------------------
def test_macos_zip_metadata_is_ignored(tmp_path):
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as archive:
        for path in sorted(p for p in DUMMY.rglob("*") if p.is_file()):
            relative = str(path.relative_to(DUMMY))
            archive.write(path, "archive/" + relative)
            folder, name = relative.rsplit("/", 1)
            archive.writestr(f"__MACOSX/archive/{folder}/._{name}", b"\x00\x05\x16\x07AppleDouble")
        archive.writestr("archive/building_data/src/.DS_Store", b"\x00\x00\x00\x01Bud1")
        archive.writestr("archive/building_data/label/Thumbs.db", b"junk")
    builder = _build(tmp_path, tmp_path / "tfds")
    assert builder.info.splits["train"].num_examples + builder.info.splits["validation"].num_examples == 4
    assert builder.info.splits["test"].num_examples == 2


def test_macos_metadata_in_an_extracted_folder_is_ignored(manual, tmp_path):
    (manual / "__MACOSX" / "building_data" / "src").mkdir(parents=True)
    (manual / "__MACOSX" / "building_data" / "src" / "._tile_000.png").write_bytes(b"\x00\x05\x16\x07")
    (manual / "building_data" / "src" / "._tile_000.png").write_bytes(b"\x00\x05\x16\x07")
    (manual / "building_data" / "label" / ".DS_Store").write_bytes(b"Bud1")
    builder = _build(manual, tmp_path / "tfds")
    assert builder.info.splits["train"].num_examples + builder.info.splits["validation"].num_examples == 4


def test_tiny_dataset_gets_a_validation_example(tmp_path):
    stems = ["only_a", "only_b"]
    assert not any(readers.is_validation(s, 0.05) for s in stems)  # the hash alone would leave validation empty
    root = tmp_path / "manual" / "building_data"
    for folder in ("src", "label", "test/src", "test/label"):
        (root / folder).mkdir(parents=True)
    for stem in stems + ["test/scene"]:
        prefix = "test/" if stem.startswith("test/") else ""
        name = stem.split("/")[-1]
        Image.new("RGB", (40, 40), (90, 90, 90)).save(root / prefix / "src" / f"{name}.png")
        Image.new("L", (40, 40), 0).save(root / prefix / "label" / f"{name}.png")
    builder = _build(tmp_path / "manual", tmp_path / "tfds")
    assert builder.info.splits["validation"].num_examples == 1 and builder.info.splits["train"].num_examples == 1
    assert readers.validation_stems(stems, 0.05) == {min(stems, key=readers.split_bucket)}
    with pytest.raises(ValueError, match="Only 1 image/mask pair"):
        readers.validation_stems(["alone"], 0.05)


def test_image_claiming_huge_size_is_refused_before_decoding(monkeypatch):
    png = bytearray(_png(np.zeros((1, 1, 3), "uint8")))
    png[16:24] = struct.pack(">II", 60000, 60000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    assert len(png) < 100
    monkeypatch.setattr(images, "_available_memory", lambda: 16e9)
    with pytest.raises(
        images.TooLargeError, match=r"bomb\.png claims 60000 x 60000 pixels: decoding it needs about 21\.6 GB"
    ):
        images.decode_image(bytes(png), "bomb.png")
    monkeypatch.setattr(images, "_available_memory", lambda: 64e9)  # a large machine may decode a real orthophoto
    with pytest.raises(ValueError, match="Cannot read bomb.png"):  # (this header lies: the data is 1 pixel)
        images.decode_image(bytes(png), "bomb.png")


def test_16_bit_rgb_tiff_is_named_with_the_conversion():
    import warnings

    import rasterio
    from rasterio.io import MemoryFile

    with warnings.catch_warnings(), MemoryFile() as memory:
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with memory.open(driver="GTiff", width=30, height=20, count=3, dtype="uint16") as raster:
            raster.write((np.arange(1800).reshape(3, 20, 30) * 30).astype("uint16"))
        data = memory.read()
    with pytest.raises(ValueError) as info:
        images.decode_image(data, "scene16.tif")
    assert "scene16.tif is a valid 3-band uint16 raster of 30 x 20 pixels" in str(info.value)
    assert "gdal_translate -ot Byte -scale" in str(info.value)


def test_build_error_is_the_last_line_not_a_traceback(manual, tmp_path):
    Image.fromarray(np.full((64, 64), 128, "uint8")).save(manual / "building_data" / "label" / "tile_000.png")
    result = subprocess.run(
        [sys.executable, "-m", "data.build", "--manual-dir", str(manual), "--data-dir", str(tmp_path / "t")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = [line for line in result.stderr.splitlines() if line.strip()][-2:]
    assert "label/tile_000.png has values [128]" in last[0] and "--verbose" in last[1]


# --- train.py: run folders ----------------------------------------------------------------
def _train(*args):
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _our_run(run_dir, **changes):
    """A run folder as train.py leaves it after a finished epoch (config, state, weights, history)."""
    import h5py

    import train

    run_dir.mkdir(parents=True)
    resolved = train.parse_args([]).__dict__  # as train.py saves it: the start recipe resolved
    config = {**resolved, "dataset": "buildings/synthetic", "run_dir": str(run_dir), **changes}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    (run_dir / "state.json").write_text(json.dumps({"epoch": 1, "best_value": 0.5, "monitor": "val_iou"}))
    with h5py.File(run_dir / "last.weights.h5", "w") as weights:
        weights.create_dataset("w", data=np.zeros(3))
    (run_dir / "history.csv").write_text("epoch,loss,val_iou\n1,0.9,0.5\n")
    return run_dir


def test_run_dir_holding_user_files_is_refused(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"my": "settings"}')
    (folder / "history.csv").write_text("year,value\n2020,1\n")
    before = tree_hash(folder)
    result = _train("--run-dir", str(folder), "--epochs", "1")
    assert result.returncode != 0
    assert f"--run-dir {folder} is not empty and holds no run of train.py (config.json, history.csv)" in result.stderr
    assert tree_hash(folder) == before


@pytest.mark.parametrize("kind", ["file", "read-only", "uncreatable"])
def test_unusable_run_dir_is_named_in_one_line(tmp_path, kind):
    target = tmp_path / "run"
    if kind == "file":
        target.write_text("a file")
    elif kind == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root may write into read-only folders")
        tmp_path.joinpath("ro").mkdir()
        target = tmp_path / "ro" / "run"
        tmp_path.joinpath("ro").chmod(0o500)
    else:
        (tmp_path / "blocker").write_text("x")
        target = tmp_path / "blocker" / "run"
    try:
        result = _train("--run-dir", str(target), "--epochs", "1")
    finally:
        tmp_path.joinpath("ro").exists() and tmp_path.joinpath("ro").chmod(0o700)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    if kind == "file":
        assert f"--run-dir {target} is a file, not a folder" in result.stderr
    else:
        assert f"cannot write to --run-dir {target}" in result.stderr


def test_resume_with_other_options_changes_nothing(tmp_path):
    run_dir = _our_run(tmp_path / "run")
    before = tree_hash(run_dir)
    result = _train(
        "--run-dir", str(run_dir), "--resume", "--arch", "fcn8", "--lr", "0.01", "--dataset", "buildings/synthetic"
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--arch 'fcn8' (the run: 'unet')" in result.stderr and "--lr 0.01 (the run: 0.001)" in result.stderr
    assert tree_hash(run_dir) == before


def test_resume_of_a_finished_run_leaves_it_untouched(tmp_path):
    run_dir = _our_run(tmp_path / "run")
    (run_dir / "results.json").write_text(json.dumps({"train_images_per_sec": 12.5}))
    before = tree_hash(run_dir)
    result = _train("--run-dir", str(run_dir), "--resume", "--dataset", "buildings/synthetic")
    assert result.returncode == 0 and "finished earlier (results.json is written); left untouched" in result.stdout
    assert tree_hash(run_dir) == before


@pytest.mark.parametrize("damage", ["weights", "history", "state"])
def test_resume_from_damaged_files_is_named(tmp_path, damage):
    run_dir = _our_run(tmp_path / "run")
    if damage == "weights":
        path = run_dir / "last.weights.h5"
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "history":
        path = run_dir / "history.csv"
        path.write_text("epoch,loss\n1,not-a-number\n")
    else:
        path = run_dir / "state.json"
        path.write_text('{"epoch": ')
    before = tree_hash(run_dir)
    result = _train("--run-dir", str(run_dir), "--resume", "--dataset", "buildings/synthetic")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert str(path) in result.stderr
    assert tree_hash(run_dir) == before


def test_missing_manual_dir_is_named(tmp_path):
    result = _train(
        "--dataset", "buildings/kaggle", "--manual-dir", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "r")
    )
    assert result.returncode != 0 and f"--manual-dir {tmp_path / 'nowhere'}: no such folder" in result.stderr
    assert not (tmp_path / "r").exists()


def test_leftovers_of_a_killed_write_are_cleaned_and_final_writes_are_atomic(tmp_path, monkeypatch):
    import keras

    import train
    from training.checkpoints import atomic_save_model
    from training.rundir import make_run_dir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(
        json.dumps({"arch": "unet", "encoder": "effnet-b0", "dataset": "d", "run_dir": "x", "seed": 0})
    )
    (run_dir / "model.tmp.keras").write_bytes(b"\x00" * 1000)  # a save killed half-way
    (run_dir / "last.tmp.weights.h5").write_bytes(b"\x00" * 1000)
    (run_dir / "results.tmp").write_text("{")
    made, finished = make_run_dir(train.Config(run_dir=str(run_dir)))
    assert made == run_dir and not finished
    assert sorted(p.name for p in run_dir.iterdir()) == [".train.lock", "config.json"]  # the lock: this process's

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    atomic_save_model(model, run_dir / "model.keras")
    before = (run_dir / "model.keras").read_bytes()

    def killed_save(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PK half a model")
        raise KeyboardInterrupt  # SIGTERM during the write

    monkeypatch.setattr(keras.Model, "save", killed_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save_model(model, run_dir / "model.keras")
    assert (run_dir / "model.keras").read_bytes() == before  # the finished model is intact


def test_chief_task_of_a_cluster():
    from training.distribute import chief_and_task

    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    assert chief_and_task({"cluster": cluster, "task": {"type": "chief", "index": 0}}) == (True, "chief0")
    assert chief_and_task({"cluster": cluster, "task": {"type": "worker", "index": 0}}) == (False, "worker0")
    workers = {"worker": ["b:1", "c:1"]}
    assert chief_and_task({"cluster": workers, "task": {"type": "worker", "index": 0}}) == (True, "worker0")
    assert chief_and_task({"cluster": workers, "task": {"type": "worker", "index": 1}}) == (False, "worker1")


def test_neptune_folder_follows_each_run(tmp_path, monkeypatch):
    import types

    from training import trackers

    seen = []
    fake = types.SimpleNamespace(init_run=lambda **kwargs: seen.append(os.environ["NEPTUNE_DATA_DIRECTORY"]) or {})
    monkeypatch.setitem(sys.modules, "neptune", fake)
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", "unset-after-the-test")  # records the variable for undo
    monkeypatch.delenv("NEPTUNE_DATA_DIRECTORY")
    for name in ("first", "second"):
        trackers.NeptuneTracker(tmp_path / name).start({})
    assert seen == [str(tmp_path / "first" / ".neptune"), str(tmp_path / "second" / ".neptune")]
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(tmp_path / "mine"))  # the user's own folder is kept
    trackers.NeptuneTracker(tmp_path / "third").start({})
    assert seen[-1] == str(tmp_path / "mine")


# --- compare.py: damaged runs are listed, good runs still tabulated -------------------------
def test_compare_lists_damaged_runs_and_ranks_nan_last(tmp_path, capsys):
    import compare

    runs = tmp_path / "runs"
    good = {
        "format": 2,
        "arch": "unet",
        "encoder": "effnet-b0",
        "params": 8_502_708,
        "gmacs": 0.87,
        "heldout_iou": 0.4,
        "epochs": 3,
        "wall_seconds": 100.0,
        "dataset": "buildings/kaggle",
        "selection": "ema",
        "recipe": {"augment": "aerial"},
    }
    cases = {
        "a_good": good,
        "b_null_params": {**good, "params": None},
        "c_string_gmacs": {**good, "gmacs": "0.8 G"},
        "d_nan_score": {**good, "heldout_iou": None},
        "e_good_fpn": {**good, "arch": "fpn", "heldout_iou": 0.3},
    }
    for name, results in cases.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps(results))
        (runs / name / "config.json").write_text("{}")
    (runs / "a_good" / "history.csv").write_text("epoch,loss\n1,0.5\n2,oops\n")  # malformed
    (runs / "f_binary").mkdir()
    (runs / "f_binary" / "results.json").write_bytes(b"\xff\xfe\x00garbage")
    before = tree_hash(runs)
    rows = compare.main(["--runs", str(runs), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert [r["run"] for r in rows] == ["a_good", "e_good_fpn", "d_nan_score"]  # NaN last
    assert "skipped b_null_params: results.json has params=None where numbers belong" in out
    assert "skipped c_string_gmacs: results.json has gmacs='0.8 G'" in out
    assert "skipped f_binary: results.json is not valid JSON" in out
    assert "learning curves: skipped a_good:" in out and "history.csv is malformed" in out
    assert "prediction grid: skipped a_good: no model.keras (finished, but its weights are not kept here" in out
    assert "resume" not in out.split("prediction grid: skipped a_good")[1].splitlines()[0]  # a finished run: no resume
    assert (tmp_path / "out" / "iou_vs_gmacs.png").stat().st_size > 3000
    assert tree_hash(runs) == before


# --- predict.py ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from models import create_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    create_model("fcn32", "resnet18", input_shape=(None, None, 3)).save(path)
    return path


def _predict(*args):
    return subprocess.run([sys.executable, "predict.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _scenes(folder):
    folder.mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype="uint8")).save(
            folder / f"{name}.png"
        )
    return folder


def test_predict_out_holding_inputs_is_refused(tmp_path, tiny_model):
    scenes = _scenes(tmp_path / "scenes")
    before = tree_hash(tmp_path)
    for out in (scenes, tmp_path):  # the input folder itself, a folder holding it
        result = _predict("--model", str(tiny_model), str(scenes / "a.png"), str(scenes / "b.png"), "--out", str(out))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"--out {out.resolve()} holds the input {scenes / 'a.png'}" in result.stderr
    for out in (scenes, scenes / "predictions"):  # given as a folder: inside it is refused too
        result = _predict("--model", str(tiny_model), str(scenes), "--out", str(out))
        assert (
            result.returncode != 0
            and f"--out {out.resolve()} lies in the input folder {scenes.resolve()}" in result.stderr
        )
    assert tree_hash(tmp_path) == before  # no output written, no input replaced


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_predict_missing_label_keeps_the_outputs_and_says_what_to_do(tmp_path, tiny_model):
    scenes = _scenes(tmp_path / "scenes")
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.new("L", (60, 40), 0).save(labels / "a.png")
    (scenes / "c.png").write_bytes(b"not an image")
    result = _predict("--model", str(tiny_model), str(scenes), "--labels", str(labels), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "No label for scene 'b'" in result.stderr and "(its outputs are written)" in result.stderr
    assert f"Cannot read {scenes / 'c.png'}" in result.stderr and "run predict.py again" in result.stderr
    assert "build again" not in result.stderr
    for name in ("a_mask.png", "a_prob.png", "b_mask.png", "b_prob.png", "b_overlay.jpg"):
        assert (tmp_path / "out" / name).exists(), name
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["overall"]["pixels"] == 40 * 60


def test_predict_random_bytes_model_is_not_called_missing(tmp_path):
    fake = tmp_path / "model.keras"
    fake.write_bytes(np.random.default_rng(1).bytes(4096))
    result = _predict("--model", str(fake), str(_scenes(tmp_path / "s")), "--out", str(tmp_path / "out"))
    assert (
        result.returncode != 0
        and "is not a Keras archive" in result.stderr
        and "not found" not in result.stderr.lower()
    )


def test_predict_fixed_size_unet_gets_the_real_reason(tmp_path):
    from models import create_model

    path = tmp_path / "unet64.keras"
    create_model("unet", "resnet18", input_shape=(64, 64, 3)).save(path)
    result = _predict("--model", str(path), str(_scenes(tmp_path / "s")), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "saved with a fixed input size of 64x64" in result.stderr and "use --tile 64" in result.stderr
    assert "input_shape=(None, None, 3)" in result.stderr


def test_georeferenced_input_also_gets_prob_png(sample_dir, tmp_path, tiny_model):
    scene = sample_dir / "building_data" / "test" / "src" / "rio_3band_013022223130_Public_img53.tiff"
    result = _predict("--model", str(tiny_model), str(scene), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    for suffix in ("_prob.png", "_prob.tif", "_mask.png", "_mask.tif", ".geojson"):
        assert (tmp_path / "out" / f"{scene.stem}{suffix}").exists(), suffix
    assert Image.open(tmp_path / "out" / f"{scene.stem}_prob.png").size == (438, 406)
