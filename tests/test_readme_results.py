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
    assert [(runs, answers) for runs, _, _, answers in found] == [("results/questions", False)]
    for runs, readme, body, answers in found:
        assert readme == "README.md"
        assert (ROOT / runs).is_dir(), f"the README's block names {runs}, which is not in the repository"
        assert body == study_block(ROOT / runs, answers), f"run: python compare.py --runs {runs} --readme README.md"
        assert ("- FCN vs CNN:" in body) is answers  # a table-only block: the answers are in docs/experiments.md


def test_the_readme_results_table_is_what_its_study_command_prints(monkeypatch):
    from experiments.study import study_blocks, study_body

    monkeypatch.chdir(ROOT)  # the markers' paths are from the repository's root
    found = study_blocks((ROOT / "README.md").read_text())
    assert len(found) == 1, "the README has one results table from experiments.study"
    args, body = found[0]
    assert body == study_body(args), f"run: python -m experiments.study {args} --readme README.md"
    assert "| all 8 places |" in body and body.count("\n| dubai_t") == 7  # every place of the sample, and Rio


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
    assert blocks(text)[0][3]  # a plain marker: the answers too
    assert "| unet | effnet-lite0 | imagenet | 0.555 ± 0.058 | 0.250 ± 0.058 | 4 | 0.500 | 1.500 |" in body
    # FCN-8 vs U-Net: differences 0.10, 0.09 (seed 0, 1) at both places -> mean 0.095, sd 0.005774, t(3) 3.182446
    assert re.search(r"- FCN-8 vs U-Net: .* unet/effnet-lite0 better by 0\.095 ± 0\.009 \[paired, 4 pairs\]", body)
    assert "- building F1: FCN-8 vs U-Net: " in body
    with pytest.raises(SystemExit, match="has no block for .*other.*put these two lines"):
        update_readme(readme, tmp_path / "results" / "other")
    readme.write_text(text.replace("--readme README.md: begin", "--readme README.md (table): begin"))
    assert update_readme(readme, study)  # the same table, the answers gone
    body = blocks(readme.read_text())[0][2]
    assert "| unet | effnet-lite0 | imagenet | 0.555 ± 0.058 |" in body and "FCN-8 vs U-Net" not in body


def test_a_study_block_is_rewritten_from_its_arguments_and_a_missing_one_named(tmp_path, monkeypatch, capsys):
    from experiments.study import STUDY_BEGIN, STUDY_END, main

    study = tmp_path / "results" / "mini"
    for seed in (0, 1):
        for place, shift in (("t1", 0.0), ("t2", 0.1)):
            _run(study, f"unet_f{place[-1]}_s{seed}", "unet", 0.50 + shift + seed / 100, 0.20 + shift, seed, place)
            _run(study, f"fcn_f{place[-1]}_s{seed}", "fcn8", 0.40 + shift, 0.10 + shift, seed, place)
    monkeypatch.chdir(tmp_path)
    args = "results/mini --wide --recipes unet,fcn --names 'U-Net,FCN-8' --baseline fcn"
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{STUDY_BEGIN.format(args=args)}\nold\n{STUDY_END}\nafter\n")
    main([*__import__("shlex").split(args), "--readme", "README.md"])
    text = readme.read_text()
    assert "old" not in text and text.startswith("before\n<!--") and text.endswith(f"{STUDY_END}\nafter\n")
    # each place: unet 0.50/0.51 (t1), 0.60/0.61 (t2); the last row: per seed the mean over both places
    assert "| t1 | 0.505 ± 0.007 | 0.200 ± 0.000 | 0.400 ± 0.000 | 0.100 ± 0.000 |" in text
    assert "| all 2 places | 0.555 ± 0.007 | 0.250 ± 0.000 | 0.450 ± 0.000 | 0.150 ± 0.000 |" in text
    assert "- all 2 places: U-Net - FCN-8, pixel IoU: +0.105 [" in text
    with pytest.raises(SystemExit, match="has no block for these arguments; put these two lines"):
        main(["results/mini", "--wide", "--recipes", "unet", "--readme", "README.md"])
