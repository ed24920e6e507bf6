"""Building footprints traced strip by strip, a building cut by a strip boundary merged back.

Each finished strip of the mask is labelled into 4-connected components (the buildings the
building-level scores count) and every component is traced along its pixel edges
(rasterio.features.shapes) in pixel coordinates, which are exact integers. A component
touching the strip's bottom row stays open; the next strip's components that touch it from
below (a shared pixel edge) join it (union-find). Once a building no longer reaches the
latest strip's bottom row it is complete: its pieces are unioned (shapely), filtered by
``min_area``, optionally simplified or squared, moved to the scene's coordinates and handed
out. Only open buildings are held, so memory does not grow with the scene.
"""

import math

import numpy as np

from inference import defaults

FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
ROWS_PER_COUNT = 64


def valid_parts(geometry):
    """The valid, non-empty polygons of a geometry (repaired with shapely.make_valid when needed)."""
    from shapely import make_valid

    if geometry.geom_type == "Polygon" and geometry.is_valid:
        return [] if geometry.is_empty else [geometry]
    fixed = make_valid(geometry)
    parts = getattr(fixed, "geoms", [fixed])
    return [part for part in parts if part.geom_type == "Polygon" and not part.is_empty]


def dominant_angle(polygon):
    """The outline's main direction in radians, in [0, pi/2): edge angles modulo 90 degrees, length-weighted."""
    coords = np.asarray(polygon.exterior.coords)
    edges = np.diff(coords, axis=0)
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    angles = np.arctan2(edges[:, 1], edges[:, 0]) % (math.pi / 2)
    # average on the circle of period 90 degrees (4x the angle), so 1 and 89 degrees agree
    vector = (lengths * np.exp(4j * angles)).sum()
    return (np.angle(vector) / 4) % (math.pi / 2)


def _square_ring(coords):
    """An axis-parallel ring from a ring already rotated to its dominant direction, or None.

    Each edge becomes horizontal or vertical (whichever it is closer to); runs of edges of
    one kind merge into one line at their length-weighted mean; corners are where the lines
    meet.
    """
    points = np.asarray(coords)[:-1]
    edges = np.roll(points, -1, axis=0) - points
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    horizontal = np.abs(edges[:, 0]) >= np.abs(edges[:, 1])
    start = int(np.argmax(horizontal != np.roll(horizontal, 1)))  # begin at a change of kind
    lines = []  # (is_horizontal, position)
    for i in list(range(start, len(points))) + list(range(start)):
        mid = (points[i] + points[(i + 1) % len(points)]) / 2
        position, weight = (mid[1] if horizontal[i] else mid[0]), lengths[i]
        if lines and lines[-1][0] == horizontal[i]:
            kind, total, weights = lines[-1]
            lines[-1] = (kind, total + position * weight, weights + weight)
        else:
            lines.append((bool(horizontal[i]), position * weight, weight))
    if len(lines) < 4 or len(lines) % 2 or lines[0][0] == lines[-1][0]:
        return None
    values = [(kind, total / weights if weights else total) for kind, total, weights in lines]
    corners = []
    for (kind, a), (_, b) in zip(values, values[1:] + values[:1]):
        corners.append((b, a) if kind else (a, b))  # a horizontal line y=a meets a vertical x=b
    return corners + corners[:1]


def regularize(polygon, *, tolerance=1.0):
    """Square a building outline: right angles along its dominant direction (holes kept if they square too).

    The outline is simplified by ``tolerance`` (pixels), turned to its dominant direction,
    every edge made parallel to one of the two axes, then turned back. An outline that does
    not square cleanly (invalid, or its area changes by more than a third) falls back to its
    oriented bounding rectangle when that is close in area, else to the simplified outline.
    """
    from shapely import affinity, oriented_envelope
    from shapely.geometry import Polygon

    simple = polygon.simplify(tolerance, preserve_topology=True)
    if simple.is_empty or simple.geom_type != "Polygon":
        return polygon
    angle = math.degrees(dominant_angle(simple))
    centre = simple.centroid
    turned = affinity.rotate(simple, -angle, origin=centre)
    shell = _square_ring(turned.exterior.coords)
    holes = [ring for ring in (_square_ring(h.coords) for h in turned.interiors) if ring is not None]
    if shell is not None:
        squared = affinity.rotate(Polygon(shell, holes), angle, origin=centre)
        if squared.is_valid and abs(squared.area - polygon.area) <= polygon.area / 3:
            return squared
    box = oriented_envelope(polygon)
    return box if box.area <= polygon.area * 4 / 3 else simple


class StripTracer:
    """Footprints of a mask handed over in strips, top to bottom; see the module docstring.

    ``add(y0, mask, probabilities)`` takes the next strip (rows y0.. of the scene) and returns
    the buildings completed so far; ``finish()`` returns the rest. A building is a dict:
    ``polygon`` (shapely, in ``transform``'s coordinates), ``pixels``, ``mean_probability``.
    """

    def __init__(self, transform=None, *, min_area=defaults.MIN_AREA, simplify=0.0, squared=False):
        from rasterio.transform import Affine

        self.transform = transform if transform is not None else Affine.identity()
        self.min_area, self.simplify, self.squared = min_area, simplify, squared
        self.parent = {}  # union-find over component ids; only open buildings' ids are kept
        self.pieces, self.pixels, self.sums = {}, {}, {}  # per root: polygons, pixel count, probability sum
        self.bottom = None  # component ids along the previous strip's last row
        self.next_id = 1

    def _root(self, node):
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def _join(self, a, b):
        a, b = self._root(a), self._root(b)
        if a != b:
            self.parent[b] = a
            self.pieces[a] += self.pieces.pop(b)
            self.pixels[a] += self.pixels.pop(b)
            self.sums[a] += self.sums.pop(b)

    def add(self, y0, mask, probabilities, instances=None):
        """``instances``: building ids numbered across the scene (``inference.separation``), each
        building's pixels given at once or across consecutive strips; without them every 4-connected
        component of ``mask`` is a building, joined to the one above it across the strip boundary."""
        if instances is not None:
            return self._add_instances(y0, instances, probabilities)
        from rasterio import features
        from rasterio.transform import Affine
        from scipy import ndimage
        from shapely.geometry import shape

        labels, count = ndimage.label(mask, structure=FOUR_CONNECTED)
        first, last = (np.where(row > 0, row + (self.next_id - 1), 0) for row in (labels[0], labels[-1]))
        pixels, sums = np.zeros(count + 1, "int64"), np.zeros(count + 1, "float64")
        for rows in range(0, len(labels), ROWS_PER_COUNT):  # in slices: bincount's int64/float64 copies stay small
            part = labels[rows : rows + ROWS_PER_COUNT].ravel()
            pixels += np.bincount(part, minlength=count + 1)
            sums += np.bincount(part, weights=probabilities[rows : rows + ROWS_PER_COUNT].ravel(), minlength=count + 1)
        for offset, n, total in zip(range(1, count + 1), pixels[1:], sums[1:]):
            node = self.next_id - 1 + int(offset)
            self.parent[node], self.pieces[node], self.pixels[node], self.sums[node] = node, [], int(n), float(total)
        strip = Affine.translation(0, y0)  # pixel coordinates of the scene: exact integers
        traced = features.shapes(labels, mask=labels > 0, connectivity=4, transform=strip)
        for geometry, value in traced:
            self.pieces[self.next_id - 1 + int(value)].append(shape(geometry))
        if self.bottom is not None:  # join buildings that share a pixel edge across the boundary
            touching = (self.bottom > 0) & (first > 0)
            for a, b in set(zip(self.bottom[touching].tolist(), first[touching].tolist())):
                self._join(a, b)
        self.next_id += count
        self.bottom = last
        still_open = {self._root(int(node)) for node in np.unique(self.bottom) if node > 0}
        done = [self._complete(root) for root in list(self.pieces) if root not in still_open]
        self._forget(still_open)
        return [building for building in done if building is not None]

    def _add_instances(self, y0, instances, probabilities):
        from rasterio import features
        from rasterio.transform import Affine
        from shapely.geometry import shape

        ids, inverse = np.unique(instances, return_inverse=True)
        inverse = inverse.reshape(instances.shape)
        pixels = np.bincount(inverse.ravel(), minlength=len(ids))
        sums = np.bincount(inverse.ravel(), weights=probabilities.ravel(), minlength=len(ids))
        for node, n, total in zip(ids.tolist(), pixels.tolist(), sums.tolist()):
            if node == 0:
                continue
            if node not in self.pieces:
                self.parent[node], self.pieces[node], self.pixels[node], self.sums[node] = node, [], 0, 0.0
            self.pixels[node] += int(n)
            self.sums[node] += float(total)
        compact = inverse.astype("int32")  # ids may exceed what rasterio traces; trace their ranks
        traced = features.shapes(compact, mask=compact > 0 if ids[0] == 0 else None, connectivity=4,
                                 transform=Affine.translation(0, y0))  # fmt: skip
        for geometry, rank in traced:
            self.pieces[int(ids[int(rank)])].append(shape(geometry))
        open_ids = set(np.unique(instances[-1]).tolist()) - {0} if len(instances) else set()
        done = [self._complete(node) for node in list(self.pieces) if node not in open_ids]
        self.parent = {node: node for node in self.pieces}
        return [building for building in done if building is not None]

    def finish(self):
        done = [self._complete(root) for root in list(self.pieces)]
        self.parent, self.bottom = {}, None
        return [building for building in done if building is not None]

    def _forget(self, still_open):
        """Drop the union-find entries of completed buildings (keeps memory bounded)."""
        keep = {node: root for node in self.parent if (root := self._root(node)) in still_open}
        bottom_ids = {int(node) for node in np.unique(self.bottom) if node > 0}
        self.parent = {node: root for node, root in keep.items() if node in bottom_ids or node == root}

    def _complete(self, root):
        from shapely import affinity, union_all

        pieces, pixels, total = self.pieces.pop(root), self.pixels.pop(root), self.sums.pop(root)
        if pixels < self.min_area:
            return None
        outline = pieces[0] if len(pieces) == 1 else union_all(pieces).simplify(0)
        parts = valid_parts(outline)
        if not parts:
            return None
        outline = max(parts, key=lambda part: part.area) if len(parts) > 1 else parts[0]
        if self.squared:
            outline = regularize(outline, tolerance=max(self.simplify, 1.0))
        elif self.simplify > 0:
            outline = outline.simplify(self.simplify, preserve_topology=True)
        t = self.transform
        outline = affinity.affine_transform(outline, [t.a, t.b, t.d, t.e, t.xoff, t.yoff])
        parts = valid_parts(outline)
        if not parts:
            return None
        return {"polygon": parts[0], "pixels": pixels, "mean_probability": total / pixels}


def trace(mask, probabilities=None, transform=None, **options):
    """Footprints of a whole in-memory mask (one strip)."""
    tracer = StripTracer(transform, **options)
    probabilities = mask.astype("float32") if probabilities is None else probabilities
    return tracer.add(0, mask, probabilities) + tracer.finish()
