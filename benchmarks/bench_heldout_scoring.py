"""What scoring a run's held-out places costs at the end of train.py: the scorer beside a one-thread reference.

``inference.evaluation.score_scenes`` splits a scene's buildings by shape (``--split shape``, train.py's default
for a building-only model) and matches them in a second thread while the model predicts the next scene. The
reference here does the same work one step after the other (predict, split, score), as the scorer did before.
Both score the same finished run's held-out images (``data.splits.run_examples``: its fold or --holdout, its
dataset), interleaved, ``--repeats`` times each; the table gives the median wall time and megapixels per
second, and the check that both produced the same rows.

    python -m benchmarks.bench_heldout_scoring --run runs/RUN            # a run trained with --folds / --holdout
    python -m benchmarks.bench_heldout_scoring --run runs/RUN --split none
"""

import argparse
import os
import statistics
import time


def serial_scores(logit_fn, scenes, *, depth, tiling):
    """The reference: every scene predicted, then split, then scored, in one thread."""
    from inference.evaluation import scene_scores
    from inference.separation import separate
    from inference.tiling import predict_probabilities

    rows = []
    for name, image, truth, *more in scenes:
        valid, true_buildings = more if more else (None, None)
        probabilities = predict_probabilities(logit_fn, image, **tiling)
        buildings = separate(probabilities, depth=depth) if depth is not None else None
        rows.append(scene_scores(name, truth, probabilities >= 0.5, buildings=buildings, valid=valid,
                                 true_buildings=true_buildings))  # fmt: skip
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished train.py run with held-out places")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--split", choices=("shape", "none"), default="shape")
    args = parser.parse_args()

    from data.splits import run_examples
    from inference import defaults
    from inference.evaluation import score_scenes
    from inference.heldout import decoded_scenes, tiling
    from inference.loading import load_segmenter
    from inference.tiling import make_logit_fn, speed_flags
    from models.segmenter import set_logit_offset
    from training.setup import marks_nodata

    config, _, heldout = run_examples(args.run)
    model, fixed = load_segmenter(args.run)
    set_logit_offset(model, 0.0)  # both score at 0.5
    logit_fn = make_logit_fn(model, fixed_size=fixed)
    windows = tiling(fixed)
    depth = defaults.SPLIT_DEPTH if args.split == "shape" else None
    polygons = marks_nodata(config["dataset"])
    scenes = list(decoded_scenes(heldout, polygons=polygons))
    megapixels = sum(scene[2].size for scene in scenes) / 1e6
    flags = speed_flags()
    print(f"{args.run}: {len(scenes)} held-out images, {megapixels:.1f} MP, --split {args.split}; "
          f"{os.cpu_count()} cores, flags {flags}; {args.repeats} interleaved runs each")  # fmt: skip

    def ours():
        report = score_scenes(logit_fn, iter(scenes), separate=depth is not None, depth=depth, **windows)
        return report["scenes"]

    def reference():
        return serial_scores(logit_fn, scenes, depth=depth, tiling=windows)

    ways = {"score_scenes (split beside the next prediction)": ours, "reference (one step after the other)": reference}
    seconds, rows = {name: [] for name in ways}, {}
    for repeat in range(args.repeats):
        for name in list(ways) if repeat % 2 == 0 else list(ways)[::-1]:
            started = time.perf_counter()
            rows[name] = ways[name]()
            seconds[name].append(time.perf_counter() - started)
    same = all(a == b for a, b in zip(*rows.values()))
    print("| scorer | wall s (median) | MP/s |")
    print("|---|---|---|")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.1f} | {megapixels / median:.2f} |")
    print(f"same rows: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("the two scorers differ")


if __name__ == "__main__":
    main()
