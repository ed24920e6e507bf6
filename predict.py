"""Find buildings on scenes of any size; write masks, GeoTIFFs, GeoJSON; evaluate; export.

    python predict.py --model runs/RUN scene.tif more_scenes/ --out predictions
    python predict.py --model runs/RUN test/src --labels test/label --out eval   # + metrics.json
    python predict.py --model runs/RUN building_data/test/src --labels auto      # Kaggle layout: src/ -> label/
    python predict.py --model runs/RUN --export saved_model,tflite --out export  # serving models

    python predict.py --model runs/RUN city.vrt --out city --simplify 1 --regularize  # a mosaic, squared outlines

Scenes are predicted with overlapping --tile x --tile windows whose logits are blended
with a smooth window (no seams), in batches of --batch-size; --tta averages the 8 flips and
90-degree rotations (by default when the model's run was scored so: train.py --tta). On CPUs
with AMX the convolutions run in bfloat16 (--precision auto; masks differ from float32's on
about 0.1% of pixels), elsewhere in float32. GeoTIFF, TIFF and VRT
inputs are read one window at a time and every output is written as rows finish, so memory does
not grow with the scene. Outputs:
- every scene: <stem>.gpkg, one polygon per building (area in pixels, CRS units and m², mean
  probability; --min-area drops specks), in pixel coordinates when the scene has no georeferencing;
  a model trained with separation targets splits touching buildings first (--separate), any
  model can split them by the mask's shape (--separate shape);
- georeferenced or large scenes: <stem>_prob.tif and <stem>_mask.tif (Cloud-Optimized
  GeoTIFFs with overviews and the input's georeferencing);
- small scenes (up to 25 MP): <stem>_mask.png (0/255), <stem>_prob.png and <stem>_overlay.jpg,
  and <stem>.geojson when georeferenced (--geojson: for every scene).
Rasters with other than 3 bands, or not 8-bit, follow the rule in common/rasters.py
(first three bands; 2-98% range scaled to 8-bit; --bands picks the bands). No-data pixels
(nodata value, alpha band, NaN) are mirrored from valid ones for the model, NaN / masked in the
COGs, and left out of footprints and scores. A scene that cannot be read, or whose outputs cannot
fit on the disk, is named and skipped; a full disk or Ctrl-C / SIGTERM stops the run naming the
scene (its unfinished files removed, the scenes before it complete).
"""

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from inference import defaults

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXPORTS = ("saved_model", "tflite")


def band_numbers(text):
    """--bands: band numbers, e.g. 3,2,1 (three for an RGB model; as many as a model of more bands reads)."""
    try:
        bands = tuple(int(b) for b in text.split(","))
    except ValueError:
        bands = ()
    if len(bands) < 3 or min(bands) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not band numbers (1-based, comma-separated, three or more), e.g. 3,2,1 or 1,1,1"
        )
    return bands


def resolve_bands(args):
    """(the band numbers to read or None, how many the model takes), from --bands and the bands the model
    recorded (``models.metadata``); a --bands of another count is refused before anything is written."""
    from inference.loading import model_bands

    try:
        recorded = model_bands(args.model)
    except (OSError, ValueError):  # not a model of this project: loading it says why (``load_model``)
        return args.bands, len(args.bands or (1, 2, 3))
    if args.bands and len(args.bands) != len(recorded):
        raise SystemExit(
            f"predict.py: --bands {','.join(map(str, args.bands))} names {len(args.bands)} band(s), but {args.model} "
            f"reads {len(recorded)}: bands {','.join(map(str, recorded))} of its training images. Give "
            f"{len(recorded)} band numbers, or leave --bands out to read bands {','.join(map(str, recorded))}."
        )
    default = None if tuple(recorded) == (1, 2, 3) else tuple(recorded)
    return args.bands or default, len(recorded)


def add_output_options(parser):
    """What is written for each scene: threshold, specks, scoring, bands, footprints, separation."""
    parser.add_argument(
        "--threshold", type=float, default=defaults.THRESHOLD, help="probability at which a pixel is a building"
    )
    parser.add_argument(
        "--min-area",
        type=int,
        default=defaults.MIN_AREA,
        help="buildings smaller than this many pixels are specks: no GeoJSON polygon, not counted as buildings",
    )
    parser.add_argument(
        "--labels",
        help="folder of masks named like the inputs, 'auto' for the Kaggle layout (INPUT_FOLDER/../label), or a "
        "vector file of building polygons (GeoJSON, GeoPackage, ...; laid on each georeferenced scene in its CRS, "
        "building F1 counting the true buildings): evaluate and write metrics.json",
    )
    parser.add_argument(
        "--bands",
        type=band_numbers,
        help="band numbers of GeoTIFF/VRT inputs to use as RGB, e.g. 3,2,1 or 1,1,1 (grey), and for a model "
        "trained on more bands as many as it reads; default: the first three, or the bands the model recorded",
    )
    parser.add_argument(
        "--simplify", type=float, default=0.0, help="simplify footprint outlines by this tolerance in pixels"
    )
    parser.add_argument(
        "--regularize", action="store_true", help="square footprint outlines (dominant direction, right angles)"
    )
    parser.add_argument(
        "--geojson",
        action="store_true",
        help="also write GeoJSON footprints for every scene (pixel coordinates "
        "without georeferencing); by default only small georeferenced scenes get one beside the GeoPackage",
    )
    parser.add_argument(
        "--separate",
        choices=("auto", "always", "shape", "none"),
        default="auto",
        help="split touching buildings with the model's border/contact channels and a watershed (auto: when the "
        "model has them and its run found separation helped on its training images, else by the mask's shape when "
        "its run chose that, train.py --split shape; always: whenever the model has them; shape: any model, by the "
        "mask's shape, cut at narrow necks (--split-depth); none: every connected patch of the mask is one building)",
    )
    parser.add_argument(
        "--split-depth",
        type=float,
        default=defaults.SPLIT_DEPTH,
        help="--separate shape: how distinct (in pixels of distance to the mask's edge, times the probability) a "
        "part of a patch must be to become a building of its own; higher splits less",
    )
    parser.add_argument(
        "--instances", action="store_true", help="also write <stem>_instances.tif, the separated building ids"
    )


def argument_problems(args):
    """Values parse_args accepts by type but that cannot work, each with what to do."""
    problems = []
    unknown = [e for e in args.export.split(",") if e and e not in EXPORTS]
    if unknown:
        problems.append(f"--export {args.export!r}: valid exports are {', '.join(EXPORTS)} (comma-separated)")
    if not args.inputs and not args.inputs_from and not args.export:
        problems.append("nothing to do: give INPUT images or folders, or --export")
    if args.batch_size < 1:
        problems.append(f"--batch-size {args.batch_size}: must be at least 1")
    if not 0.0 < args.threshold < 1.0:
        problems.append(f"--threshold {args.threshold}: must lie strictly between 0 and 1")
    if args.simplify < 0:
        problems.append(f"--simplify {args.simplify}: must be 0 or more (pixels)")
    if args.min_area < 0:
        problems.append(f"--min-area {args.min_area}: must be 0 or more")
    if args.labels and args.labels != "auto" and not Path(args.labels).is_dir():
        from common.polygons import VECTOR_SUFFIXES, read_polygons

        if Path(args.labels).suffix.lower() not in VECTOR_SUFFIXES or not Path(args.labels).is_file():
            problems.append(f"--labels {args.labels}: neither a folder of masks nor a vector file of building "
                            f"polygons ({', '.join(VECTOR_SUFFIXES)})")  # fmt: skip
        else:
            try:
                read_polygons(args.labels)  # checked (and cached) before any scene is predicted
            except ValueError as error:
                problems.append(f"--labels: {error}")
    return problems


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="images (PNG, JPEG, TIFF, GeoTIFF) or folders of them"
    )
    parser.add_argument("--model", required=True, help="a run directory of train.py, or its model.keras")
    parser.add_argument("--out", default="predictions", help="output folder (created)")
    parser.add_argument(
        "--tile", type=int, default=defaults.TILE, help="window size, a multiple of the output stride (32)"
    )
    parser.add_argument("--overlap", type=int, default=defaults.OVERLAP, help="pixels shared by neighbouring windows")
    parser.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE, help="windows per model call")
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the logits of the 8 flips / 90-degree rotations (8x slower); by default as the model's run "
        "scored its held-out places (train.py --tta), --no-tta never",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="auto (default): bfloat16 on CPUs with AMX, float32 elsewhere. bfloat16 runs the convolutions in "
        "bfloat16, 1.3-1.8x faster with AMX, its masks differing from float32's on about 0.1%% of pixels; "
        "float32 keeps probabilities within 1e-5 of the Keras model",
    )
    add_output_options(parser)
    parser.add_argument("--export", default="", help=f"comma-separated: {', '.join(EXPORTS)} (TFLite at --tile)")
    parser.add_argument("--inputs-from", help="a text file of inputs, one path (or glob) per line")
    parser.add_argument(
        "--local-only",
        action="store_true",
        help="refuse scenes that read over the network (VRTs with /vsicurl/, /vsis3/, http:// ... sources); "
        "without it such sources are read, and one that stops answering is given up after GDAL_HTTP_TIMEOUT "
        "seconds (default 60) and the scene skipped",
    )
    parser.add_argument(
        "--runner",
        help="run the scenes as an Apache Beam pipeline on this runner (DirectRunner, DataflowRunner, FlinkRunner, "
        "SparkRunner); Beam's own options (--direct_num_workers 2, --project, --temp_location, ...) pass through. "
        "Adds manifest.jsonl, failed.jsonl and buildings.gpkg (all scenes, --merged-crs); finished scenes are "
        "skipped on a rerun. Needs requirements-beam.txt",
    )
    parser.add_argument("--merged-crs", default="EPSG:4326", help="CRS of the merged footprint layer (--runner)")
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and not args.runner:
        parser.error(f"unrecognized arguments: {' '.join(beam_args)} (Beam options need --runner)")
    args.beam_args = ["--runner", args.runner, *beam_args] if args.runner else []
    problems = argument_problems(args)
    if problems:
        parser.error("\n  " + "\n  ".join(problems))
    return args


def scene_job(args, out, *, tile, fixed_size, precision, separation, markers=False):
    """The per-scene settings every scene of this command shares (``inference.job.SceneJob``)."""
    from inference.job import SceneJob

    writer = dict(
        threshold=args.threshold,
        min_area=args.min_area,
        simplify=args.simplify,
        squared=args.regularize,
        geojson=args.geojson,
        keep_mask=bool(args.labels),
        separate=bool(separation),
        depth=args.split_depth if separation == "shape" else None,
        instances=args.instances,
    )
    return SceneJob(
        out=str(out),
        tile=tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        fixed_size=fixed_size,
        bands=args.bands,
        channels=args.channels,
        labels=args.labels,
        precision=precision,
        writer=writer,
        markers=markers,
        local_only=args.local_only,
    )


def run_on_beam(args, files, out, **settings):
    """The scenes as a Beam pipeline (``inference.beam``): the same outputs, messages and exit status as the
    plain runner, plus manifest.jsonl, failed.jsonl and buildings.gpkg; scenes finished earlier with the same
    input, model and options are skipped, and said so."""
    try:
        from inference.beam import run_pipeline
    except ImportError as error:
        raise SystemExit(
            f"predict.py --runner needs Apache Beam ({error}): pip install -r requirements-beam.txt"
        ) from None
    from inference.job import run_identity

    job = scene_job(
        args, out, markers=True, **{k: settings[k] for k in ("tile", "fixed_size", "precision", "separation")}
    )
    options = {**dataclasses.asdict(job), "tta": args.tta, "separation": settings["separation"]}
    for name in ("out", "markers", "run", "local_only"):  # where and how, not what: a rerun may change them
        options.pop(name)
    job = dataclasses.replace(job, run=run_identity(args.model, options))
    outputs = run_pipeline(
        files,
        str(args.model),
        job,
        beam_args=args.beam_args,
        tta=args.tta,
        separate=settings["separation"] == "channels",  # the model's every channel is predicted
        merged_crs=args.merged_crs,
    )
    rows, notes = outputs["manifest"], outputs["notes"]
    skipped = sum(1 for note in notes if note.get("skipped"))
    for note in notes:
        if note.get("skipped") is False:
            print(f"done again {note['scene']}: {note['why']}")
    megapixels = sum(row["megapixels"] for row in rows)
    print(f"{len(rows)} scene(s) done ({megapixels:.1f} MP, {sum(r['buildings'] for r in rows)} buildings"
          + (f"; {skipped} of them skipped: finished earlier with the same input, model and options, every output "
             "in place" if skipped else "")
          + f"); manifest {out / 'manifest.jsonl'}, footprints of all georeferenced scenes in "
          f"{out / 'buildings.gpkg'}")  # fmt: skip
    failed = []
    for row in outputs["failed"]:
        print(f"skipped {row['scene']}: {row['error']}", file=sys.stderr)
        failed.append(row["scene"])
    for note in notes:
        if note.get("unscored"):
            print(f"not scored {note['scene']} (its outputs are written): {note['unscored']}", file=sys.stderr)
            failed.append(note["scene"])
    also = f" (dead letters in {out / 'failed.jsonl'})" if outputs["failed"] else ""
    return finish(args, out, files, outputs["scores"], failed, settings, also=also)


def finish(args, out, files, rows, failed, settings, also=""):
    """The end of either runner: metrics.json and its table when scenes were scored, a non-zero exit naming
    how many inputs could not be read or scored, else the output folder."""
    if rows:
        from inference.evaluation import evaluation_report, format_table

        separation, order = settings["separation"], {Path(f).stem: i for i, f in enumerate(files)}
        report = evaluation_report(
            sorted(rows, key=lambda row: order.get(row["scene"], len(order))),  # the inputs' order, on any runner
            threshold=args.threshold,
            model=str(args.model),
            tta=args.tta,
            precision=settings["precision"],
            separated=bool(separation),
            **({"split_depth": args.split_depth} if separation == "shape" else {}),
        )
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
        print(format_table(report))
    if failed:
        raise SystemExit(
            f"predict.py: {len(failed)} of {len(files)} input(s) could not be read or scored (named above); "
            f"every other output is in {out}{also}."
        )
    print(out)
    return out


def load_model(args, has_inputs):
    """(model, fixed size, tile, targets, separation, precision), said in one line; a bad model or tiling exits.
    ``args.tta`` (None: as the model's run was scored) becomes whether the 8 flips and turns are averaged.

    ``separation``: "channels" (the model's separation channels), "shape" (the mask's shape) or None.
    """
    from inference.loading import load_segmenter, model_targets, scored_with_tta, separates, splits_by_shape
    from inference.tiling import check_tiling, cpu_has_amx, resolve_precision

    try:
        model, fixed_size = load_segmenter(args.model)
        args.tta = scored_with_tta(args.model) if args.tta is None else args.tta
        # an export alone has no windows to overlap: only the tile size is checked then
        tile = check_tiling(args.tile, args.overlap if has_inputs else 0, fixed_size=fixed_size)
        targets = model_targets(args.model)
        channels = len(targets) > 1 and (
            args.separate == "always" or (args.separate == "auto" and separates(args.model))
        )
        shape = args.separate == "shape" or (args.separate == "auto" and splits_by_shape(args.model))
    except ValueError as error:
        raise SystemExit(f"predict.py: {error}") from None
    if args.split_depth <= 0:
        raise SystemExit(f"predict.py: --split-depth {args.split_depth} must be above 0 (pixels; e.g. 12)")
    separation = "shape" if shape else "channels" if channels else None
    amx = cpu_has_amx()
    precision = resolve_precision(args.precision)
    why = f" (auto: this CPU {'has' if amx else 'has no'} AMX)" if args.precision == "auto" else ""
    said = {
        "channels": "buildings separated",
        "shape": f"buildings split by the mask's shape (--split-depth {args.split_depth:g})",
        None: "no separation (connected patches are buildings)",
    }
    averaged = "; the 8 flips and turns averaged (--tta)" if args.tta else ""
    print(
        f"model: {model.name} ({model.count_params():,} params) from {args.model}, {precision}{why}; "
        f"targets {', '.join(targets)}: "
        + said[separation]
        + (
            " (--separate auto: its run found separation did not help)"
            if len(targets) > 1 and not separation and args.separate == "auto"
            else ""
        )
        + (
            " (--separate always: this model has no separation channels, only the building mask; train with "
            "--targets building,border,contact to separate, or use --separate shape)"
            if len(targets) == 1 and args.separate == "always"
            else ""
        )
        + averaged
    )
    if precision == "bfloat16" and not amx:
        print("note: this CPU has no AMX (amx_bf16); bfloat16 is usually no faster than float32 here", file=sys.stderr)
    return model, fixed_size, tile, targets, separation, precision


def export(kinds, model, out, *, tile, fixed_size):
    """--export: a SavedModel (any size) and float32 / int8 TFLite models at --tile."""
    from inference.export import export_saved_model, export_tflite

    for kind in filter(None, kinds.split(",")):
        if kind == "saved_model":
            print(f"exported: {export_saved_model(model, out / 'saved_model', fixed_size=fixed_size)}")
        else:
            for weights in ("float32", "int8"):
                path = export_tflite(model, out / f"model_{weights}.tflite", tile=tile, kind=weights)
                print(f"exported: {path} (uint8 input 1x{tile}x{tile}x{model.input.shape[-1]})")


def main(argv=None):
    args = parse_args(argv)
    from inference.job import predict_scenes
    from inference.outputs import prepare_out_dir
    from inference.scenes import check_out_dir, expand_inputs, list_inputs

    try:
        files = list_inputs(expand_inputs(args.inputs, args.inputs_from))
    except ValueError as error:
        raise SystemExit(f"predict.py: {error}") from None
    check_out_dir(args.out, files, args.inputs)
    args.bands, args.channels = resolve_bands(args)
    out = prepare_out_dir(args.out)
    model, fixed_size, tile, targets, separation, precision = load_model(args, bool(files))
    export(args.export, model, out, tile=tile, fixed_size=fixed_size)
    settings = dict(tile=tile, fixed_size=fixed_size, precision=precision, separation=separation)
    if args.runner:
        return run_on_beam(args, files, out, **settings)

    from inference.tiling import make_logit_fn

    all_channels = separation == "channels"
    logit_fn = make_logit_fn(model, tta=args.tta, fixed_size=fixed_size, precision=precision, all_channels=all_channels)
    rows, failed = predict_scenes(files, logit_fn, scene_job(args, out, **settings))
    return finish(args, out, files, rows, failed, settings)


if __name__ == "__main__":
    main()
