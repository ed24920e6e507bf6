"""Separate touching buildings: seeds from the model's border and contact channels, grown back by a watershed.

A model trained with separation targets (``train.py --targets building,border,contact``)
predicts, besides the building probability, where building outlines (border) and the narrow
gaps between neighbours (contact) are. Seeds are building pixels that are neither (their
4-connected components, specks under ``min_area`` dropped); scikit-image's marker-based
watershed grows them back over the building mask, flooding an elevation that rises at borders
and contacts, so neighbours meet where the model saw the gap. A building component that holds
no seed stays one building. The building mask itself is never changed: separation only splits it.

A model without separation channels (or any model, by choice) can be split by the mask's shape
instead (``depth``): the building probability times each pixel's distance to the mask's edge is
a relief whose peaks are the parts of a patch; a peak rising at least ``depth`` above the pass to
its neighbour is a building of its own, and the watershed from those peaks cuts the patch at its
narrow necks (scikit-image's morphological reconstruction, regional maxima and watershed). Fused
neighbours are often joined by such necks; a building with none stays whole. Each connected
patch is split on its own, so streaming gives the same buildings; a patch over
``MAX_SPLIT_PIXELS`` (no building is that large; an untrained model's mask can be) stays whole
and memory stays bounded.

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
EIGHT_CONNECTED = np.ones((3, 3), bool)
MAX_ROWS = 4096  # rows a StripSeparator holds at most before it hands a giant component on as it is
MAX_SPLIT_PIXELS = 1_000_000  # a patch larger than this is not split by shape (its relief would cost memory)


def _elevation(probabilities):
    """The surface the watershed floods: low inside buildings, high on borders and contacts."""
    return (1.0 - probabilities[..., 0]) + probabilities[..., 1:].sum(axis=-1)


def seed_markers(core, min_area):
    """Seed markers (int32, 0 = none): the 4-connected parts of the bool ``core``, specks under ``min_area`` dropped."""
    from scipy import ndimage

    markers, count = ndimage.label(core, structure=FOUR_CONNECTED)
    if count:
        small = np.bincount(markers.ravel(), minlength=count + 1) < max(min_area, 1)
        small[0] = False
        markers[small[markers]] = 0
    return markers


def grow_seeds(elevation, markers, body):
    """(int32 labels 1..count, count): ``markers`` grown over ``body`` by a watershed of ``elevation``;
    a component of ``body`` without a seed stays one building."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    labels = watershed(elevation, markers, mask=body, connectivity=1) if markers.any() else markers
    orphans, _ = ndimage.label(body & (labels == 0), structure=FOUR_CONNECTED)  # components without a seed
    labels = np.where(orphans > 0, orphans + labels.max(), labels).astype("int32")
    ids = np.unique(labels[labels > 0])
    lookup = np.zeros(int(labels.max()) + 1, "int32")
    lookup[ids] = np.arange(1, len(ids) + 1, dtype="int32")
    return lookup[labels], len(ids)


def _seeds(probabilities, body, threshold, min_area):
    """Seed markers: building pixels below ``threshold`` on every other channel."""
    return seed_markers(body & np.all(probabilities[..., 1:] < threshold, axis=-1), min_area)


def split_by_shape(building, own, depth):
    """(int32 labels 1..count, count) of one connected patch ``own`` (bool, its bounding box) cut at its necks.

    ``building``: the building probabilities over the same box. The relief is the distance to the
    patch's edge (pixels outside the box count as outside the patch) times the probability; its
    h-maxima of height ``depth`` are the seeds.
    """
    from scipy import ndimage
    from skimage.morphology import local_maxima, reconstruction
    from skimage.segmentation import watershed

    if own.sum() > MAX_SPLIT_PIXELS:
        return own.astype("int32"), 1
    relief = ndimage.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1].astype("float32")
    relief *= np.where(own, building, 0.0).astype("float32")
    # the relief's domes cut ``depth`` below their tops: peaks joined above that level share one plateau (one seed);
    # skimage's h_maxima would keep two equal peaks apart however high the pass between them
    domes = reconstruction(relief - np.float32(depth), relief, method="dilation")
    peaks, count = ndimage.label(local_maxima(domes, connectivity=2) & own, structure=EIGHT_CONNECTED)
    if count < 2:
        return own.astype("int32"), 1
    return watershed(-relief, peaks, mask=own, connectivity=1).astype("int32"), count


def _separate_by_shape(building, body, depth):
    from scipy import ndimage

    components, _ = ndimage.label(body, structure=FOUR_CONNECTED)
    labels, count = np.zeros(body.shape, "int32"), 0
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        own = components[box] == index
        split, found = split_by_shape(building[box], own, depth)
        labels[box] = np.where(own, split + count, labels[box])
        count += found
    return labels, count


def separate_components(probabilities, body, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA, depth=None):
    """(int32 labels, count) of the building pixels ``body`` split by the watershed; labels are 1..count.

    ``depth``: split by the mask's shape (``split_by_shape``) instead of the separation channels.
    """
    if depth is not None:
        return _separate_by_shape(probabilities[..., 0], body, depth)
    return grow_seeds(_elevation(probabilities), _seeds(probabilities, body, threshold, min_area), body)


def separate(probabilities, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA, depth=None):
    """Building labels (int32 (H, W), 0 = background) of (H, W, C) probabilities, building channel first.

    With one channel and no ``depth`` this is the 4-connected components of the mask (nothing to
    separate by); with ``depth`` the mask's patches are split by their shape (``split_by_shape``).
    """
    probabilities = np.asarray(probabilities, dtype="float32")
    if probabilities.ndim == 2:
        probabilities = probabilities[..., None]
    body = probabilities[..., 0] >= threshold
    return separate_components(probabilities, body, threshold=threshold, min_area=min_area, depth=depth)[0]


class StripSeparator:
    """``separate`` for strips handed over top to bottom; see the module docstring.

    ``add(y0, probabilities)`` takes the next strip ((rows, W, C), in order) and returns the
    finished rows as a list of ``(y0, labels, building probabilities)``; ``finish()`` returns
    the rest. Labels are numbered across the scene (1, 2, ...), each building once.
    """

    def __init__(self, *, threshold=defaults.THRESHOLD, min_area=defaults.MIN_AREA, max_rows=MAX_ROWS, depth=None):
        self.threshold, self.min_area, self.max_rows, self.depth = threshold, min_area, max_rows, depth
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
                self.probabilities[box], own, threshold=self.threshold, min_area=self.min_area, depth=self.depth
            )
            self.labels[box] = np.where(own, np.where(labels > 0, labels + (self.next_id - 1), 0), self.labels[box])
            self.next_id += found
        done = [(self.top, self.labels[:first_open], self.probabilities[:first_open, :, 0])] if first_open else []
        self.top += first_open
        self.probabilities, self.labels = self.probabilities[first_open:], self.labels[first_open:]
        return done
