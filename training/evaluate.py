"""Evaluate a model on a dataset split in inference mode, counting every real pixel once."""

import numpy as np
import tensorflow as tf

from training.metrics import confusion_counts, scores_from_counts


def evaluate_split(model, examples, *, size, batch_size=8):
    """IoU / F1 / precision / recall of ``model`` over all pixels of ``examples``.

    Images are cut into zero-padded size x size tiles whose padding carries weight 0
    (``data.pipeline.eval_dataset``); counts are summed over the whole split. Also returns
    the IoU of predicting "building" everywhere, the floor any useful model must beat.
    """
    from data.pipeline import eval_dataset

    # one trace for every batch size (the last batch is smaller)
    predict = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    counts = np.zeros(3)  # tp, fp, fn
    positives = pixels = 0.0
    for images, masks, weights in eval_dataset(examples, size=size, batch_size=batch_size, cache=False):
        truth, w = masks.numpy() > 0.5, weights.numpy()
        counts += confusion_counts(truth, predict(images).numpy() > 0.0, w)
        positives += float((w * truth).sum())
        pixels += float(w.sum())
    scores = scores_from_counts(*counts)
    scores["all_building_iou"] = positives / pixels if pixels else 0.0
    scores["pixels"] = int(pixels)
    return scores
