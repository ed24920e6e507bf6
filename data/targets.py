"""Per-pixel training targets that teach a model to separate buildings, derived from the masks we have.

Every dataset here has binary masks. The builder numbers each mask's 4-connected components
(``instance_ids``: one id per building, stored beside the mask), and from those ids three
targets are computed in TensorFlow ops, after the joint augmentation, so their widths stay in
output pixels:

- ``building``: the mask itself (id > 0), what every tool reads;
- ``border``: building pixels within ``BORDER_WIDTH`` pixels of another value (the
  background or another building): the outline of each building;
- ``contact``: pixels within ``CONTACT_RADIUS`` pixels of two different buildings: the narrow
  gaps between neighbours (and, where ids touch, both sides of the shared wall).

The background pixels of the contact band (the gaps) also serve as a loss weight for the building
channel alone (``gap_weights``, ``train.py --gap-weight``): the original U-Net's idea of weighting
the background between touching objects, here with a cheap binary map instead of its exponential
of the two nearest distances.

At prediction, seeds are building pixels that are neither border nor contact, and a
watershed grows them back over the building mask (``inference.separation``). The idea is the
SpaceNet-4 winner's and RAMP's (body, border and contact masks); the code is written here.
"""

import numpy as np
import tensorflow as tf

TARGETS = ("building", "border", "contact")
BORDER_WIDTH = 2  # pixels of the outline marked as border, inside each building
CONTACT_RADIUS = 3  # a pixel this close to two different buildings is contact
NODATA_LABEL = 2  # mask value of pixels without data (the polygons config): a loss weight of 0, never background
NODATA_ID = 65535  # the building id of those pixels
_FAR = 1e9  # larger than any id: "no building in this window" for the minimum


def parse_targets(spec):
    """'building,border,contact' -> ("building", "border", "contact"); the first must be building."""
    names = tuple(part.strip().lower() for part in str(spec).split(",") if part.strip())
    unknown = [name for name in names if name not in TARGETS]
    if unknown or not names or names[0] != "building" or len(set(names)) != len(names):
        raise ValueError(
            f"--targets must start with building and name each of {', '.join(TARGETS)} at most once, "
            f"e.g. 'building' or 'building,border,contact'. Received: targets={spec!r}"
        )
    return names


def instance_ids(mask):
    """(H, W[, 1]) binary mask -> (H, W, 1) uint16 ids of its 4-connected components (0 = background).

    Ids past 65535 wrap around to 1 (a scene would need more than 65535 buildings; two
    buildings that share an id are then only confused where they are within a few pixels).
    """
    from scipy import ndimage

    labels, _ = ndimage.label(np.asarray(mask).reshape(np.shape(mask)[:2]) > 0)
    wrapped = np.where(labels > 0, (labels - 1) % 65535 + 1, 0)
    return wrapped.astype(np.uint16)[..., None]


def _window_max(x, size):
    return tf.nn.max_pool2d(x, size, 1, "SAME")


def separation_targets(ids, targets=TARGETS):
    """float32 (B, H, W, len(targets)) {0, 1} targets from float32 (B, H, W, 1) instance ids."""
    ids = tf.cast(ids, tf.float32)
    body = ids > 0
    channels = []
    for name in targets:
        if name == "building":
            channels.append(body)
        elif name == "border":
            size = 2 * BORDER_WIDTH + 1
            other = (_window_max(ids, size) != ids) | (-_window_max(-ids, size) != ids)
            channels.append(body & other)
        elif name == "contact":
            size = 2 * CONTACT_RADIUS + 1
            largest = _window_max(ids, size)
            smallest = -_window_max(-tf.where(body, ids, _FAR), size)
            channels.append((smallest < _FAR) & (largest != smallest))
        else:
            raise ValueError(f"Unknown target. Valid targets: {', '.join(TARGETS)}. Received: target={name!r}")
    return tf.cast(tf.concat(channels, axis=-1), tf.float32)


def gap_weights(ids, weight):
    """float32 (B, H, W, 1) per-pixel loss weights: 1, and 1 + ``weight`` on the gaps between buildings.

    ``ids``: float32 (B, H, W, 1) building ids as ``separation_targets`` takes them. The gaps are
    the background pixels of the ``contact`` band (within ``CONTACT_RADIUS`` of two different
    buildings): a mask that bridges them costs 1 + ``weight`` times more there. Building pixels
    beside a gap keep weight 1: weighting them too (the whole band) pushed the masks to cover the
    gaps more, not less (docs/experiments.md).
    """
    if weight < 0:
        raise ValueError(f"the gap weight must be at least 0. Received: weight={weight!r}")
    background_gap = separation_targets(ids, ("contact",)) * tf.cast(ids <= 0, tf.float32)
    return 1.0 + float(weight) * background_gap
