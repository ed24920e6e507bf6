"""Separate touching buildings: seeds from the model's border and contact channels, grown back by a watershed.

A model trained with separation targets (``train.py --targets building,border,contact``)
predicts, besides the building probability, where building outlines (border) and the narrow
gaps between neighbours (contact) are. Seeds are building pixels that are neither (their
4-connected components, specks under ``min_area`` dropped); scikit-image's marker-based
watershed grows them back over the building mask, flooding an elevation that rises at borders
and contacts, so neighbours meet where the model saw the gap. A building component that holds
no seed stays one building. The building mask itself is never changed: separation only splits it.

``separate`` works on a whole scene in memory. ``StripSeparator`` gives the same labels from
strips handed over top to bottom: a component is separated once it no longer reaches the
newest row (the watershed never crosses from one component to another, so one component's
pixels are all it needs), and rows are handed on once every component in them is done, so a
building cut by a strip boundary is one building and memory holds only the rows of unfinished
components. At most ``max_rows`` rows are held: past that, the components still open are
separated as far as they go and a building taller than that is cut there (a mask that is one
giant component, as an untrained model gives, does not grow memory without bound).
"""

import numpy as np

from inference import defaults

FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
MAX_ROWS = 4096  # rows a StripSeparator holds at most before it hands a giant component on as it is


def _elevation(probabilities):
    """The surface the watershed floods: low inside buildings, high on borders and contacts."""
    return (1.0 - probabilities[..., 0]) + probabilities[..., 1:].sum(axis=-1)


def _seeds(probabilities, body, threshold, min_area):
    """Seed markers (int32, 0 = none): building pixels below ``threshold`` on every other channel."""
    from scipy import ndimage

    core = body & np.all(probabilities[..., 1:] < threshold, axis=-1)
    markers, count = ndimage.label(core, structure=FOUR_CONNECTED)
    if count:
        sizes = np.bincount(markers.ravel(), minlength=count + 1)
        small = sizes < max(min_area, 1)
        small[0] = False
        markers[small[markers]] = 0
    return markers


def separate_components(probabilities, body, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA):
    """(int32 labels, count) of the building pixels ``body`` split by the watershed; labels are 1..count."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    markers = _seeds(probabilities, body, threshold, min_area)
    labels = watershed(_elevation(probabilities), markers, mask=body, connectivity=1) if markers.any() else markers
    orphans, extra = ndimage.label(body & (labels == 0), structure=FOUR_CONNECTED)  # components without a seed
    labels = np.where(orphans > 0, orphans + labels.max(), labels).astype("int32")
    ids = np.unique(labels[labels > 0])
    lookup = np.zeros(int(labels.max()) + 1, "int32")
    lookup[ids] = np.arange(1, len(ids) + 1, dtype="int32")
    return lookup[labels], len(ids)


def separate(probabilities, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA):
    """Building labels (int32 (H, W), 0 = background) of (H, W, C) probabilities, building channel first.

    With one channel this is the 4-connected components of the mask (nothing to separate by).
    """
    probabilities = np.asarray(probabilities, dtype="float32")
    if probabilities.ndim == 2:
        probabilities = probabilities[..., None]
    body = probabilities[..., 0] >= threshold
    return separate_components(probabilities, body, threshold=threshold, min_area=min_area)[0]


class StripSeparator:
    """``separate`` for strips handed over top to bottom; see the module docstring.

    ``add(y0, probabilities)`` takes the next strip ((rows, W, C), in order) and returns the
    finished rows as a list of ``(y0, labels, building probabilities)``; ``finish()`` returns
    the rest. Labels are numbered across the scene (1, 2, ...), each building once.
    """

    def __init__(self, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA, max_rows=MAX_ROWS):
        self.threshold, self.min_area, self.max_rows = threshold, min_area, max_rows
        self.top = 0  # scene row of the buffer's first row
        self.probabilities = None  # (rows, W, C) held
        self.labels = None  # (rows, W) int64: final ids, 0 where not (yet) a building
        self.next_id = 1

    def add(self, y0, probabilities):
        probabilities = np.asarray(probabilities, dtype="float32")
        if probabilities.ndim == 2:
            probabilities = probabilities[..., None]
        if self.probabilities is None:
            self.top = y0
            self.probabilities = probabilities.copy()
            self.labels = np.zeros(probabilities.shape[:2], "int64")
        else:
            if y0 != self.top + len(self.probabilities):
                raise ValueError(
                    f"strips must come in order: expected row {self.top + len(self.probabilities)}, got {y0}"
                )
            self.probabilities = np.concatenate([self.probabilities, probabilities])
            self.labels = np.concatenate([self.labels, np.zeros(probabilities.shape[:2], "int64")])
        return self._settle(final=len(self.probabilities) > self.max_rows)

    def finish(self):
        if self.probabilities is None:
            return []
        done = self._settle(final=True)
        self.probabilities = self.labels = None
        return done

    def _settle(self, *, final):
        """Separate every component that no longer reaches the last row (all of them when ``final``);
        hand on the rows above the highest component still open."""
        from scipy import ndimage

        if not len(self.probabilities):
            return []
        body = (self.probabilities[..., 0] >= self.threshold) & (self.labels == 0)
        components, count = ndimage.label(body, structure=FOUR_CONNECTED)
        open_ids = set() if final else set(np.unique(components[-1]).tolist()) - {0}
        boxes = ndimage.find_objects(components)
        first_open = len(self.probabilities)
        for index, box in enumerate(boxes, start=1):
            if box is None:
                continue
            if index in open_ids:
                first_open = min(first_open, box[0].start)
                continue
            own = components[box] == index
            labels, found = separate_components(
                self.probabilities[box], own, threshold=self.threshold, min_area=self.min_area
            )
            self.labels[box] = np.where(own, np.where(labels > 0, labels + (self.next_id - 1), 0), self.labels[box])
            self.next_id += found
        done = [(self.top, self.labels[:first_open], self.probabilities[:first_open, :, 0])] if first_open else []
        self.top += first_open
        self.probabilities, self.labels = self.probabilities[first_open:], self.labels[first_open:]
        return done
