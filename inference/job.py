"""One scene's work: predict it strip by strip, write its outputs, score it against a label.

predict.py runs it for each scene in turn; the Beam pipeline (``inference.beam``) runs the same
function on workers, one scene per element. A finished scene leaves ``<stem>.scene.json`` (its
manifest row, written last and atomically), so a rerun can tell finished scenes from
interrupted ones.
"""

import contextlib
import dataclasses
import json
import os
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
    bands: tuple | None = None
    labels: str | None = None  # a folder of masks, "auto" (the Kaggle layout) or None
    precision: str = "float32"
    writer: dict = dataclasses.field(default_factory=dict)  # options of inference.outputs.SceneWriter
    markers: bool = False  # leave <stem>.scene.json when a scene is done (the Beam pipeline's restart rule)

    def marker(self, path):
        return Path(self.out) / f"{Path(path).stem}{MARKER_SUFFIX}"


def finished_row(job, path):
    """The manifest row of a scene finished earlier (its marker), or None."""
    marker = job.marker(path)
    try:
        return json.loads(marker.read_text()) if marker.is_file() else None
    except (OSError, ValueError):
        return None  # a damaged marker: the scene is done again


def predict_scene(path, logit_fn, job):
    """Predict one scene and write its outputs; returns (manifest row, score row, summary line, label error).

    The score row is None without labels or when the scene's label could not be used (then the
    label error says why). A read error (``SceneReadError``) removes this scene's unfinished
    files and propagates.
    """
    from tqdm import tqdm

    from inference.evaluation import scene_scores
    from inference.outputs import SceneWriter, write_strips
    from inference.rasters import open_scene
    from inference.scenes import HINT, read_label
    from inference.tiling import predict_strips

    path = Path(path)
    started = time.perf_counter()
    with contextlib.closing(open_scene(path, bands=job.bands, hint=HINT)) as source:
        height, width = source.height, source.width
        writer = SceneWriter(source, job.out, **job.writer)
        bar = tqdm(desc=path.stem, unit="window", leave=False, delay=3, disable=not sys.stderr.isatty())
        try:
            with bar:  # shown only when a scene takes more than a few seconds
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
        note = source.note
    seconds = time.perf_counter() - started
    found = writer.buildings
    line = (
        f"{path.stem}: {width}x{height}, {height * width / 1e6 / seconds:.2f} MP/s, "
        f"{found} building{'s' if found != 1 else ''}"
    )
    row = label_error = None
    if job.labels:  # a missing or bad label costs the score, never the prediction written above
        labels = path.parent.parent / "label" if job.labels == "auto" else job.labels
        try:
            truth = read_label(labels, path.stem, (height, width))
            row = scene_scores(path.stem, truth, writer.mask, min_area=job.writer.get("min_area", defaults.MIN_AREA),
                               buildings=writer.instances)  # fmt: skip
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
    if job.markers:
        write_marker(job.marker(path), manifest)
    return manifest, row, line + (f"  [{' '.join(kinds)}]" if kinds else ""), label_error


def write_marker(marker, row):
    """The scene's manifest row, through a temporary file and a rename: written last, never half."""
    from common.files import staging_path

    staging = staging_path(marker)
    staging.write_text(json.dumps(row, indent=2))
    os.replace(staging, marker)
