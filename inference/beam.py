"""predict.py on Apache Beam: the same per-scene work on DirectRunner, Dataflow, Flink or Spark.

The unit of work is a scene: the scene list is reshuffled across workers and each worker
runs ``inference.job.predict_scene`` on the scenes it gets, tiles of a scene never leaving
it. The model loads once per worker process (``DoFn.setup`` through ``apache_beam.utils.shared``)
and serves every scene that worker gets. Beam's own TensorFlow model handlers are not used:
they need tensorflow_hub / tf-keras and do not load Keras 3 models.

Restartable: a scene whose ``<stem>.scene.json`` marker is in the output folder finished
earlier and is not predicted again (its outputs were renamed into place before the marker
was written), so a pipeline killed half-way continues where it stopped. A scene that fails
(unreadable, wrong bands) goes to the dead-letter output with its error and the others go on.

At the end, one folder holds every scene's outputs plus ``manifest.jsonl`` (one line per
scene: size, MP/s, buildings, precision, error), ``failed.jsonl`` (the dead letters) and
``buildings.gpkg``: every georeferenced scene's footprints in one layer, reprojected to
``merged_crs`` (default EPSG:4326), each with its scene's name. Beam counters count scenes,
megapixels and buildings.

Outputs go to a local (or mounted) folder; inputs are local paths or anything GDAL reads
(``/vsigs/``, ``/vsis3/``, ``/vsicurl/`` paths).
"""

import json
import os
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from common.files import staging_path

NAMESPACE = "buildings_zoo"
MERGED = "buildings.gpkg"
MANIFEST, FAILED = "manifest.jsonl", "failed.jsonl"


class _LoadedModel:
    """The model and its traced window function, shared by the threads of one worker process."""

    def __init__(self, model_path, *, tta, precision, separate):
        from inference.loading import load_segmenter
        from inference.tiling import make_logit_fn

        model, fixed_size = load_segmenter(model_path)
        self.logit_fn = make_logit_fn(model, tta=tta, fixed_size=fixed_size, precision=precision, all_channels=separate)


class PredictScene(beam.DoFn):
    """scene path -> manifest row (main output) and footprints (tagged ``footprints``), or a dead letter."""

    def __init__(self, model_path, job, *, tta=False, separate=False, merged_crs="EPSG:4326"):
        self.model_path, self.job, self.tta, self.separate, self.merged_crs = (
            model_path, job, tta, separate, merged_crs
        )  # fmt: skip
        self._shared = shared.Shared()
        self.scenes = Metrics.counter(NAMESPACE, "scenes")
        self.skipped = Metrics.counter(NAMESPACE, "scenes_already_done")
        self.failed = Metrics.counter(NAMESPACE, "scenes_failed")
        self.megapixels = Metrics.counter(NAMESPACE, "megapixels")
        self.buildings = Metrics.counter(NAMESPACE, "buildings")

    def setup(self):
        import inference  # noqa: F401  (loads pyogrio before TensorFlow: GeoPackages keep their spatial index)

        key = (self.model_path, self.tta, self.job.precision, self.separate)
        self.model = self._shared.acquire(
            lambda: _LoadedModel(self.model_path, tta=self.tta, precision=self.job.precision, separate=self.separate),
            tag=repr(key),
        )

    def process(self, scene):
        import rasterio

        from common.rasters import gdal_options
        from inference.job import finished_record, predict_scene

        record, why = finished_record(self.job, scene)
        if record is not None:
            self.skipped.inc()
            yield beam.pvalue.TaggedOutput("notes", {"scene": str(scene), "skipped": True})
            row, score, label_error = record["manifest"], record["score"], record["label_error"]
        else:
            if why != "no marker":  # done again, and said why
                yield beam.pvalue.TaggedOutput("notes", {"scene": str(scene), "skipped": False, "why": why})
            try:
                with rasterio.Env(**gdal_options()):
                    row, score, line, label_error = predict_scene(scene, self.model.logit_fn, self.job)
            except Exception as error:  # a dead letter: named with its error, the pipeline goes on
                self.failed.inc()
                yield beam.pvalue.TaggedOutput(
                    "failed", {"scene": str(scene), "error": f"{type(error).__name__}: {error}"}
                )
                return
            print(line, flush=True)
            self.scenes.inc()
            self.megapixels.inc(int(round(row["megapixels"])))
            self.buildings.inc(row["buildings"])
        yield row
        if score is not None:
            yield beam.pvalue.TaggedOutput("scores", score)
        if label_error:
            yield beam.pvalue.TaggedOutput("notes", {"scene": str(scene), "unscored": label_error})
        footprints = reprojected_footprints(Path(self.job.out) / f"{row['stem']}.gpkg", row["crs"], self.merged_crs)
        if footprints is not None:
            yield beam.pvalue.TaggedOutput("footprints", (row["stem"], footprints))


def reprojected_footprints(gpkg, crs, target_crs):
    """(WKB geometries, field columns, field names) of a scene's GeoPackage in ``target_crs``; None without a CRS."""
    import numpy as np
    import shapely
    from pyogrio.raw import read
    from pyproj import Transformer

    if crs is None or not Path(gpkg).is_file():
        return None
    meta, _, geometry, fields = read(str(gpkg))
    if geometry is None or not len(geometry):
        return [], [], list(meta["fields"])
    transform = Transformer.from_crs(crs, target_crs, always_xy=True).transform
    shapes = shapely.from_wkb(geometry)
    moved = shapely.transform(shapes, lambda xy: np.column_stack(transform(xy[:, 0], xy[:, 1])))
    return list(shapely.to_wkb(moved)), [list(column) for column in fields], list(meta["fields"])


def write_merged(scene_footprints, path, crs):
    """One GeoPackage layer of every scene's footprints, with a ``scene`` column; returns the building count."""
    import numpy as np
    from pyogrio.raw import write

    geometry, scene_names, columns, names = [], [], None, None
    for stem, (wkb, fields, field_names) in sorted(scene_footprints):
        if not wkb:
            continue
        names = names or field_names
        columns = columns or [[] for _ in field_names]
        geometry += wkb
        scene_names += [stem] * len(wkb)
        for store, values in zip(columns, fields):
            store += values
    partial = staging_path(path)
    field_data = [np.asarray(scene_names, dtype=object)] + [np.asarray(c) for c in (columns or [])]
    write(
        str(partial),
        geometry=np.asarray(geometry, dtype=object),
        field_data=field_data,
        fields=["scene", *(names or [])],
        layer="buildings",
        driver="GPKG",
        geometry_type="Polygon",
        crs=crs,
    )
    os.replace(partial, path)
    return len(geometry)


def _write_lines(rows, path):
    partial = staging_path(path)
    key = lambda row: str(row.get("scene"))  # noqa: E731
    partial.write_text("".join(json.dumps(row) + "\n" for row in sorted(rows, key=key)))
    os.replace(partial, path)


def run_pipeline(scenes, model_path, job, *, beam_args, tta=False, separate=False, merged_crs="EPSG:4326"):
    """Run the scenes through Beam; returns {"manifest": rows, "failed": dead letters, "scores": score rows of
    the scenes with labels, "notes": skipped, redone and unscored scenes}. ``beam_args``: Beam's own options."""
    from apache_beam.options.pipeline_options import PipelineOptions

    out = Path(job.out)
    kept = {"manifest": MANIFEST, "failed": FAILED, "scores": staging_path(out / "scores.jsonl"),
            "notes": staging_path(out / "notes.jsonl")}  # fmt: skip
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
        results = (
            pipeline
            | "scenes" >> beam.Create([str(s) for s in scenes])
            | "spread" >> beam.Reshuffle()
            | "predict"
            >> beam.ParDo(
                PredictScene(model_path, job, tta=tta, separate=separate, merged_crs=merged_crs)
            ).with_outputs("failed", "footprints", "scores", "notes", main="manifest")
        )
        for name, path in kept.items():
            rows = results[name] | f"collect {name}" >> beam.combiners.ToList()
            rows | f"write {name}" >> beam.Map(_write_lines, str(out / path))
        merged = results.footprints | "footprints" >> beam.combiners.ToList()
        merged | "merge footprints" >> beam.Map(write_merged, str(out / MERGED), merged_crs)
    outputs = {}
    for name, path in kept.items():
        outputs[name] = [json.loads(line) for line in (out / path).read_text().splitlines() if line]
        if name in ("scores", "notes"):  # passed to predict.py, which writes metrics.json from them
            (out / path).unlink()
    return outputs
