"""Data: the TFDS builder for building masks, a synthetic set, and the tf.data pipeline."""
