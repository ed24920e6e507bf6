"""Per-image colour standardisation: the first layer of a model trained with --standardize image."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="buildings")
class ImageStandardization(layers.Layer):
    """Give every image (window, crop) the same per-channel mean and spread, in raw 0..255 units.

    Aerial scenes differ in exposure and colour balance from place to place (the sample's
    images average 34 to 213 grey levels); this removes that difference before the encoder,
    whose own ImageNet normalisation then applies as usual.

    Args:
        mean, spread: the grey level and standard deviation every channel is mapped to.
        min_spread: a floor for the spread of a flat image, in grey levels.
    """

    def __init__(self, mean=128.0, spread=64.0, min_spread=1.0, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.spread, self.min_spread = mean, spread, min_spread

    def call(self, images):
        centre = ops.mean(images, axis=(1, 2), keepdims=True)
        deviation = ops.sqrt(ops.mean(ops.square(images - centre), axis=(1, 2), keepdims=True))
        return (images - centre) / ops.maximum(deviation, self.min_spread) * self.spread + self.mean

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "spread": self.spread, "min_spread": self.min_spread}


def standardize_image(x, *, name="standardize"):
    return ImageStandardization(name=name)(x)
