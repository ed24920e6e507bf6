"""One scene's work: predict it strip by strip, write its outputs, score it against a label.

``predict_scenes`` runs it for each scene in turn (predict.py without ``--runner``); the Beam
pipeline (``inference.beam``) runs the same function on workers, one scene per element. A
finished scene leaves ``<stem>.scene.json`` (its manifest row, written last and atomically), so a
rerun can tell finished scenes from interrupted ones.
"""

import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

from inference import defaults

MARKER_SUFFIX = ".scene.json"


@dataclasses.dataclass(frozen=True)
class SceneJob:
    """What every scene of a run shares: the output folder and predict.py's options."""

    out: str
    tile: int = defaults.TILE
    overlap: int = defaults.OVERLAP
    batch_size: int = defaults.BATCH_SIZE
    fixed_size: int | None = None
    bands: tuple | None = None  # band numbers to read (None: the first three)
    channels: int = 3  # the bands the model takes (``len(bands)`` when given)
    labels: str | None = None  # a folder of masks, "auto" (the Kaggle layout) or None
    precision: str = "float32"
    writer: dict = dataclasses.field(default_factory=dict)  # options of inference.outputs.SceneWriter
    markers: bool = False  # leave <stem>.scene.json when a scene is done (the Beam pipeline's restart rule)
    local_only: bool = False  # refuse scenes (VRTs) that read sources over the network
    run: dict = dataclasses.field(default_factory=dict)  # the model and options a marker records (run_identity)

    def marker(self, path):
        return Path(self.out) / f"{Path(path).stem}{MARKER_SUFFIX}"


def file_identity(path):
    """What says a file is the same one: its resolved path, size and modification time (a path GDAL reads over
    the network: the path alone)."""
    try:
        stat = Path(path).stat()
    except (OSError, ValueError):
        return {"path": str(path)}
    return {"path": str(Path(path).resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def run_identity(model_path, options):
    """The model (its SHA-256) and the options of a run, as a marker records them (JSON types only);
    ``model_path``: a run directory of train.py or its model.keras."""
    import hashlib

    from inference.loading import resolve_model_path

    digest = hashlib.sha256()
    with open(resolve_model_path(model_path), "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return json.loads(json.dumps({"model_sha256": digest.hexdigest(), "options": options}, default=str))


def finished_record(job, path):
    """(the marker's record, None) when the scene finished earlier with the same input, model and options and
    every output it wrote is still there; else (None, why it is done again), "no marker" for a new scene."""
    marker = job.marker(path)
    if not marker.is_file():
        return None, "no marker"
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None, f"its marker {marker.name} is damaged"
    if not isinstance(record, dict) or not isinstance(record.get("manifest"), dict):
        return None, f"its marker {marker.name} was written by an older predict.py"
    if record.get("input") != file_identity(path):
        was = (record.get("input") or {}).get("path", "another file")
        return None, f"the input is not the one finished earlier ({was}: other path, size or modification time)"
    if record.get("run") != job.run:
        return None, "it was finished with another model or other options"
    missing = [name for name in record["manifest"].get("files", []) if not (Path(job.out) / name).is_file()]
    if missing:
        return None, f"its output {missing[0]} is missing"
    return record, None


def predict_scene(path, logit_fn, job, pace=None):
    """Predict one scene and write its outputs; returns (manifest row, score row, summary line, label error).

    The score row is None without labels or when the scene's label could not be used (then the
    label error says why). A read error (``SceneReadError``) removes this scene's unfinished
    files and propagates, and so does any other error or an interruption. ``pace``: megapixels
    per second of the scenes before, for the time a large scene will take.
    """
    from tqdm import tqdm

    from common.rasters import open_scene
    from inference.evaluation import scene_scores
    from inference.outputs import SceneWriter, write_strips
    from inference.scenes import HINT, read_label
    from inference.tiling import predict_strips

    path = Path(path)
    started = time.perf_counter()
    opened = open_scene(path, bands=job.bands, hint=HINT, local_only=job.local_only, channels=job.channels)
    with contextlib.closing(opened) as source:
        height, width = source.height, source.width
        options, label_error = before_scene(path, width, height, job, pace)
        writer = SceneWriter(source, job.out, **options)
        if sys.stderr.isatty():  # a bar, shown only when a scene takes more than a few seconds
            bar = tqdm(desc=path.stem, unit="window", leave=False, delay=3)
        else:  # a log: a line now and then
            bar = ProgressLines(path.stem)
        try:
            with bar:
                strips = predict_strips(
                    logit_fn,
                    source,
                    tile=job.tile,
                    overlap=job.overlap,
                    batch_size=job.batch_size,
                    fixed_size=job.fixed_size,
                    progress=bar,
                )
                write_strips(writer, strips)
            written = writer.close()
        except BaseException:
            writer.abort()
            raise
        crs = source.crs.to_string() if source.crs is not None else None
        note, grid = source.note, {"crs": source.crs, "transform": source.transform}
    seconds = time.perf_counter() - started
    found = writer.buildings
    line = (
        f"{path.stem}: {width}x{height}, {height * width / 1e6 / seconds:.2f} MP/s, "
        f"{found} building{'s' if found != 1 else ''}"
    )
    row = None
    if job.labels and not label_error:  # a missing or bad label costs the score, never the prediction written above
        labels = path.parent.parent / "label" if job.labels == "auto" else job.labels
        try:
            truth = read_label(labels, path.stem, (height, width), **grid)
            true_buildings = None if truth.dtype == bool else truth  # polygons: one id per building
            min_area = job.writer.get("min_area", defaults.MIN_AREA)
            row = scene_scores(path.stem, truth > 0, writer.mask, min_area=min_area, buildings=writer.instances,
                               valid=writer.valid, true_buildings=true_buildings)  # fmt: skip
            line += f", IoU {row['iou']:.3f}, building F1 {row['building_f1']:.3f}"
        except ValueError as error:
            label_error = str(error)
    if note:
        line += f"  ({note})"
    streamed = ("geotiff", "footprints", "geojson")
    kinds = [p.name.removeprefix(path.stem) for kind, p in written.items() if kind.endswith(streamed)]
    manifest = {
        "scene": str(path),
        "stem": path.stem,
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 4),
        "seconds": round(seconds, 3),
        "mp_per_sec": round(width * height / 1e6 / seconds, 4),
        "buildings": found,
        "precision": job.precision,
        "crs": crs,
        "files": sorted(p.name for p in written.values()),
        "error": None,
    }
    line += f"  [{' '.join(kinds)}]" if kinds else ""
    if job.markers:  # what the scene was and gave: a rerun skips it only if all of this still holds
        record = {"manifest": manifest, "score": row, "label_error": label_error, "line": line}
        write_marker(job.marker(path), {**record, "input": file_identity(path), "run": job.run})
    return manifest, row, line, label_error


def write_marker(marker, row):
    """The scene's manifest row, through a temporary file and a rename: written last, never half."""
    from common.files import staging_path

    staging = staging_path(marker)
    staging.write_text(json.dumps(row, indent=2))
    os.replace(staging, marker)


# outputs of a scene, at most, in bytes per pixel: float32 probabilities and uint8 mask COGs with their
# overviews (a third more), and their staging rows while the scene runs
OUTPUT_BYTES_PER_PIXEL = 2 * 5 * 4 / 3
LARGE_SCENE_PIXELS = 100_000_000  # from this size a scene is announced with its expected time


def before_scene(path, width, height, job, pace):
    """Checks before a scene's first window: (SceneWriter options, label error or None).

    A large scene is announced with the time it will take at ``pace``; a scene whose outputs cannot
    fit on the output disk is refused (``SceneReadError``); a score that would need more memory than
    there is for its whole-scene mask is refused up front (the label error), the outputs still written.
    """
    import shutil

    from common.images import check_allocation
    from common.rasters import SceneReadError

    pixels = width * height
    if pixels >= LARGE_SCENE_PIXELS:
        eta = f"about {_duration(pixels / 1e6 / pace)} at the pace so far" if pace else "pace not measured yet"
        print(f"{path.stem}: {width} x {height} pixels ({pixels / 1e6:,.0f} MP), {eta}", flush=True)
    needed, free = pixels * OUTPUT_BYTES_PER_PIXEL, shutil.disk_usage(job.out).free
    if needed > free:
        raise SceneReadError(
            f"its outputs need up to {_bytes(needed)} and {job.out} has {_bytes(free)} free. Free some "
            "space or write to another --out; nothing of this scene was written."
        )
    options, label_error = dict(job.writer), None
    if job.labels:  # scoring holds the whole mask, its no-data pixels (and building ids) in memory
        try:
            vector = Path(job.labels).suffix.lower() in (".geojson", ".json", ".gpkg", ".shp", ".fgb")  # ids: 4 bytes
            per_pixel = (6 if options.get("separate") else 2) + (4 if vector else 0)
            check_allocation(pixels * per_pixel, f"Scoring {path} against its label "
                             f"({width} x {height} pixels) holds its whole mask in memory, which",
                             "Its outputs are written; to score it, cut scene and label into tiles.")  # fmt: skip
        except ValueError as error:
            label_error, options["keep_mask"] = str(error), False
    return options, label_error


def _bytes(count):
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} bytes"


def _duration(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} days"


class ProgressLines:
    """Progress of a scene as a line every ``every`` seconds (stderr is a log, not a terminal): windows done,
    elapsed and remaining time. Takes ``total`` and ``update(n)`` like a tqdm bar."""

    def __init__(self, name, every=60.0):
        self.name, self.every, self.total, self.done = name, every, None, 0
        self.started = self.last = time.perf_counter()

    def update(self, count):
        self.done += count
        now = time.perf_counter()
        if now - self.last >= self.every and self.total:
            self.last, elapsed = now, now - self.started
            left = elapsed * (self.total - self.done) / max(self.done, 1)
            line = f"{self.name}: {self.done} of {self.total} windows ({100 * self.done / self.total:.0f}%), "
            print(line + f"{_duration(elapsed)} so far, about {_duration(left)} left", file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def stop_run(error, path, done, out):
    """End the run on an interruption or a full disk, however the library reports it (``is_disk_full``; any
    other error propagates), naming the scene whose unfinished files were removed and what is complete."""
    import shutil

    from common.files import is_disk_full

    interrupted = isinstance(error, KeyboardInterrupt)
    if not interrupted and not is_disk_full(error):
        raise error
    why = (
        "interrupted" if interrupted else f"the disk is full ({shutil.disk_usage(out).free / 1e6:.0f} MB free in {out})"
    )
    print(
        f"predict.py: {why} while predicting {path}; its unfinished files were removed. "
        f"The {done} scene(s) before it are complete in {out}.",
        file=sys.stderr,
    )
    raise SystemExit(130 if interrupted else 1) from None


def predict_scenes(files, logit_fn, job):
    """(score rows, failed inputs): every scene in turn. One that cannot be read is named and skipped, and
    earlier and later scenes are not lost; a full disk, Ctrl-C or SIGTERM stop the run after removing the
    unfinished scene's files, naming it and what is complete."""
    import rasterio

    from common.rasters import SceneReadError, gdal_options
    from inference.job import predict_scene

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    rows, failed, megapixels, seconds = [], [], 0.0, 0.0
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with rasterio.Env(**gdal_options()):
            for done, path in enumerate(files):
                try:
                    pace = megapixels / seconds if seconds else None
                    manifest, row, line, label_error = predict_scene(path, logit_fn, job, pace=pace)
                except SceneReadError as error:
                    print(f"skipped {path}: {error}", file=sys.stderr)
                    failed.append(str(path))
                    continue
                except (KeyboardInterrupt, Exception) as error:  # a full disk, however reported, or Ctrl-C
                    stop_run(error, path, done, job.out)
                megapixels, seconds = megapixels + manifest["megapixels"], seconds + manifest["seconds"]
                print(line)
                if label_error:
                    print(f"not scored {path} (its outputs are written): {label_error}", file=sys.stderr)
                    failed.append(str(path))
                elif row is not None:
                    rows.append(row)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return rows, failed
