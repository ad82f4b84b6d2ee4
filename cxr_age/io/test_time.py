"""Test-time spread: the same chest seen through a few deterministic, anatomy-preserving changes (small zooms
and shifts, the kind a patient's position or the detector's field gives; never a left-right flip, which puts
the heart on the wrong side), on the network's own preprocessed input. The spread of the predictions over
these views is a quality-control flag (an estimate that moves with a 3% shift deserves a second look), not a
confidence interval: the conformal interval is the calibrated one (Ayhan & Berens 2018; Wang et al. 2019)."""

from __future__ import annotations

import cv2
import numpy as np

from cxr_age.errors import CxrAgeError

# (zoom, shift right, shift down), shifts as fractions of the side; the first view is the image itself.
VIEWS = ((1.0, 0.0, 0.0), (1.05, 0.0, 0.0), (0.95, 0.0, 0.0), (1.0, 0.03, 0.0), (1.0, -0.03, 0.0),
         (1.0, 0.0, 0.03), (1.0, 0.0, -0.03), (1.08, 0.0, 0.0))
MAX_VIEWS = len(VIEWS)


def check_views(n: int) -> int:
    """`n` if it is a usable number of views (2 to `MAX_VIEWS`), else a one-line error."""
    if not 2 <= n <= MAX_VIEWS:
        raise CxrAgeError(f"`tta` must be between 2 and {MAX_VIEWS} views (the image itself and up to "
                          f"{MAX_VIEWS - 1} zooms and shifts), got {n}")
    return n


def _warp(image: np.ndarray, zoom: float, right: float, down: float) -> np.ndarray:
    """One `[size, size]` image zoomed about its centre and shifted, the uncovered border black (as the
    training augmentation fills it)."""
    size = image.shape[0]
    centre = (size - 1) / 2
    matrix = np.array([[zoom, 0.0, (1 - zoom) * centre + right * size],
                       [0.0, zoom, (1 - zoom) * centre + down * size]], dtype=np.float64)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def views(images: np.ndarray, n: int) -> list[np.ndarray]:
    """The first `n` views of a preprocessed batch `[b, size, size, 1]` (float32 in [0, 1]), each a batch of
    the same shape; the first is the batch itself."""
    check_views(n)
    batch = np.asarray(images, dtype=np.float32)
    out = [batch]
    for zoom, right, down in VIEWS[1:n]:
        out.append(np.stack([_warp(image[..., 0], zoom, right, down) for image in batch])[..., None])
    return out
