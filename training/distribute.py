"""tf.distribute strategies for train.py, with the workarounds Keras 3.15 needs for multi-worker.

Keras 3.15's TensorFlow trainer has two bugs under MultiWorkerMirroredStrategy:

1. ``fit``/``evaluate`` first reduce one distributed batch eagerly to build the compiled
   metrics; that reduce fails ("Attempt to convert a value (PerReplica...)").
2. Per-step logs are reduced with ``strategy.reduce("MEAN", v, axis=0)``, which fails for
   the scalar losses and metrics ("Invalid reduction dimension 0 for input with 0
   dimensions").

``prepare_multiworker_model`` builds the compiled state from a local batch, and
``patch_keras_multiworker_reduce`` reduces scalars across replicas with ``axis=None``.
Both are no-ops for the other strategies. They touch private ``keras.src`` internals, so
they run only on the Keras version they were written for (``PATCHED_KERAS``): on another
version they are skipped with a warning (the bugs may be fixed there), and on that version
with the internals gone they stop with a clear error. Remove them once Keras fixes the trainer.
"""

import json
import os
import warnings

import keras
import tensorflow as tf

PATCHED_KERAS = "3.15"  # major.minor of the Keras whose trainer internals the workarounds patch
# (module attribute, model method) names the workarounds rely on
INTERNALS = ("reduce_per_replica", "_collective_all_reduce_multi_worker", "_is_per_replica_instance")
MODEL_INTERNALS = ("_symbolic_build", "_maybe_symbolic_build")


def workarounds_apply():
    """True on the Keras version the workarounds were written for (its internals checked); False on another."""
    version = ".".join(keras.__version__.split(".")[:2])
    if version != PATCHED_KERAS:
        warnings.warn(
            f"--strategy multiworker: the workarounds in training/distribute.py were written for Keras "
            f"{PATCHED_KERAS}; this is Keras {keras.__version__}, so they are skipped. If fit() fails under "
            "MultiWorkerMirroredStrategy, re-check them against this version.",
            stacklevel=2,
        )
        return False
    from keras.src.backend.tensorflow import trainer as tf_trainer

    missing = [name for name in INTERNALS if not hasattr(tf_trainer, name)]
    missing += [f"Model.{name}" for name in MODEL_INTERNALS if not hasattr(keras.Model, name)]
    if missing:
        raise RuntimeError(
            f"--strategy multiworker: Keras {keras.__version__} lacks the internals the workarounds in "
            f"training/distribute.py patch ({', '.join(missing)}). Use --strategy default or mirrored, "
            "or update the workarounds."
        )
    return True


def make_strategy(name):
    """The tf.distribute strategy for ``--strategy``."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if workarounds_apply():
            patch_keras_multiworker_reduce()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def patch_keras_multiworker_reduce():
    """Reduce scalar per-replica logs with axis=None under multi-worker strategies."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer.reduce_per_replica, "_zoo_patched", False):
        return
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):

            def reduce_one(value):
                local = (
                    strategy.experimental_local_results(value)
                    if tf_trainer._is_per_replica_instance(value)
                    else [value]
                )
                if local[0].shape.rank == 0:
                    return strategy.reduce("MEAN", value, axis=None)
                return original(value, strategy, reduction)

            return tree.map_structure(reduce_one, values)
        return original(values, strategy, reduction)

    reduce_per_replica._zoo_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def prepare_multiworker_model(model, batch):
    """Build the compiled metrics/loss from a local batch so fit() skips its eager reduce."""
    if not workarounds_apply():
        return
    model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda *args, **kwargs: None


def chief_and_task(tf_config):
    """(is this task the chief, its folder name) from a TF_CONFIG dict.

    TensorFlow's rule: the "chief" task when the cluster has one, else worker 0.
    """
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    kind, index = task.get("type", "worker"), task.get("index", 0)
    chief = kind == "chief" or ("chief" not in cluster and kind == "worker" and index == 0)
    return chief, f"{kind}{index}"


def worker_run_dir(strategy, run_dir):
    """(is this process the chief, the folder it writes to): a non-chief worker of --strategy multiworker
    writes into <run_dir>/<task>, never over the chief's files."""
    if strategy != "multiworker":
        return True, run_dir
    is_chief, task_dir = chief_and_task(json.loads(os.environ["TF_CONFIG"]))
    if is_chief:
        return True, run_dir
    (run_dir / task_dir).mkdir(parents=True, exist_ok=True)
    return False, run_dir / task_dir
