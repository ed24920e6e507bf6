"""Fine-tuning: --init from another run (same arch and encoder, or refused before any write) and --freeze-encoder."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from models import create_model
from tests.tiny import TINY_TRAIN
from training.finetune import UnfreezeEncoder, encoder_of, start_frozen

ROOT = Path(__file__).resolve().parents[1]


def _encoder_state(model):
    """Every encoder variable (kernels, BatchNorm gammas, betas, moving means and variances) by path."""
    return {v.path: np.array(v.numpy()) for v in encoder_of(model).weights}


def _fit_with_freeze(freeze_epochs, epochs):
    keras.utils.set_random_seed(0)
    model = create_model("unet", "effnet-lite0", input_shape=(64, 64, 3))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    masks = (rng.uniform(size=(8, 64, 64, 1)) > 0.7).astype("float32")
    snapshots = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append((_encoder_state(self.model), [np.array(w) for w in self.model.get_weights()]))

    before = _encoder_state(model)
    start_frozen(model, freeze_epochs, 0)
    model.fit(
        images, masks, batch_size=4, epochs=epochs, verbose=0, callbacks=[UnfreezeEncoder(freeze_epochs), Snapshot()]
    )
    return model, before, snapshots


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_freeze_encoder_keeps_encoder_bit_identical_then_trains_it():
    model, before, snapshots = _fit_with_freeze(freeze_epochs=2, epochs=3)
    moving = [path for path in before if "moving_" in path]
    assert len(moving) > 40  # the BatchNorm statistics are among the variables checked
    for epoch in (0, 1):  # frozen: weights and BatchNorm statistics unchanged, bit for bit
        state = snapshots[epoch][0]
        assert all(np.array_equal(state[path], before[path]) for path in before)
    # the decoder did train meanwhile
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[0][1], snapshots[1][1]))
    after = snapshots[2][0]
    changed_kernels = [p for p in before if p.endswith("kernel") and not np.array_equal(after[p], before[p])]
    changed_stats = [p for p in moving if not np.array_equal(after[p], before[p])]
    assert len(changed_kernels) > 40 and len(changed_stats) > 40
    assert encoder_of(model).trainable


@pytest.mark.slow  # ~20 s, as the other freeze tests; run with -m slow
def test_a_run_frozen_to_its_last_epoch_ends_with_the_weight_average_in_place():
    # --freeze-encoder equal to --epochs: fit writes the average back over the trainable weights, one to one
    model, before, snapshots = _fit_with_freeze(freeze_epochs=1, epochs=1)
    state = _encoder_state(model)
    # the encoder never trained: its average is itself, within float32 rounding (m * w + (1 - m) * w)
    assert all(np.allclose(state[path], before[path], rtol=1e-5, atol=1e-7) for path in before)
    last = snapshots[0][1]
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights(), last)]
    assert 0 < sum(changed) < len(last) and encoder_of(model).trainable  # the decoder's average replaced its last


@pytest.mark.slow  # ~22 s; the freeze test below also checks that the encoder trains once unfrozen
def test_no_freeze_trains_the_encoder_from_the_first_epoch():
    _, before, snapshots = _fit_with_freeze(freeze_epochs=0, epochs=1)
    state = snapshots[0][0]
    assert sum(not np.array_equal(state[p], before[p]) for p in before) > 100


def _run(args):
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_init_fine_tunes_a_run_and_refuses_another_model(synthetic_dir, tmp_path):
    common = [*TINY_TRAIN, "--dataset", "buildings/synthetic", "--data-dir", synthetic_dir, "--calibrate", "none"]
    base = tmp_path / "base"
    first = _run([*common, "--epochs", "1", "--run-dir", str(base)])
    assert first.returncode == 0
    assert "ran out of data" not in first.stdout + first.stderr  # fit is fed exactly the batches it asks for
    tuned = tmp_path / "tuned"
    done = _run([*common, "--epochs", "2", "--freeze-encoder", "1", "--init", str(base), "--run-dir", str(tuned)])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "encoder unfrozen" in done.stdout
    recipe = json.loads((tuned / "results.json").read_text())["recipe"]
    assert recipe["init"] == str(base) and recipe["freeze_encoder"] == 1

    refused = tmp_path / "refused"
    other = [a if a != "fcn32" else "fcn8" for a in common]
    result = _run([*other, "--epochs", "1", "--init", str(base / "model.keras"), "--run-dir", str(refused)])
    assert result.returncode != 0
    assert "fcn32 / resnet18 model, but this run trains fcn8 / resnet18" in result.stderr
    assert not refused.exists()  # refused before any write
    result = _run([*common, "--epochs", "1", "--init", str(tmp_path / "nowhere"), "--run-dir", str(refused)])
    assert result.returncode != 0 and "--init" in result.stderr and "no model.keras" in result.stderr
    assert not refused.exists()


def test_init_weights_are_the_runs_weights(synthetic_dir, tmp_path):
    from training.finetune import load_init_weights

    source = create_model("fcn32", "resnet18", input_shape=(None, None, 3))
    source.save(tmp_path / "model.keras")
    target = create_model("fcn32", "resnet18", input_shape=(64, 64, 3))
    assert load_init_weights(target, tmp_path) == len(source.weights)
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), target.get_weights()))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_init_weights(create_model("fcn32", "resnet34", input_shape=(64, 64, 3)), tmp_path)
