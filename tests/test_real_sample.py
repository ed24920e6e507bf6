"""A CI-sized from-scratch training on the real sample, scored on a place it never saw.

The full benchmark is benchmarks/train_real_sample.py; this version trains U-Net /
EfficientNet-B0 with the default recipe (threshold kept at 0.5) for 40 steps on 128x128 crops with the Dubai tile
t8 held out (its nine parts, the sample's three test scenes among them, never reach
training), and must clearly beat calling everything a building on those scenes.
"""

import pytest

# Calibrated on 2026-11-26 (2-core CPU): the all-building IoU of the nine t8 scenes is 0.204; this
# recipe scored IoU 0.519 and 0.511 (basic augmentation, weight average; two printed runs) and 0.537 (aerial
# augmentation). The 96-step U-Net/B0 runs of the README's grid scored 0.14 to 0.43 on the same
# scenes, so runs spread widely: CPU training is not bit-exact. The floor sits above the all-building
# IoU (a mask of everything fails it) and far below the runs seen at this budget.
ALL_BUILDING_IOU = 0.204
IOU_FLOOR = 0.25


@pytest.mark.slow  # trains U-Net / B0 and scores 28.6 MP of held-out scenes: 3.5 minutes on 2 cores
def test_short_training_on_real_sample_beats_baseline_on_an_unseen_tile(sample_dir, sample_tfds, tmp_path):
    from benchmarks.train_real_sample import train_and_score

    data_dir, _ = sample_tfds
    results = train_and_score(
        sample_dir,
        tmp_path / "run",
        steps=40,
        epochs=2,
        size=128,
        batch=8,
        arch="unet",
        encoder="effnet-b0",
        data_dir=data_dir,
        holdout="dubai_t8",
        extra=("--calibrate", "none"),  # the recipe the floor was calibrated on (threshold 0.5); saves ~40 s
    )
    print({k: v for k, v in results.items() if k.startswith("heldout")})
    assert results["heldout_groups"] == ["dubai_t8"] and results["heldout_scenes"] == 9
    assert results["heldout_pixels"] == 3 * 2149 * 1479 + 3 * 2149 * 1479 + 3 * 2149 * 1480
    assert abs(results["heldout_all_building_iou"] - ALL_BUILDING_IOU) < 0.001
    assert results["heldout_iou"] >= IOU_FLOOR
    assert results["heldout_precision"] > ALL_BUILDING_IOU + 0.05  # not a near-everything mask
