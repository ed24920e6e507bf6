"""Procedural aerial-like scenes with building masks, generated deterministically.

A scene is a ground texture (bare soil and vegetation blended by smooth noise), a few
roads, and buildings: rectangles, L-shapes and rotated footprints with varied roof
colours, a ridge line on some roofs, and a cast shadow on one side. Roof colours are drawn
from the same families as soil and roads, so no colour threshold separates buildings from
ground: a model has to use shape, edges and shadows.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SOIL = np.array([[150, 130, 105], [175, 160, 135], [120, 100, 80], [190, 180, 160]], dtype="float32")
VEGETATION = np.array([[70, 95, 55], [95, 115, 70], [60, 80, 50]], dtype="float32")
ROAD = np.array([[105, 105, 105], [135, 130, 125], [80, 80, 85]], dtype="float32")
ROOFS = np.array(
    [
        [170, 85, 70],
        [200, 200, 195],
        [125, 125, 130],
        [165, 150, 125],
        [190, 175, 150],
        [95, 90, 85],
        [140, 110, 90],
        [110, 130, 150],
    ],
    dtype="float32",
)


def _smooth_noise(rng, size, cells):
    """Noise in [0, 1] with features about size / cells pixels wide."""
    coarse = rng.rand(cells, cells).astype("float32")
    image = Image.fromarray((coarse * 255).astype("uint8")).resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype="float32") / 255.0


def _ground(rng, size):
    soil = SOIL[rng.randint(len(SOIL))]
    vegetation = VEGETATION[rng.randint(len(VEGETATION))]
    blend = np.clip((_smooth_noise(rng, size, rng.randint(3, 8)) - rng.uniform(0.3, 0.7)) * 4 + 0.5, 0, 1)[..., None]
    ground = soil * (1 - blend) + vegetation * blend
    ground *= 0.85 + 0.3 * _smooth_noise(rng, size, rng.randint(16, 48))[..., None]
    return ground


def _footprint(rng, cx, cy, size):
    """Polygon of a rectangle or L-shape, rotated by a random angle."""
    w, h = rng.uniform(0.5, 1.0) * size, rng.uniform(0.5, 1.0) * size
    if rng.rand() < 0.35:  # L-shape
        cut_w, cut_h = w * rng.uniform(0.35, 0.6), h * rng.uniform(0.35, 0.6)
        points = [(0, 0), (w, 0), (w, h - cut_h), (w - cut_w, h - cut_h), (w - cut_w, h), (0, h)]
    else:
        points = [(0, 0), (w, 0), (w, h), (0, h)]
    angle = rng.uniform(0, math.pi) if rng.rand() < 0.6 else 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + (x - w / 2) * cos - (y - h / 2) * sin, cy + (x - w / 2) * sin + (y - h / 2) * cos) for x, y in points]


def synthetic_scene(seed, *, size=256):
    """One deterministic scene.

    Args:
        seed: any int; the same seed gives the same scene.
        size: side of the square scene in pixels.

    Returns:
        (image uint8 (size, size, 3), mask uint8 (size, size) in {0, 1}).
    """
    rng = np.random.RandomState(seed)
    image = Image.fromarray(np.clip(_ground(rng, size), 0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 3)):  # roads
        colour = tuple(int(c) for c in ROAD[rng.randint(len(ROAD))] + rng.normal(0, 8, 3))
        width = int(rng.uniform(0.03, 0.08) * size)
        if rng.rand() < 0.5:
            y = rng.uniform(0, size)
            draw.line([(0, y), (size, y + rng.uniform(-0.3, 0.3) * size)], fill=colour, width=width)
        else:
            x = rng.uniform(0, size)
            draw.line([(x, 0), (x + rng.uniform(-0.3, 0.3) * size, size)], fill=colour, width=width)

    mask = Image.new("L", (size, size), 0)
    mask_draw = ImageDraw.Draw(mask)
    shadow = Image.new("L", (size, size), 0)
    shadow_draw = ImageDraw.Draw(shadow)
    target = rng.uniform(0.05, 0.40)
    sun = rng.uniform(0, 2 * math.pi)
    building_scale = rng.uniform(0.08, 0.22) * size
    for _ in range(60):
        if np.asarray(mask).mean() / 255 >= target:
            break
        polygon = _footprint(rng, rng.uniform(0, size), rng.uniform(0, size), building_scale * rng.uniform(0.6, 1.4))
        offset = rng.uniform(0.03, 0.12) * building_scale
        dx, dy = offset * math.cos(sun), offset * math.sin(sun)
        shadow_draw.polygon([(x + dx, y + dy) for x, y in polygon], fill=255)
        roof = ROOFS[rng.randint(len(ROOFS))] + rng.normal(0, 10, 3)
        draw.polygon(polygon, fill=tuple(int(c) for c in np.clip(roof, 0, 255)))
        if rng.rand() < 0.5 and len(polygon) == 4:  # a ridge line across the roof
            (x0, y0), (x1, y1), (x2, y2), (x3, y3) = polygon
            draw.line(
                [((x0 + x3) / 2, (y0 + y3) / 2), ((x1 + x2) / 2, (y1 + y2) / 2)],
                fill=tuple(int(c * 0.8) for c in roof),
                width=2,
            )
        mask_draw.polygon(polygon, fill=255)

    pixels = np.asarray(image, dtype="float32")
    mask_array = np.asarray(mask) > 127
    # shadows darken the ground only (a roof is never shaded by its own shadow)
    shade = (np.asarray(shadow.filter(ImageFilter.GaussianBlur(1.5)), dtype="float32") / 255.0) * (~mask_array)
    pixels *= 1.0 - 0.45 * shade[..., None]
    pixels *= rng.uniform(0.85, 1.15)  # scene-wide illumination
    pixels += rng.normal(0, 6, pixels.shape)  # sensor noise
    blurred = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).filter(ImageFilter.GaussianBlur(0.6))
    return np.asarray(blurred), mask_array.astype("uint8")
