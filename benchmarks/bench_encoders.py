"""Train and predict throughput of encoders under one decoder, side by side in one process.

Every model gets the same random batch; timed runs are interleaved, and the order flips every
repeat (A B, B A, A B, ...) because the model timed first in a round measured faster here (by
up to 1.4x), so a busy machine and the position slow all of them alike; the median of each is
printed with the ratio to the first encoder, the parameter count and the GMACs.

    python -m benchmarks.bench_encoders                                  # U-Net: effnet-b0 vs effnet-lite0 at 256
    python -m benchmarks.bench_encoders --encoders effnet-b0 effnet-lite0 effnet-lite2 --repeats 5
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from benchmarks.bench_models import compiled_steps, timed
from inference.tiling import speed_flags
from models import count_macs, create_model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoders", nargs="+", default=["effnet-b0", "effnet-lite0"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed run")
    parser.add_argument(
        "--repeats", type=int, default=6, help="interleaved timed runs per encoder (even: each order as often)"
    )
    args = parser.parse_args()

    rng = np.random.RandomState(0)
    x = tf.constant(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32"))
    y = tf.constant((rng.rand(args.batch, args.size, args.size, 1) > 0.8).astype("float32"))
    flags = speed_flags()
    print(f"{args.arch} at {args.size}x{args.size}, batch {args.batch}, {args.steps} steps x {args.repeats} repeats")
    print(f"CPU: {os.cpu_count()} cores, flags {flags or 'none of avx2/avx512/amx'}")
    models, steps = {}, {}
    for encoder in args.encoders:
        models[encoder] = create_model(args.arch, encoder, input_shape=(args.size, args.size, 3))
        steps[encoder] = compiled_steps(models[encoder])
        steps[encoder][0](x, y)  # warm-up: trace and compile
        steps[encoder][1](x)
    train = {encoder: [] for encoder in args.encoders}
    predict = {encoder: [] for encoder in args.encoders}
    for repeat in range(args.repeats):
        for encoder in args.encoders if repeat % 2 == 0 else args.encoders[::-1]:
            train[encoder].append(args.batch * args.steps / timed(steps[encoder][0], x, y, steps=args.steps))
            predict[encoder].append(args.batch * args.steps / timed(steps[encoder][1], x, steps=args.steps))
    first = args.encoders[0]
    print("| encoder | params | GMACs | train img/s | vs first | predict img/s | vs first |")
    print("|---|---|---|---|---|---|---|")
    for encoder in args.encoders:
        tr, pr = statistics.median(train[encoder]), statistics.median(predict[encoder])
        print(
            f"| {encoder} | {models[encoder].count_params():,} | {count_macs(models[encoder]) / 1e9:.2f} | "
            f"{tr:.2f} | {tr / statistics.median(train[first]):.2f}x | {pr:.2f} | "
            f"{pr / statistics.median(predict[first]):.2f}x |"
        )


if __name__ == "__main__":
    main()
