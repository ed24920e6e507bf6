"""model.fit for a run: Ctrl-C or SIGTERM saves interrupted.weights.h5 and exits 130 (resume with --resume)."""

import signal
import sys


def validation_batches(val_ds):
    """How many batches the validation data holds: its cardinality, counted once when tf.data cannot tell (a
    filtered split), so fit asks for exactly what there is and Keras never runs out of data."""
    if val_ds is None:
        return 0
    batches = int(val_ds.cardinality())
    if batches < 0:  # unknown: the split is cached in memory, so one pass costs a decode of a few images
        batches = sum(1 for _ in val_ds)
    return batches


def fit(config, model, run_dir, train_ds, val_ds, *, initial_epoch, callbacks):
    """model.fit; Ctrl-C or SIGTERM saves interrupted.weights.h5 and exits 130 (resume with --resume)."""

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    # every validation batch, said explicitly: without it Keras warns each epoch that the (finite) data ran out
    batches = validation_batches(val_ds)
    try:
        model.fit(
            train_ds,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            validation_data=val_ds,
            validation_steps=batches if batches > 0 else None,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            shuffle=False,
            verbose=1 if sys.stdout.isatty() else 2,
        )
    except KeyboardInterrupt:
        model.save_weights(run_dir / "interrupted.weights.h5")
        print(
            f"\ninterrupted: weights saved to {run_dir / 'interrupted.weights.h5'}; "
            "continue from the last finished epoch with:\n"
            f"  python train.py --run-dir {run_dir} --resume [same options]"
        )
        print(run_dir)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
