"""predict.py --runner DirectRunner: the sequential run's outputs, dead letters, restarts, one merged layer."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inference.scenes import expand_inputs, list_inputs

ROOT = Path(__file__).resolve().parents[1]


def _geotiff(path, seed, size=(192, 256)):
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    image = np.full((3, *size), 60, np.uint8)
    for _ in range(12):  # bright roofs on dark ground
        top, left = rng.integers(0, size[0] - 24), rng.integers(0, size[1] - 24)
        image[:, top : top + rng.integers(8, 24), left : left + rng.integers(8, 24)] = rng.integers(150, 250)
    image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
    profile = dict(driver="GTiff", width=size[1], height=size[0], count=3, dtype="uint8", crs="EPSG:32640",
                   transform=from_origin(500_000 + 1000 * seed, 2_800_000, 0.5, 0.5))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image)


@pytest.fixture(scope="module")
def scenes_and_model(tmp_path_factory):
    from models import create_model

    root = tmp_path_factory.mktemp("beam")
    scenes = root / "scenes"
    scenes.mkdir()
    for seed, name in enumerate(("a", "b", "c")):
        _geotiff(scenes / f"{name}.tif", seed)
    data = (scenes / "b.tif").read_bytes()
    (scenes / "b.tif").write_bytes(data[: len(data) // 3])  # truncated: a corrupt scene
    import keras

    keras.utils.set_random_seed(0)  # an unseeded random model sometimes finds no building at all
    model = create_model("fcn32", "resnet18", input_shape=(None, None, 3))
    model.get_layer("logits").offset = 0.0
    model.save(root / "model.keras")
    return scenes, root / "model.keras"


def _predict(*args, check=True, **kwargs):
    done = subprocess.run([sys.executable, "predict.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, **kwargs)  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def _read_band(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_direct_runner_matches_predict_py_and_sends_a_corrupt_scene_to_the_dead_letters(scenes_and_model, tmp_path):
    pytest.importorskip("apache_beam", reason="predict.py --runner needs requirements-beam.txt")
    from pyogrio.raw import read

    scenes, model = scenes_and_model
    sequential = tmp_path / "sequential"
    _predict("--model", model, scenes / "a.tif", scenes / "c.tif", "--out", sequential, "--precision", "float32")
    beam = tmp_path / "beam"
    done = _predict("--model", model, scenes, "--out", beam, "--precision", "float32", "--runner", "DirectRunner",
                    "--direct_num_workers", "2", "--direct_running_mode", "multi_processing", check=False)  # fmt: skip
    assert done.returncode != 0 and "1 of 3 input(s) could not be read or scored" in done.stderr
    failed = [json.loads(line) for line in (beam / "failed.jsonl").read_text().splitlines()]
    assert [Path(row["scene"]).name for row in failed] == ["b.tif"] and failed[0]["error"]
    manifest = [json.loads(line) for line in (beam / "manifest.jsonl").read_text().splitlines()]
    assert [row["stem"] for row in manifest] == ["a", "c"] and all(row["error"] is None for row in manifest)
    total = 0
    for stem in ("a", "c"):
        np.testing.assert_array_equal(
            _read_band(beam / f"{stem}_mask.tif"), _read_band(sequential / f"{stem}_mask.tif")
        )
        np.testing.assert_allclose(
            _read_band(beam / f"{stem}_prob.tif"), _read_band(sequential / f"{stem}_prob.tif"), atol=1e-6
        )
        count = len(read(str(sequential / f"{stem}.gpkg"))[2])
        assert len(read(str(beam / f"{stem}.gpkg"))[2]) == count
        assert next(row for row in manifest if row["stem"] == stem)["buildings"] == count
        total += count
    meta, _, geometry, fields = read(str(beam / "buildings.gpkg"))
    assert total > 0 and len(geometry) == total  # every building of the good scenes, once
    assert sorted(set(fields[0])) == ["a", "c"] and "4326" in meta["crs"]
    assert not list(beam.glob("*partial*")) and not list(beam.glob(".*"))


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_a_killed_pipeline_continues_where_it_stopped(scenes_and_model, tmp_path):
    pytest.importorskip("apache_beam", reason="predict.py --runner needs requirements-beam.txt")
    scenes, model = scenes_and_model
    good = tmp_path / "good"
    good.mkdir()
    for name in ("a", "c"):
        (good / f"{name}.tif").write_bytes((scenes / f"{name}.tif").read_bytes())
    out = tmp_path / "out"
    args = ["--model", model, good, "--out", out, "--precision", "float32", "--runner", "DirectRunner"]
    process = subprocess.Popen([sys.executable, "predict.py", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not list(out.glob("*.scene.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.scene.json")}
    assert len(first) >= 1
    done = _predict(*args)
    assert "2 scene(s) done" in done.stdout
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(row["stem"] for row in manifest) == ["a", "c"]  # each scene once
    for name, mtime in first.items():  # scenes finished before the kill were not predicted again
        assert (out / name).stat().st_mtime_ns == mtime
    assert not list(out.glob("*partial*")) and not [p for p in out.iterdir() if p.name.startswith(".")]


def test_globs_list_files_and_folders_name_the_same_scenes(scenes_and_model, tmp_path):
    scenes, _ = scenes_and_model
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"# three scenes\n{scenes / 'a.tif'}\n\n{scenes / 'b.tif'}\n{scenes / 'c.tif'}\n")
    from_folder = list_inputs(expand_inputs([str(scenes)]))
    from_glob = list_inputs(expand_inputs([str(scenes / "*.tif")]))
    from_list = list_inputs(expand_inputs([], listing))
    assert [p.name for p in from_folder] == ["a.tif", "b.tif", "c.tif"]
    assert from_folder == from_glob == from_list
    with pytest.raises(ValueError, match="matches no file"):
        expand_inputs([str(scenes / "*.png")])
    with pytest.raises(ValueError, match="--inputs-from"):
        expand_inputs([], tmp_path / "missing.txt")


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_a_rerun_skips_only_the_same_input_and_says_so(scenes_and_model, tmp_path):
    pytest.importorskip("apache_beam", reason="predict.py --runner needs requirements-beam.txt")
    scenes, model = scenes_and_model
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (first / "x.tif").write_bytes((scenes / "a.tif").read_bytes())
    (second / "x.tif").write_bytes((scenes / "c.tif").read_bytes())  # another scene of the same name
    out = tmp_path / "out"

    def run(scene):
        done = _predict("--model", model, scene, "--out", out, "--precision", "float32", "--runner", "DirectRunner")
        manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        return done.stdout, manifest[0]["scene"], _read_band(out / "x_prob.tif")

    said, scene, from_a = run(first / "x.tif")
    said, scene, from_b = run(second / "x.tif")  # another input of the same name: predicted, said why
    assert "done again" in said and "the input is not the one finished earlier" in said and "skipped" not in said
    assert scene == str(second / "x.tif") and not np.array_equal(from_b, from_a)
    said, scene, again = run(second / "x.tif")  # the same input, model and options: skipped, and said so
    assert "1 of them skipped: finished earlier with the same input, model and options" in said
    np.testing.assert_array_equal(again, from_b)


def test_a_marker_is_trusted_only_with_the_same_input_model_options_and_outputs(tmp_path):
    from inference.job import SceneJob, file_identity, finished_record, write_marker

    scene = tmp_path / "x.tif"
    scene.write_bytes(b"scene")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.gpkg").write_bytes(b"footprints")
    run = {"model_sha256": "ab" * 32, "options": {"threshold": 0.5}}
    job = SceneJob(out=str(out), markers=True, run=run)
    record = {"manifest": {"stem": "x", "files": ["x.gpkg"]}, "score": None, "label_error": None}
    write_marker(job.marker(scene), {**record, "input": file_identity(scene), "run": run})
    assert finished_record(job, scene)[0]["manifest"]["files"] == ["x.gpkg"]
    other = SceneJob(out=str(out), markers=True, run={**run, "options": {"threshold": 0.7}})
    assert finished_record(other, scene) == (None, "it was finished with another model or other options")
    (out / "x.gpkg").unlink()
    assert finished_record(job, scene) == (None, "its output x.gpkg is missing")
    (out / "x.gpkg").write_bytes(b"footprints")
    scene.write_bytes(b"another scene")  # same path, other size: another input
    assert "the input is not the one finished earlier" in finished_record(job, scene)[1]
    job.marker(scene).write_text(json.dumps({"stem": "x"}))  # a row of the predict.py before markers proved anything
    assert "written by an older predict.py" in finished_record(job, scene)[1]
    job.marker(scene).write_text("{cut")
    assert "is damaged" in finished_record(job, scene)[1]
    assert finished_record(job, tmp_path / "new.tif") == (None, "no marker")


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_labels_under_beam_give_the_plain_runners_metrics_messages_and_exit(scenes_and_model, tmp_path):
    pytest.importorskip("apache_beam", reason="predict.py --runner needs requirements-beam.txt")
    scenes, model = scenes_and_model
    src, label = tmp_path / "src", tmp_path / "label"
    src.mkdir(), label.mkdir()
    for name in ("a", "c"):
        (src / f"{name}.tif").write_bytes((scenes / f"{name}.tif").read_bytes())
    import rasterio

    with rasterio.open(scenes / "a.tif") as source:  # a's roofs as its label; c has none
        profile, roofs = {**source.profile, "count": 1}, (source.read(1) > 100).astype(np.uint8) * 255
    with rasterio.open(label / "a.tif", "w", **profile) as target:
        target.write(roofs, 1)
    results = {}
    for runner in ([], ["--runner", "DirectRunner"]):
        out = tmp_path / ("beam" if runner else "plain")
        done = _predict("--model", model, src, "--labels", label, "--out", out, "--precision", "float32", *runner,
                        check=False)  # fmt: skip
        report = json.loads((out / "metrics.json").read_text())
        results[bool(runner)] = (done.returncode, done.stderr, report)
    for returncode, stderr, report in results.values():
        assert returncode == 1 and f"not scored {src / 'c.tif'}" in stderr
        assert "1 of 2 input(s) could not be read or scored" in stderr
        assert [row["scene"] for row in report["scenes"]] == ["a"]
    assert results[True][2]["overall"] == results[False][2]["overall"]
    assert not list((tmp_path / "beam").glob(".*"))


def test_a_run_folder_and_its_model_keras_are_the_same_model_to_a_marker(tmp_path):
    from inference.job import run_identity

    (tmp_path / "model.keras").write_bytes(b"weights")  # the hash reads bytes only
    folder, file = run_identity(tmp_path, {"tile": 1024}), run_identity(tmp_path / "model.keras", {"tile": 1024})
    assert folder == file and folder["model_sha256"].startswith("9a1290")  # sha256 of b"weights"
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="holds no model.keras"):
        run_identity(tmp_path / "sub", {})
