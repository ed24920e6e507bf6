"""--bands: which bands of a dataset's images a model reads (1-based, RGB first)."""


def bands_of(config):
    """--bands resolved: the 1-based numbers of the dataset images' bands the model reads, RGB first (empty: 1,2,3).
    A ValueError says what is wrong with the text."""
    text = getattr(config, "bands", "") or "1,2,3"
    try:
        bands = tuple(int(band) for band in text.split(","))
    except ValueError:
        bands = ()
    if len(bands) < 3 or min(bands) < 1:
        raise ValueError(f"--bands {text!r}: give at least three band numbers (1-based, comma-separated), RGB "
                         "first, e.g. 1,2,3,4 for RGB and near-infrared")  # fmt: skip
    return bands
