"""Hardening, round two: names taken literally, options checked before anything is written."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.groups import group_of
from inference.scenes import read_label

ROOT = Path(__file__).resolve().parents[1]


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}


def test_label_lookup_takes_the_scene_name_literally(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.full((4, 6), 255, np.uint8)).save(labels / "a1.png")  # another scene's label
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(labels / "b.png")
    before = _digest(labels)
    # "a[1]" as a pattern would match a1.png; as a name it has no label
    with pytest.raises(ValueError, match=r"No label for scene 'a\[1\]'"):
        read_label(labels, "a[1]", (4, 6))
    with pytest.raises(ValueError, match=r"No label for scene '\?'"):
        read_label(labels, "?", (4, 6))  # would match b.png as a pattern
    Image.fromarray(np.full((4, 6), 255, np.uint8)).save(labels / "a[1].png")
    assert read_label(labels, "a[1]", (4, 6)).all()
    assert _digest(labels) == {**before, "a[1].png": _digest(labels)["a[1].png"]}


def _cli(script, *args):
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_bad_group_pattern_is_refused_before_any_write(tmp_path):
    run = tmp_path / "run"
    done = _cli("train.py", "--group-pattern", "([", "--holdout", "x", "--run-dir", run)
    assert done.returncode != 0 and "--group-pattern '([' is not a regular expression" in done.stderr
    assert not run.exists()
    with pytest.raises(ValueError, match="matches an empty part of 'tile_3.png'"):
        group_of("tile_3.png", "x*")


def test_bad_bands_are_named(tmp_path):
    scene = tmp_path / "s.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(scene)
    for bands in ("a,b,c", "1,2", "0,1,2"):
        done = _cli("predict.py", "--model", tmp_path / "none.keras", scene, "--bands", bands, "--out", tmp_path / "o")
        assert done.returncode == 2 and f"--bands: {bands!r} is not band numbers (1-based" in done.stderr
        assert "invalid band_numbers value" not in done.stderr and "<lambda>" not in done.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_an_empty_validation_split_is_said_and_no_best_epoch_is_recorded(synthetic_dir, tmp_path):
    import json

    from tests.tiny import TINY_TRAIN

    run = tmp_path / "run"
    args = [*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--epochs", "1",
            "--calibrate", "none", "--holdout", "synthetic_validation", "--run-dir", run]  # fmt: skip
    done = _cli("train.py", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: the validation split is empty" in done.stdout
    results = json.loads((run / "results.json").read_text())
    assert results["best_epoch"] is None and results["heldout_groups"] == ["synthetic_validation"]


def _tiny_model(path):
    from models import create_model

    create_model("fcn32", "resnet18", input_shape=(None, None, 3)).save(path)
    return path


def test_outputs_never_write_through_planted_links_and_stale_staging_is_cleaned(tmp_path):
    model = _tiny_model(tmp_path / "model.keras")
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(scenes / "a.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a_mask.png", "a_prob.png", "a_overlay.jpg", "a.gpkg"):  # links under the names predict.py writes
        (outside / name).write_bytes(b"keep me")
        (out / name).symlink_to(outside / name)
    stale = out / ".a_mask.999999999-0123abcd.partial.png"  # left by a killed process (no such pid)
    stale.write_bytes(b"half")
    before = _digest(outside)
    done = _cli("predict.py", "--model", model, scenes, "--out", out, "--precision", "float32")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _digest(outside) == before  # nothing outside --out changed
    for name in ("a_mask.png", "a_prob.png", "a_overlay.jpg", "a.gpkg"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 100
    assert not stale.exists() and "removed 1 unfinished file(s)" in done.stdout
    assert not [p for p in out.iterdir() if "partial" in p.name]


def test_compare_names_a_score_that_is_not_a_number(tmp_path):
    import json

    base = {"arch": "unet", "encoder": "effnet-lite0", "params": 1, "gmacs": 1.0, "epochs": 1, "wall_seconds": 1.0,
            "dataset": "buildings/synthetic"}  # fmt: skip
    for name, score in {"good": 0.5, "edited": "0.9!"}.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "results.json").write_text(json.dumps({**base, "heldout_iou": score}))
    done = _cli("compare.py", "--runs", tmp_path / "runs", "--no-predictions")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: edited is tabulated, but its heldout_iou='0.9!' is not a number (shown as n/a)" in done.stdout


def test_recalibrate_refuses_a_crafted_model_and_builds_nothing(tmp_path):
    import json
    import zipfile

    run = tmp_path / "run"
    run.mkdir()
    data_dir = tmp_path / "gone"  # the run's dataset folder no longer exists
    config = {"dataset": "buildings/synthetic", "data_dir": str(data_dir), "arch": "unet", "encoder": "effnet-lite0"}
    (run / "config.json").write_text(json.dumps({**config, "bn_momentum": 0.9}))
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {"function": "os.system"}}))
    done = _cli("-m", "experiments.recalibrate", run)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "experiments.recalibrate:" in done.stderr and "does not build it" in done.stderr
    assert not data_dir.exists()


def test_recalibrate_names_a_crafted_model(synthetic_dir, tmp_path):
    import json
    import zipfile

    run = tmp_path / "run"
    run.mkdir()
    config = {"dataset": "buildings/synthetic", "data_dir": synthetic_dir, "arch": "unet", "encoder": "effnet-lite0"}
    (run / "config.json").write_text(json.dumps({**config, "bn_momentum": 0.9}))
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {"function": "os.system"}}))
    done = _cli("-m", "experiments.recalibrate", run)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"experiments.recalibrate: {run}: --model {run / 'model.keras'} could not be loaded" in done.stderr


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_is_not(tmp_path):
    import os
    import socket

    import train
    from training.rundir import LOCK, make_run_dir

    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK).write_text(f"{sleeper.pid} {socket.gethostname()}")  # a live train.py holds it
        with pytest.raises(SystemExit, match=f"is in use by another train.py \\(process {sleeper.pid}\\)"):
            make_run_dir(train.Config(run_dir=str(run)))
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # nothing was changed
    finally:
        sleeper.kill()
        sleeper.wait()
    made, finished = make_run_dir(train.Config(run_dir=str(run)))  # its process is gone: the lock is stale
    assert made == run and not finished
    assert (run / LOCK).read_text() == f"{os.getpid()} {socket.gethostname()}"


def _geotiff(path, array, *, crs="EPSG:32723", origin=(680000.0, 7460000.0), pixel=0.5, nodata=None):
    import rasterio
    from rasterio.transform import from_origin

    bands = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=len(bands), dtype="uint8",
                   crs=crs, transform=from_origin(*origin, pixel, pixel), nodata=nodata)  # fmt: skip
    with rasterio.open(path, "w", **profile) as raster:
        raster.write(bands)
    return path


def test_a_label_of_another_crs_or_grid_is_named_and_not_scored(tmp_path):
    scene = _geotiff(tmp_path / "s.tif", np.zeros((40, 60, 3), np.uint8))
    labels = tmp_path / "labels"
    labels.mkdir()
    truth = np.zeros((40, 60), np.uint8)
    truth[10:20, 10:30] = 255
    from common.rasters import read_georeference

    crs, transform = read_georeference(scene)
    _geotiff(labels / "s.tif", truth)  # the same grid: scored
    assert read_label(labels, "s", (40, 60), crs=crs, transform=transform).sum() == 200
    _geotiff(labels / "s.tif", truth, crs="EPSG:32724")  # same numbers, another UTM zone
    with pytest.raises(ValueError, match=r"labels/s.tif is in EPSG:32724 but its scene in EPSG:32723. Warp"):
        read_label(labels, "s", (40, 60), crs=crs, transform=transform)
    _geotiff(labels / "s.tif", truth, origin=(680005.0, 7460000.0))  # ten pixels east
    with pytest.raises(ValueError, match=r"lies on another grid than its scene: origin \(680005, 7\.46e\+06\)"):
        read_label(labels, "s", (40, 60), crs=crs, transform=transform)
    Image.fromarray(truth).save(labels / "s.png")  # a plain mask is aligned by its size (taken before s.tif)
    (labels / "s.tif").unlink()
    assert read_label(labels, "s", (40, 60), crs=crs, transform=transform).sum() == 200
    # from the command line: the scene is mapped, the score refused with the reason
    _geotiff(labels / "s.tif", truth, crs="EPSG:32724")
    (labels / "s.png").unlink()
    model = _tiny_model(tmp_path / "model.keras")
    done = _cli("predict.py", "--model", model, scene, "--labels", labels, "--out", tmp_path / "o")
    assert done.returncode == 1 and "not scored" in done.stderr and "EPSG:32724" in done.stderr
    assert (tmp_path / "o" / "s_mask.tif").exists() and not (tmp_path / "o" / "metrics.json").exists()


def test_a_scene_too_large_to_score_is_mapped_and_its_score_refused_up_front(tmp_path, monkeypatch, capsys):
    import common.images
    import predict

    scenes, labels = tmp_path / "src", tmp_path / "label"
    scenes.mkdir(), labels.mkdir()
    for name in ("a", "b"):  # GeoTIFFs: read in windows, so only the score needs the whole scene at once
        _geotiff(scenes / f"{name}.tif", np.zeros((64, 96, 3), np.uint8))
        Image.fromarray(np.zeros((64, 96), np.uint8)).save(labels / f"{name}.png")
    model = _tiny_model(tmp_path / "model.keras")
    # as if the machine had 10 kB free: a whole-scene mask (64 x 96 bytes) would take more than half of it
    monkeypatch.setattr(common.images, "_available_memory", lambda: 10_000)
    with pytest.raises(SystemExit, match="2 of 2 input"):
        predict.main(["--model", str(model), str(scenes), "--labels", str(labels), "--out", str(tmp_path / "o"),
                      "--precision", "float32"])  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("holds its whole mask in memory") == 2 and "Its outputs are written" in err
    for name in ("a", "b"):  # mapped all the same
        assert (tmp_path / "o" / f"{name}_mask.tif").exists() and (tmp_path / "o" / f"{name}.gpkg").exists()
    assert not (tmp_path / "o" / "metrics.json").exists()


def _silent_server():
    """A TCP server that accepts connections and never answers (a stalled HTTP server)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(8)], daemon=True).start()
    return server, server.getsockname()[1]


def _remote_vrt(path, url, size=(32, 48)):
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="0">{url}'
        f"</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    path.write_text(f'<VRTDataset rasterXSize="{size[1]}" rasterYSize="{size[0]}">{bands}</VRTDataset>')
    return path


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_a_stalled_network_source_is_given_up_named_and_the_next_scene_mapped(tmp_path):
    server, port = _silent_server()
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    _remote_vrt(scenes / "a_remote.vrt", f"/vsicurl/http://127.0.0.1:{port}/scene.tif")
    _geotiff(scenes / "b_local.tif", np.zeros((32, 48, 3), np.uint8))
    model = _tiny_model(tmp_path / "model.keras")
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "4", "GDAL_HTTP_MAX_RETRY": "2"}  # GDAL's options: the user's win
    command = [sys.executable, "predict.py", "--model", str(model), str(scenes), "--out", str(tmp_path / "o")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    server.close()
    assert done.returncode == 1 and "1 of 2 input(s) could not be read" in done.stderr, done.stderr[-2000:]
    assert "skipped" in done.stderr and "a_remote.vrt" in done.stderr
    assert "did not answer within 4 s (GDAL_HTTP_TIMEOUT, for the whole scene)" in done.stderr  # not "damaged"
    assert (tmp_path / "o" / "b_local_mask.tif").exists()  # the scene after it was mapped
    # --local-only refuses it before any request, naming the source
    refused = _cli("predict.py", "--model", model, scenes / "a_remote.vrt", "--out", tmp_path / "p", "--local-only")
    assert refused.returncode == 1 and "--local-only forbids" in refused.stderr
    assert f"http://127.0.0.1:{port}/scene.tif" in refused.stderr


# what predict.py writes for a small georeferenced scene "a"
A_OUTPUTS = ("_prob.tif", "_mask.tif", ".gpkg", ".geojson", "_prob.png", "_mask.png", "_overlay.jpg")


def _two_geotiff_scenes(folder, shape=(64, 96, 3)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        _geotiff(folder / f"{name}.tif", rng.integers(0, 255, shape, dtype=np.uint8))
    return folder


def _disk_full_errors():
    """A full disk as the libraries report it: an errno, GDAL's write error without one, SQLite's words."""
    import errno

    from pyogrio.errors import DataSourceError
    from rasterio.errors import RasterioIOError

    return [
        OSError(errno.ENOSPC, "No space left on device"),
        RasterioIOError("Write failed: b_prob.tif: No space left on device"),  # errno None
        DataSourceError("sqlite3_exec() failed: database or disk is full"),  # a GeoPackage; not an OSError
    ]


@pytest.mark.parametrize("error", _disk_full_errors(), ids=["errno", "gdal", "sqlite"])
def test_a_full_disk_names_the_scene_removes_its_files_and_keeps_the_ones_before(tmp_path, monkeypatch, capsys, error):
    import inference.outputs
    import predict

    scenes = _two_geotiff_scenes(tmp_path / "src")
    model = _tiny_model(tmp_path / "model.keras")
    write = inference.outputs.GeoTiffRows.write

    def full_on_b(self, rows, valid=None):
        if "b_" in str(self.path):
            raise error
        return write(self, rows, valid)

    monkeypatch.setattr(inference.outputs.GeoTiffRows, "write", full_on_b)
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as stopped:
        predict.main(["--model", str(model), str(scenes), "--out", str(out), "--precision", "float32"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert (
        "the disk is full (" in err and f"while predicting {scenes / 'b.tif'}; its unfinished files were removed" in err
    )
    assert "The 1 scene(s) before it are complete" in err
    assert {p.name for p in out.iterdir()} == {f"a{kind}" for kind in A_OUTPUTS}


def test_sigterm_during_a_scene_removes_its_files_and_says_which(tmp_path):
    scenes = _two_geotiff_scenes(tmp_path / "src", shape=(256, 96, 3))
    model = _tiny_model(tmp_path / "model.keras")
    out = tmp_path / "o"
    # SIGTERM after the first strip of scene b, whatever the machine's speed
    script = """
import os, signal, sys
import inference.tiling
strips = inference.tiling.predict_strips

def first_strip_then_sigterm(logit_fn, source, **kwargs):
    for number, strip in enumerate(strips(logit_fn, source, **kwargs)):
        yield strip
        if source.path.stem == "b" and number == 0:
            os.kill(os.getpid(), signal.SIGTERM)

inference.tiling.predict_strips = first_strip_then_sigterm
import predict
predict.main(sys.argv[1:])
"""
    done = subprocess.run([sys.executable, "-c", script, "--model", str(model), str(scenes), "--out", str(out),
                           "--tile", "64", "--overlap", "0", "--precision", "float32"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 130, done.stderr[-2000:]
    assert f"interrupted while predicting {scenes / 'b.tif'}; its unfinished files were removed" in done.stderr
    assert {p.name for p in out.iterdir()} == {f"a{kind}" for kind in A_OUTPUTS}


def test_a_scene_whose_outputs_cannot_fit_is_refused_before_any_write(tmp_path, monkeypatch, capsys):
    import collections
    import shutil

    import predict

    scenes = _two_geotiff_scenes(tmp_path / "src")
    model = _tiny_model(tmp_path / "model.keras")
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 50_000, 50_000))  # 50 kB free
    with pytest.raises(SystemExit, match="2 of 2 input"):
        predict.main(["--model", str(model), str(scenes), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert err.count("its outputs need up to 81.9 kB and") == 2 and err.count("has 50.0 kB free") == 2  # 6,144 px
    assert [p.name for p in (tmp_path / "o").iterdir()] == []


def test_large_scenes_are_announced_and_logs_get_progress_lines(tmp_path, monkeypatch, capsys):
    from inference.job import ProgressLines, SceneJob, before_scene

    job = SceneJob(out=str(tmp_path))
    before_scene(Path("big.tif"), 20_000, 10_000, job, pace=2.0)  # 200 MP at 2 MP/s
    before_scene(Path("first.tif"), 20_000, 10_000, job, pace=None)
    before_scene(Path("small.tif"), 2_000, 1_000, job, pace=2.0)
    assert capsys.readouterr().out.splitlines() == [
        "big: 20000 x 10000 pixels (200 MP), about 2 min at the pace so far",
        "first: 20000 x 10000 pixels (200 MP), pace not measured yet",
    ]
    progress = ProgressLines("big", every=0.0)
    progress.total = 400
    with progress:
        progress.update(100)
        progress.update(300)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["big: 100 of 400 windows (25%)", "big: 400 of 400 windows (100%)"]
    assert lines[1].endswith("about 0 s left")


def _everywhere_model(path):
    """A saved model whose every score is positive: building on every pixel."""
    from models import create_model

    model = create_model("fcn32", "resnet18", input_shape=(None, None, 3))
    kernel, bias = model.get_layer("fcn32_score_p5").get_weights()
    model.get_layer("fcn32_score_p5").set_weights([np.zeros_like(kernel), np.full_like(bias, 3.0)])
    model.save(path)
    return path


def test_nodata_is_filled_from_valid_pixels_marked_in_both_cogs_and_left_out_of_scores(tmp_path, capsys):
    import rasterio

    import predict
    from common.rasters import fill_nodata

    # the fill rule: no-data pixels mirror the valid ones across the edge (a row 0 1 2 | x x reads 0 1 2 1 0)
    pixels = np.zeros((2, 5, 3), np.uint8)
    pixels[:, :3] = np.arange(3)[None, :, None] * 10
    valid = np.zeros((2, 5), bool)
    valid[:, :3] = True
    assert fill_nodata(pixels, valid)[..., 0].tolist() == [[0, 10, 20, 10, 0]] * 2
    assert (fill_nodata(pixels, np.zeros((2, 5), bool)) == 128).all()

    rng = np.random.default_rng(4)
    scene = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    scenes, labels = tmp_path / "src", tmp_path / "label"
    scenes.mkdir(), labels.mkdir()
    _geotiff(scenes / "full.tif", scene)
    holed = scene.copy()
    holed[:, 64:] = 0  # the right half is no-data (nodata value 0)
    _geotiff(scenes / "holed.tif", holed, nodata=0)
    _geotiff(scenes / "empty.tif", np.zeros((96, 128, 3), np.uint8), nodata=0)
    truth = np.zeros((96, 128), np.uint8)
    truth[10:40, 10:40] = truth[10:40, 80:110] = 255  # one building in each half
    for name in ("full", "holed", "empty"):
        _geotiff(labels / f"{name}.tif", truth)
    model = _everywhere_model(tmp_path / "model.keras")
    out = tmp_path / "o"
    with pytest.raises(SystemExit, match="1 of 3 input"):
        predict.main(["--model", str(model), str(scenes), "--labels", str(labels), "--out", str(out),
                      "--precision", "float32", "--tile", "64", "--overlap", "32"])  # fmt: skip
    err = capsys.readouterr().err
    assert "empty.tif holds no data: every pixel is no-data" in err and not list(out.glob("empty*"))
    with rasterio.open(out / "holed_prob.tif") as prob, rasterio.open(out / "holed_mask.tif") as mask:
        probabilities, flags = prob.read(1), mask.read_masks(1)
        assert np.isnan(prob.nodata) and np.isnan(probabilities[:, 64:]).all()
        assert (flags[:, :64] == 255).all() and (flags[:, 64:] == 0).all() and (mask.read(1)[:, 64:] == 0).all()
    with rasterio.open(out / "full_prob.tif") as prob:
        assert prob.nodata is None and not np.isnan(prob.read(1)).any()
    report = json.loads((out / "metrics.json").read_text())
    holed_row = next(row for row in report["scenes"] if row["scene"] == "holed")
    # predicting building everywhere on the valid half only: 900 true pixels of 96 x 64, one true building
    assert holed_row["pixels"] == 96 * 64 and holed_row["tp"] == 900 and holed_row["fp"] == 96 * 64 - 900
    assert holed_row["building_tp"] + holed_row["building_fn"] == 1
    import pyogrio.raw

    _, _, footprints, _ = pyogrio.raw.read(out / "holed.gpkg")
    from shapely import from_wkb

    assert len(footprints) == 1 and from_wkb(footprints[0]).bounds[2] <= 680000 + 64 * 0.5  # all in the valid half


@pytest.mark.slow  # a grid that trains twice, about a minute on 2 cores
def test_a_killed_grid_leaves_no_train_py_behind_and_its_restart_resumes(synthetic_dir, tmp_path):
    import signal
    import time

    from tests.tiny import tiny_grid

    runs = tmp_path / "runs"
    command = [sys.executable, "compare.py", "--runs", str(runs), "--grid", "seed", "--entries", "fcn8/effnet-b0",
               "--budget", "8", "--grid-epochs", "2", *tiny_grid(synthetic_dir)]  # fmt: skip
    log = tmp_path / "grid.log"
    with log.open("w") as handle:
        grid = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not list(runs.glob("*/state.json")) and time.time() < deadline and grid.poll() is None:
        time.sleep(0.5)  # until its train.py has finished an epoch
    assert grid.poll() is None, log.read_text()[-3000:]
    (lock,) = runs.glob("*/.train.lock")
    child = int(lock.read_text().split()[0])
    grid.send_signal(signal.SIGKILL)
    grid.wait()
    deadline = time.time() + 30  # SIGTERM at once: it saves its weights and exits (the run itself needs minutes)
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"train.py {child} outlived its grid")
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming after epoch 1 of 2" in again.stdout + again.stderr
    assert [p.parent.name for p in runs.glob("*/results.json")] == [lock.parent.name]


def test_transparent_png_pixels_are_nodata_filled_for_the_model_and_left_out_of_scores(tmp_path, capsys):
    from PIL import Image

    import predict
    from common.rasters import open_scene

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    alpha = np.full((96, 128), 255, np.uint8)
    alpha[:, 64:] = 0  # the right half is transparent
    scenes, labels = tmp_path / "src", tmp_path / "label"
    scenes.mkdir(), labels.mkdir()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(scenes / "holed.png")
    Image.fromarray(np.dstack([rgb, np.zeros_like(alpha)]), "RGBA").save(scenes / "clear.png")
    source = open_scene(scenes / "holed.png")
    assert source.has_nodata and source.valid(0, 96).sum() == 96 * 64
    assert (source.read(0, 96)[:, 64:124] == rgb[:, 62:2:-1]).all()  # mirrored from the data, not the hidden colours
    truth = np.zeros((96, 128), np.uint8)
    truth[10:40, 10:40] = truth[10:40, 80:110] = 255  # one building in each half
    for name in ("holed", "clear"):
        Image.fromarray(truth).save(labels / f"{name}.png")
    out = tmp_path / "o"
    model = _everywhere_model(tmp_path / "model.keras")
    with pytest.raises(SystemExit, match="1 of 2 input"):
        predict.main(["--model", str(model), str(scenes), "--labels", str(labels), "--out", str(out),
                      "--precision", "float32", "--tile", "64", "--overlap", "32", "--geojson"])  # fmt: skip
    assert "clear.png holds no data: every pixel is transparent (alpha 0)" in capsys.readouterr().err
    row = json.loads((out / "metrics.json").read_text())["scenes"][0]
    assert row["scene"] == "holed" and row["pixels"] == 96 * 64 and row["tp"] == 900
    footprints = json.loads((out / "holed.geojson").read_text())["features"]
    xs = [x for feature in footprints for ring in feature["geometry"]["coordinates"] for x, _ in ring]
    assert len(footprints) == 1 and max(xs) <= 64  # pixel coordinates: all in the opaque half
