"""A CI-sized from-scratch training on the real sample, scored on its held-out test scenes.

The full benchmark (200 steps at 256x256) is benchmarks/train_real_sample.py; this version
trains U-Net / EfficientNet-B0 for 40 steps on 128x128 crops and must clearly beat the
all-building baseline in inference mode (IoU 0.29 on these test scenes; 0.12 is the
building fraction of the whole sample).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# Calibrated on 2026-11-25 (2-core CPU). Four runs of this recipe scored IoU 0.489, 0.565 (before
# the per-layer initializer fix), 0.402 and 0.565 (after it) on the test scenes, whose all-building
# IoU is 0.291. CPU training is not bit-exact (thread scheduling changes reduction order), and the
# best epoch is picked on a 3-image validation split, so the spread is wide. The floor sits below
# the lowest run, at 1.2x that baseline and about 3x the sample's building fraction (0.12).
IOU_FLOOR = 0.35


def test_short_training_on_real_sample_beats_baseline(sample_dir, sample_tfds, tmp_path):
    from train_real_sample import train_and_score

    data_dir, _ = sample_tfds
    scores = train_and_score(sample_dir, tmp_path / "run", steps=40, epochs=2, size=128, batch=8,
                             arch="unet", encoder="effnet-b0", data_dir=data_dir, eval_size=256)
    print(scores)
    assert 0.25 < scores["all_building_iou"] < 0.33
    assert scores["iou"] >= IOU_FLOOR
    assert scores["precision"] > 0.45  # not a near-everything mask
