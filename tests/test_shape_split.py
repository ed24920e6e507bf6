"""Splitting buildings by the mask's shape (predict.py --separate shape): any model, no separation channels."""

import json

import numpy as np
import pytest

from inference import separation
from inference.separation import StripSeparator, separate


def _discs(height=40, width=70, neck_rows=(18, 23), gap=(28, 42)):
    """Two discs of radius 12 (centres 32 px apart) joined by a horizontal neck: one 4-connected patch."""
    yy, xx = np.mgrid[:height, :width]
    left = (yy - 20) ** 2 + (xx - 18) ** 2 <= 144
    right = (yy - 20) ** 2 + (xx - 50) ** 2 <= 144
    mask = left | right
    mask[neck_rows[0] : neck_rows[1], gap[0] : gap[1]] = True
    return mask, left, right


def _split(mask, probabilities=None, **kwargs):
    building = mask.astype("float32") if probabilities is None else probabilities
    return separate(building[..., None], **kwargs)


def test_two_discs_joined_by_a_neck_become_two_buildings_with_their_areas():
    mask, left, right = _discs()
    assert _split(mask).max() == 1  # without a depth: the connected patch is one building
    labels = _split(mask, depth=4)
    assert labels.max() == 2 and ((labels > 0) == mask).all()  # split, never changed
    areas = sorted(np.bincount(labels.ravel())[1:].tolist())
    assert (left.sum(), right.sum(), mask.sum()) == (441, 441, 925)  # the neck: 43 pixels outside both discs
    assert sum(areas) == 925 and all(441 <= area <= 441 + 43 for area in areas)
    assert len({int(v) for v in labels[left]}) == 1 and len({int(v) for v in labels[right]}) == 1
    assert labels[20, 18] != labels[20, 50]


def test_plain_shapes_stay_whole():
    scene = np.zeros((60, 120), bool)
    scene[5:25, 5:25] = True  # a square
    scene[30:40, 5:95] = True  # a long bar
    scene[45:58, 60:110] = True  # an L: a bar with a foot
    scene[30:58, 100:110] = True
    labels = _split(scene, depth=2)
    assert labels.max() == 3 and sorted(np.bincount(labels.ravel())[1:].tolist()) == [400, 800, 900]


def test_depth_decides_how_distinct_a_part_must_be():
    # a thick neck (15 rows): the pass between the discs' peaks (12.04) is at 8, 4.04 below them
    mask, _, _ = _discs(neck_rows=(13, 28))
    assert _split(mask, depth=2).max() == 2 and _split(mask, depth=4).max() == 2
    assert _split(mask, depth=4.1).max() == 1 and _split(mask, depth=8).max() == 1


def test_a_dip_in_probability_is_a_neck_too():
    bar = np.zeros((30, 90), bool)
    bar[5:25, 5:85] = True  # one 20 x 80 block: no neck in its shape
    probabilities = bar.astype("float32")
    assert _split(bar, probabilities, depth=3).max() == 1
    probabilities[5:25, 43:47] = 0.55  # the model is unsure along a line across it: two buildings
    labels = _split(bar, probabilities, depth=3)
    assert labels.max() == 2 and labels[15, 20] != labels[15, 70]


def test_a_patch_too_large_to_split_stays_whole(monkeypatch):
    mask, _, _ = _discs()
    monkeypatch.setattr(separation, "MAX_SPLIT_PIXELS", 924)
    assert _split(mask, depth=4).max() == 1
    monkeypatch.setattr(separation, "MAX_SPLIT_PIXELS", 925)
    assert _split(mask, depth=4).max() == 2


def _partition(labels):
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(flat[order])) + 1)
    return {frozenset(g.tolist()) for g in groups if flat[g[0]] > 0}


@pytest.mark.parametrize("strip_rows", [5, 33])
def test_streaming_shape_split_equals_the_whole_scene(strip_rows):
    rng = np.random.default_rng(1)
    pair, _, _ = _discs()
    scene = np.zeros((300, 400), bool)
    for top, left in zip(rng.integers(0, 260, 12), rng.integers(0, 330, 12)):
        scene[top : top + 40, left : left + 70] |= pair  # overlapping pairs: odd shapes across many strips
    probabilities = (scene * rng.uniform(0.6, 1.0, scene.shape)).astype("float32")[..., None]
    whole = separate(probabilities, depth=3)
    separator, pieces = StripSeparator(depth=3), []
    for y in range(0, len(scene), strip_rows):
        pieces += separator.add(y, probabilities[y : y + strip_rows])
    pieces += separator.finish()
    streamed = np.concatenate([labels for _, labels, _ in pieces])
    assert _partition(streamed) == _partition(whole)
    assert len(_partition(whole)) > len(_partition(separate(probabilities)))  # something was split


def test_predict_separate_shape_splits_what_the_patches_keep_whole(tmp_path):
    """A model that calls red pixels buildings, on a scene of two red discs joined by a neck."""
    import keras
    from PIL import Image

    import predict

    inputs = keras.Input((None, None, 3))
    logits = keras.layers.Conv2D(1, 1, name="logits")(inputs)
    model = keras.Model(inputs, logits)
    model.get_layer("logits").set_weights([np.array([0.1, 0.0, 0.0], "float32").reshape(1, 1, 3, 1), np.array([-12.7])])
    model.save(tmp_path / "red.keras")
    mask, left, right = _discs(height=64, width=96)
    scenes, labels = tmp_path / "scenes", tmp_path / "labels"
    scenes.mkdir()
    labels.mkdir()
    Image.fromarray(np.where(mask[..., None], [255, 0, 0], [0, 0, 0]).astype("uint8")).save(scenes / "two.png")
    Image.fromarray((left | right).astype("uint8") * 255).save(labels / "two.png")  # two buildings, no neck
    written = {}
    for how in ("none", "shape"):
        out = tmp_path / how
        predict.main(["--model", str(tmp_path / "red.keras"), str(scenes), "--out", str(out), "--separate", how,
                      "--split-depth", "4", "--labels", str(labels)])  # fmt: skip
        written[how] = (np.array(Image.open(out / "two_mask.png")) > 0, json.loads((out / "metrics.json").read_text()))
    assert (written["none"][0] == mask).all() and (written["shape"][0] == mask).all()  # the same mask both ways
    none, shape = written["none"][1]["overall"], written["shape"][1]["overall"]
    # the blob matches neither disc (IoU 0.47); split, each part is its disc and half the neck
    assert (none["building_tp"], none["building_fp"], none["building_fn"]) == (0, 1, 2)
    assert (shape["building_tp"], shape["building_fp"], shape["building_fn"]) == (2, 0, 0)
    assert shape["iou"] == none["iou"]
    assert written["shape"][1]["separated"] and written["shape"][1]["split_depth"] == 4
    assert not written["none"][1]["separated"]
    with pytest.raises(SystemExit, match="--split-depth 0.0 must be above 0"):
        predict.main(["--model", str(tmp_path / "red.keras"), str(scenes), "--out", str(tmp_path / "x"),
                      "--separate", "shape", "--split-depth", "0"])  # fmt: skip


def test_shape_split_summary_pairs_runs_and_chooses_the_depth_on_training_images():
    from experiments.shape_split import PATCHES, TRAINING, summary

    def run(t8, training):
        return {"dubai_t8": dict(zip([PATCHES, "4", "8"], t8)), TRAINING: dict(zip([PATCHES, "4", "8"], training))}

    counts = {
        "r0": run([[2, 8, 8], [4, 6, 6], [3, 7, 7]], [[1, 9, 9], [2, 8, 8], [3, 7, 7]]),
        "r1": run([[4, 6, 6], [5, 5, 5], [5, 5, 5]], [[1, 9, 9], [1, 9, 9], [1, 9, 9]]),
    }
    lines, chosen, own = summary(counts, [4.0, 8.0])
    # on its training images r0 scores 0.1 / 0.2 / 0.3 (patches, 4, 8): it splits; r1 0.1 everywhere: it does not
    assert own == {"r0": "8", "r1": "patches"}
    assert chosen == 8.0  # training images, both runs summed: F1 0.15 at depth 4, 0.2 at depth 8
    # t8 building F1 by run: patches 0.2, 0.4; depth 4: 0.4, 0.5 (differences 0.2, 0.1: mean 0.15, sd 0.0707,
    # t(0.975, 1 df) = 12.706: +-0.635); depth 8: 0.3, 0.5 (+0.1 both: exact); own choice: 0.3 (8), 0.4 (patches)
    t8 = next(line for line in lines if line.startswith("| dubai_t8 |"))
    assert t8 == (
        "| dubai_t8 | 2 | 0.300 | 0.450 (1.50x; +0.150 [-0.485, +0.785]) | 0.400 (1.33x; +0.100 [+0.100, +0.100]) "
        "| 0.350 (1.17x; +0.050 [-0.585, +0.685]) |"
    )
    assert lines[-1].startswith(f"| {TRAINING} | 2 | 0.100 | 0.150 (1.50x; +0.050 [")
    assert lines[-2].startswith("| all held-out places | 2 | 0.300 | 0.450 ")  # one place: the same as t8


def test_versus_pairs_two_recipes_by_fold_and_seed():
    from experiments.shape_split import PATCHES, pair_key, versus

    def run(patches, split):
        return {"t8": {PATCHES: patches, "12": split}}

    counts = {
        "base_f0_s0": run([1, 1, 2], [2, 1, 1]),  # F1 2/5 and 4/6
        "base_f0_s1": run([1, 0, 1], [1, 0, 1]),  # 2/3 and 2/3
        "gap_f0_s0": run([2, 2, 2], [3, 1, 0]),  # 4/8 and 6/7
        "gap_f0_s1": run([1, 1, 1], [2, 0, 0]),  # 1/2 and 1
        "gap_f1_s0": run([9, 0, 0], [9, 0, 0]),  # no baseline run on fold 1: left out
    }
    lines = versus(counts, "base", 12.0)
    assert len(lines) == 3
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[:6] == ["t8", "2", "0.533", "0.667", "0.500", "0.929"]
    # split vs baseline patches: diffs 6/7 - 2/5 and 1 - 2/3, mean 0.395; 0.929 / 0.533 = 1.74x
    assert cells[6].startswith("1.74x; +0.395 [") and cells[7].startswith("1.39x; +0.262 [")
    assert pair_key("lite0gap10_f3_s12") == "f3_s12"
    with pytest.raises(ValueError, match="_f<fold>_s<seed>"):
        pair_key("lite0gap10")
    with pytest.raises(ValueError, match="need runs of the baseline"):
        versus({k: v for k, v in counts.items() if k.startswith("gap")}, "base", 12.0)


def test_counts_from_several_files_are_read_and_new_ones_go_to_the_last(tmp_path, capsys):
    import json

    from experiments.shape_split import PATCHES, TRAINING, main

    def counts(tp):
        return {TRAINING: {PATCHES: [tp, 1, 1], "12": [tp + 1, 1, 1]}, "t8": {PATCHES: [tp, 2, 2], "12": [tp, 2, 2]}}

    first, last = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"base_f0_s0": counts(1), "base_f0_s1": counts(2)}))
    last.write_text(json.dumps({"new_f0_s0": counts(3), "new_f0_s1": counts(4)}))
    before = (first.read_text(), last.read_text())
    runs = [str(tmp_path / name) for name in ("base_f0_s0", "base_f0_s1", "new_f0_s0", "new_f0_s1")]  # no models
    main([*runs, "--depths", "12", "--counts", str(first), "--counts", str(last), "--baseline", "base"])
    out = capsys.readouterr().out
    # all four runs came from the files (none has a model to predict with), and neither file was rewritten
    assert out.count("counted ") == 4 and (first.read_text(), last.read_text()) == before
    row = next(line for line in out.splitlines() if line.startswith("| t8 | 2 |"))
    # t8 patches: base F1 2/6 and 4/8, new 6/10 and 8/12 -> means 0.417 and 0.633
    assert "| 0.417 | 0.417 | 0.633 | 0.633 |" in row


def _tiny_run(synthetic_dir, run_dir, *extra):
    import train
    from tests.tiny import TINY_TRAIN

    run = train.main([*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--epochs", "1",
                      "--run-dir", str(run_dir), *extra])  # fmt: skip
    return run, json.loads((run / "results.json").read_text()), json.loads((run / "heldout_metrics.json").read_text())


def _predict_separation(run, asked, tmp_path):
    """What predict.py --separate ``asked`` does with the run's model: "shape", "channels" or None."""
    import predict

    args = predict.parse_args(["--model", str(run), "--separate", asked, str(tmp_path / "in.png")])
    return predict.load_model(args, has_inputs=True)[4]


def test_a_building_only_run_splits_by_shape_by_default_and_predict_follows_it(synthetic_dir, tmp_path):
    """train.py --split shape (the default) scores the held-out buildings split by the mask's shape, both ways on the
    same weights, and marks the model so that predict.py --separate auto splits it too."""
    from inference.defaults import SPLIT_DEPTH

    run, results, metrics = _tiny_run(synthetic_dir, tmp_path / "run")
    overall = metrics["overall"]
    assert results["split"] == "shape" and results["separated"] is True
    assert metrics["separated"] is True and metrics["shape_depth"] == SPLIT_DEPTH == 12.0
    assert results["heldout_building_f1"] == results["heldout_separated_building_f1"] == overall["building_f1"]
    assert results["heldout_unseparated_building_f1"] == overall["unseparated_building_f1"]
    found = overall["building_tp"] + overall["building_fp"]
    assert found >= overall["unseparated_building_tp"] + overall["unseparated_building_fp"]  # splits only add
    assert [_predict_separation(run, asked, tmp_path) for asked in ("auto", "none", "shape")] == [
        "shape",
        None,
        "shape",
    ]


@pytest.mark.slow  # a second tiny training run
def test_split_none_counts_the_masks_patches_and_predict_does_not_split(synthetic_dir, tmp_path):
    run, results, metrics = _tiny_run(synthetic_dir, tmp_path / "run", "--split", "none")
    assert results["split"] == "none" and results["separated"] is False and metrics["separated"] is False
    assert results["heldout_building_f1"] == metrics["overall"]["building_f1"]
    assert "unseparated_building_tp" not in metrics["overall"] and "heldout_unseparated_building_f1" not in results
    assert [_predict_separation(run, asked, tmp_path) for asked in ("auto", "none", "shape")] == [None, None, "shape"]


@pytest.mark.slow  # ~45 s: a tiny run whose held-out scoring predicts 8 times; predict.py's default that follows the
# model is in test_options (default suite)
def test_a_run_scored_with_tta_scores_so_and_predict_follows_it(synthetic_dir, tmp_path):
    """train.py --tta: the held-out scores are those of the 8 flips and turns averaged (the same weights scored
    without them give other numbers), recorded, and predict.py averages them too by default."""
    import predict
    from data.splits import run_examples
    from inference.defaults import SPLIT_DEPTH
    from inference.heldout import calibrate_model, score_model
    from inference.loading import load_segmenter
    from models.segmenter import set_logit_offset

    run, results, metrics = _tiny_run(synthetic_dir, tmp_path / "run", "--tta")
    assert results["recipe"]["tta"] is True and metrics["tta"] is True
    _, train_examples, heldout = run_examples(run)
    model, fixed = load_segmenter(run)  # its calibrated offset in its last layer
    scored = {tta: score_model(model, heldout, fixed, separate=True, depth=SPLIT_DEPTH, tta=tta)["overall"]
              for tta in (True, False)}  # fmt: skip
    assert scored[True]["iou"] == pytest.approx(results["heldout_iou"], abs=1e-9)
    assert scored[True]["building_f1"] == pytest.approx(results["heldout_building_f1"], abs=1e-9)
    assert abs(scored[False]["iou"] - results["heldout_iou"]) > 1e-4
    set_logit_offset(model, 0.0)
    # the threshold is measured without the flips and turns (as experiments.posthoc measured it), 8x cheaper
    assert calibrate_model(model, train_examples, fixed)["threshold"] == results["calibration"]["threshold"]
    for flags, averaged in (([], True), (["--no-tta"], False)):
        args = predict.parse_args(["--model", str(run), *flags, str(tmp_path / "in.png")])
        predict.load_model(args, has_inputs=True)
        assert args.tta is averaged
