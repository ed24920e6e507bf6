"""The README's result blocks are what compare.py makes of the committed runs, byte for byte."""

import json
import re
from pathlib import Path

import pytest

from experiments.readme import BEGIN, END, blocks, study_block, update_readme

ROOT = Path(__file__).resolve().parents[1]


def test_readme_blocks_equal_a_fresh_regeneration_from_the_committed_runs():
    text = (ROOT / "README.md").read_text()
    found = blocks(text)
    assert [runs for runs, _, _ in found] == ["results/questions"]
    for runs, readme, body in found:
        assert readme == "README.md"
        assert (ROOT / runs).is_dir(), f"the README's block names {runs}, which is not in the repository"
        assert body == study_block(ROOT / runs), f"run: python compare.py --runs {runs} --readme README.md"


def _run(folder, name, arch, iou, f1, seed, place, weights="imagenet"):
    run = folder / name
    run.mkdir(parents=True)
    recipe = {"augment": "basic", "calibrate": "train", "encoder_weights": weights, "steps": 40, "batch_size": 8}
    results = {
        "format": 3,
        "arch": arch,
        "encoder": "effnet-lite0",
        "params": 4_000_000,
        "gmacs": 0.5,
        "epochs": 2,
        "wall_seconds": 10.0,
        "dataset": "buildings/kaggle",
        "image_size": 128,
        "selection": "ema",
        "recipe": recipe,
        "heldout_iou": iou,
        "heldout_building_f1": f1,
        "heldout_kind": "groups",
        "heldout_groups": [place],
        "predict_mp_per_sec": 1.5,
        "seed": seed,
    }
    (run / "results.json").write_text(json.dumps(results))


def test_update_readme_rewrites_only_its_block_and_names_a_missing_one(tmp_path):
    study = tmp_path / "results" / "mini"
    for seed in (0, 1):
        for place, shift in (("t1", 0.0), ("t2", 0.1)):
            _run(study, f"u{place}{seed}", "unet", 0.50 + shift + seed / 100, 0.20 + shift, seed, place)
            _run(study, f"f{place}{seed}", "fcn8", 0.40 + shift + seed / 50, 0.10 + shift, seed, place)
    readme = tmp_path / "README.md"
    begin = BEGIN.format(runs="results/mini", readme="README.md")
    readme.write_text(f"# Title\n\nbefore\n\n{begin}\nold numbers\n{END}\n\nafter\n")
    assert update_readme(readme, study) and not update_readme(readme, study)  # the second time: nothing to change
    text = readme.read_text()
    head = "8 runs: 2 sets of held-out places x 2 seeds (0, 1); each 40 steps"
    assert text.startswith(f"# Title\n\nbefore\n\n{begin}\n{head}")
    assert text.endswith(f"{END}\n\nafter\n") and "old numbers" not in text
    body = blocks(text)[0][2]
    assert "| unet | effnet-lite0 | imagenet | 0.555 ± 0.058 | 0.250 ± 0.058 | 4 | 0.500 | 1.500 |" in body
    # FCN-8 vs U-Net: differences 0.10, 0.09 (seed 0, 1) at both places -> mean 0.095, sd 0.005774, t(3) 3.182446
    assert re.search(r"- FCN-8 vs U-Net: .* unet/effnet-lite0 better by 0\.095 ± 0\.009 \[paired, 4 pairs\]", body)
    assert "- building F1: FCN-8 vs U-Net: " in body
    with pytest.raises(SystemExit, match="has no block for .*other.*put these two lines"):
        update_readme(readme, tmp_path / "results" / "other")
