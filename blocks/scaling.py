"""Compound-scaling helpers of EfficientNet (Tan & Le, 2019)."""

import math


def round_filters(filters, width_coefficient, *, divisor=8):
    """Scale a channel count by ``width_coefficient`` and round to a multiple of ``divisor``.

    Rounds to the nearest multiple, never below ``divisor``, and never drops more than 10%
    below the scaled value (then it rounds up one more multiple).

    Args:
        filters: channel count of the base network.
        width_coefficient: the variant's width multiplier.
        divisor: channel counts are multiples of this.

    Returns:
        The scaled channel count (int).
    """
    if filters <= 0 or width_coefficient <= 0:
        raise ValueError(
            "filters and width_coefficient must be positive. "
            f"Received: filters={filters}, width_coefficient={width_coefficient}"
        )
    scaled = filters * width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats, depth_coefficient):
    """Scale a stage's block count by ``depth_coefficient``, rounding up."""
    if repeats <= 0 or depth_coefficient <= 0:
        raise ValueError(
            "repeats and depth_coefficient must be positive. "
            f"Received: repeats={repeats}, depth_coefficient={depth_coefficient}"
        )
    return int(math.ceil(depth_coefficient * repeats))
