"""Megapixels/s of predict.py's tiled inference vs the naive per-tile loop and the path before streaming.

Naive (the original notebooks' style): cut the scene into non-overlapping 256x256 tiles,
zero-pad the ragged ones to 256, call ``model.predict`` once per tile, stitch. "Before":
the blended sliding window at the defaults as it ran until the streaming change (a traced,
unfrozen function over the whole decoded scene). Ours: the same windows through the frozen
graph (BatchNorm folded into the convolutions), in float32 and in bfloat16 (predict.py's
default on CPUs with AMX; its masks are compared with float32's), and predict.py's whole
streaming path for one scene (windowed GeoTIFF reads, prediction, COG and GeoPackage writes),
whose reading and writing share of the time is printed. Same model, same scene, one process;
runs are interleaved and the median of each is reported, with the CPU's model and flags.

    python -m benchmarks.bench_predict                               # U-Net/B0, a 2149x1479 sample scene
    python -m benchmarks.bench_predict --model runs/RUN --repeats 5  # a trained model
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from common.rasters import open_scene  # noqa: E402
from inference import defaults  # noqa: E402
from inference.tiling import (  # noqa: E402
    cpu_flags,
    make_logit_fn,
    predict_probabilities,
    predict_strips,
    resolve_precision,
)

SCENE = (
    ROOT.parent
    / "shared"
    / "data"
    / "buildings_sample"
    / "building_data"
    / "test"
    / "src"
    / "dubai_image_part_007t8.tiff"
)


BEFORE = "before: defaults until now (512, overlap 64, batch 4), unfrozen"
LAYOUT = f"{defaults.TILE} windows, overlap {defaults.OVERLAP}, batch {defaults.BATCH_SIZE}"
DEFAULT = resolve_precision("auto")  # predict.py's default on this CPU: bfloat16 with AMX, else float32
OURS = f"ours: {LAYOUT}, frozen, float32" + (" (the defaults)" if DEFAULT == "float32" else "")
BF16 = f"ours: {LAYOUT}, frozen, bfloat16" + (" (the defaults: this CPU has AMX)" if DEFAULT == "bfloat16" else "")


def naive_loop(model, image, tile=256):
    """One model.predict call per non-overlapping, zero-padded tile."""
    height, width = image.shape[:2]
    out = np.zeros((height, width), dtype="float32")
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            piece = image[y : y + tile, x : x + tile]
            padded = np.zeros((tile, tile, 3), dtype="float32")
            padded[: piece.shape[0], : piece.shape[1]] = piece
            logits = model.predict(padded[None], verbose=0)[0, ..., 0]
            out[y : y + piece.shape[0], x : x + piece.shape[1]] = 1 / (
                1 + np.exp(-logits[: piece.shape[0], : piece.shape[1]])
            )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path, default=SCENE)
    parser.add_argument("--model", help="run directory or model.keras; default: a random-init U-Net / effnet-b0")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.scene.exists():
        sys.exit(f"Scene not found: {args.scene}; pass --scene PATH (the sample's test scenes are in ../shared).")
    if args.model:
        from inference.loading import load_segmenter

        model, _ = load_segmenter(args.model)
    else:
        from models import create_model

        model = create_model("unet", "effnet-b0", input_shape=(None, None, 3))
        print(
            "A random-init model: its mask is noise, so tracing footprints dominates the streaming row; "
            "pass --model RUN (a trained run) for a realistic share of reading and writing."
        )
    source = open_scene(args.scene, hint="pass a readable scene with --scene")
    image = source.read(0, source.height)
    source.close()
    megapixels = image.shape[0] * image.shape[1] / 1e6
    logit_fn, low_fn = make_logit_fn(model), make_logit_fn(model, precision="bfloat16")
    default_fn = low_fn if DEFAULT == "bfloat16" else logit_fn
    io_seconds = []
    out = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    geotiff = georeferenced_copy(image, out / "scene.tif")  # so the streaming path writes COGs and a GeoPackage
    out = out / "out"
    out.mkdir()
    contenders = {
        "naive: model.predict per 256 tile": lambda: naive_loop(model, image),
        BEFORE: partial(
            predict_probabilities, make_logit_fn(model, frozen=False), image, tile=512, overlap=64, batch_size=4
        ),
        "ours: 256 tiles, overlap 0, batch 4": partial(
            predict_probabilities, logit_fn, image, tile=256, overlap=0, batch_size=4
        ),
        "ours: 512 tiles, overlap 64, batch 4 (the old defaults), frozen": partial(
            predict_probabilities, logit_fn, image, tile=512, overlap=64, batch_size=4
        ),
        OURS: partial(predict_probabilities, logit_fn, image),
        BF16: partial(predict_probabilities, low_fn, image),
        f"ours: predict.py streaming path, defaults ({DEFAULT})": lambda: io_seconds.append(
            stream(default_fn, geotiff, out)
        ),
    }
    warm = {name: run() for name, run in contenders.items()}  # warm-up: traces and first-call allocations
    exact, low = warm[OURS], warm[BF16]
    io_seconds.clear()
    seconds = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    shutil.rmtree(out.parent, ignore_errors=True)
    naive = statistics.median(seconds["naive: model.predict per 256 tile"])
    before = statistics.median(seconds[BEFORE])
    print(
        f"\n{model.name}, scene {args.scene.name} {image.shape[1]}x{image.shape[0]} ({megapixels:.2f} MP), "
        f"median of {args.repeats}; CPU: {cpu_description()}"
    )
    print("| method | seconds | MP/s | vs naive | vs before |")
    print("|---|---|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {megapixels / median:.3f} | {naive / median:.2f}x | {before / median:.2f}x |")
    print(
        f"\nbfloat16 vs float32 at the defaults: masks differ on {np.mean((exact > 0.5) != (low > 0.5)):.3%} of "
        f"pixels, probabilities by at most {np.abs(exact - low).max():.4f}"
    )
    streamed = statistics.median(seconds[f"ours: predict.py streaming path, defaults ({DEFAULT})"])
    ours = statistics.median(seconds[BF16 if DEFAULT == "bfloat16" else OURS])
    work = {kind: statistics.median(run[kind] for run in io_seconds) for kind in io_seconds[0]}
    print(
        f"\nstreaming path: reading and writing took {sum(work.values()):.2f} s of work per scene ("
        + ", ".join(f"{kind} {value:.2f} s" for kind, value in work.items())
        + f"), partly beside the model in threads; the path's wall time is {streamed / ours:.2f}x the in-memory "
        f"prediction's ({1 - ours / streamed:.0%} of it is I/O not hidden)"
    )


def stream(logit_fn, scene, out):
    """predict.py's per-scene path; returns {kind: seconds} spent reading windows and writing outputs.

    Strips are handed to the writer in a second thread beside the model (``write_strips``) and
    the files are finished in threads, so these seconds are work done, partly hidden behind
    the model's. "strips" is the staging GeoTIFF writes and the footprint tracing as rows finish.
    """
    from common.rasters import open_scene
    from inference.outputs import SceneWriter, write_strips

    source = open_scene(scene)
    writer = SceneWriter(source, out)
    io = {kind: 0.0 for kind in ("reading", "strips", "COGs", "footprints", "pictures")}

    def timed(kind, function):
        def run(*args):
            started = time.perf_counter()
            result = function(*args)
            io[kind] += time.perf_counter() - started
            return result

        return run

    read = source.read
    source.read, writer.add = timed("reading", read), timed("strips", writer.add)
    for stream in writer.streams.values():
        stream.close = timed("COGs", stream.close)
    if writer.footprints is not None:
        writer.footprints.close = timed("footprints", writer.footprints.close)
    writer._save_picture = timed("pictures", writer._save_picture)
    write_strips(writer, predict_strips(logit_fn, source))
    source.read = read  # the overlay's read of the scene counts with the pictures
    writer.close()  # its parts are timed above
    source.close()
    return io


def georeferenced_copy(image, path):
    """The scene as a tiled, deflate GeoTIFF in UTM (0.5 m pixels)."""
    import rasterio
    from rasterio.transform import from_origin

    height, width = image.shape[:2]
    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs="EPSG:32640")
    profile |= dict(transform=from_origin(500_000, 2_800_000, 0.5, 0.5), tiled=True, compress="deflate")
    with rasterio.open(path, "w", **profile) as target:
        target.write(np.moveaxis(image, -1, 0))
    return path


def cpu_description():
    """The CPU model and the flags that decide the speed of these kernels."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = cpu_flags()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
    cores = os.cpu_count()
    return f"{model}, {cores} cores, flags {' '.join(f for f in wanted if f in flags) or 'none of the AVX family'}"


if __name__ == "__main__":
    main()
