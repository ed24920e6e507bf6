"""Evaluate a model on a dataset split in inference mode, counting every real pixel once."""

import tensorflow as tf

from training.metrics import scores_from_counts


def evaluate_split(model, examples, *, size, batch_size=8):
    """IoU / F1 / precision / recall of ``model`` over all pixels of ``examples``.

    Images are cut into zero-padded size x size tiles whose padding carries weight 0
    (``data.pipeline.eval_dataset``); counts are summed over the whole split. Also returns
    the IoU of predicting "building" everywhere, the floor any useful model must beat.
    """
    from data.pipeline import eval_dataset

    # one trace for every batch size (the last batch is smaller)
    predict = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    tp = fp = fn = positives = pixels = 0.0
    for images, masks, weights in eval_dataset(examples, size=size, batch_size=batch_size, cache=False):
        predicted = predict(images).numpy() > 0.0
        truth = masks.numpy() > 0.5
        w = weights.numpy()
        tp += float((w * (predicted & truth)).sum())
        fp += float((w * (predicted & ~truth)).sum())
        fn += float((w * (~predicted & truth)).sum())
        positives += float((w * truth).sum())
        pixels += float(w.sum())
    scores = scores_from_counts(tp, fp, fn)
    scores["all_building_iou"] = positives / pixels if pixels else 0.0
    scores["pixels"] = int(pixels)
    return scores
