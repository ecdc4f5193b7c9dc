"""Synthetic images with a known answer."""

from __future__ import annotations

import numpy as np


def disc_image(
    *, height: int = 240, width: int = 320, centre: tuple[int, int] = (170, 110), radius: int = 55
) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc on a dark, noisy ground; returns the image and the disc's true mask."""
    rng = np.random.default_rng(7)
    image = rng.normal(40, 12, (height, width, 3))
    yy, xx = np.mgrid[:height, :width]
    disc = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius * radius
    image[disc] = rng.normal(210, 12, (int(disc.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8), disc
