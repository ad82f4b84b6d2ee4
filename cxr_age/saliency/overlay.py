"""Saliency overlays of single studies: the regressor's vanilla gradient map of each image (Simonyan et al.
2014, through tf-keras-vis). The predict command writes each beside its image as a figure PNG; the web
service sends a compact overlay, the map in the figures' colours blended over the image, as PNG bytes."""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np

from cxr_age.config import DEMO_NOTICE
from cxr_age.io.files import claim_file
from cxr_age.saliency.methods import MapSettings, SaliencyMaps
from cxr_age.saliency.plots import COLOURS, MAP_ALPHA, study_figure
from cxr_age.tasks import REGRESS


class StudyOverlays:
    """Writes `<image stem>_saliency.png` into `folder` for each predicted image, never over an existing file."""

    def __init__(self, regressor: keras.Model, folder: Path, demo: bool) -> None:
        self.maps = SaliencyMaps(regressor, REGRESS, MapSettings("saliency"))
        self.folder = folder
        self.note = DEMO_NOTICE if demo else ""

    def add(self, rows: list[dict], images: np.ndarray) -> None:
        """Map a batch (`images` in the order of `rows`) and record each overlay's path in its row."""
        maps = self.maps(images)
        for row, image, saliency in zip(rows, images, maps):
            name = Path(row["file"])
            path = claim_file(self.folder, f"{name.stem}_saliency", ".png")
            study_figure(image[..., 0], saliency, f"{name.name}: predicted age {row['predicted_age']:.1f} years",
                         path, self.note)
            row["saliency_png"] = str(path)


def overlay_png(image: np.ndarray, saliency: np.ndarray) -> bytes:
    """The map (scaled to its maximum) in the figures' colour map blended over the gray image, both
    `[h, w]` in [0, 1], as PNG bytes."""
    peak = float(saliency.max())
    scaled = np.uint8(np.clip(saliency / peak if peak > 0 else saliency, 0, 1) * 255)
    colours = cv2.applyColorMap(scaled, getattr(cv2, f"COLORMAP_{COLOURS.upper()}"))
    gray = cv2.cvtColor(np.uint8(np.clip(image, 0, 1) * 255), cv2.COLOR_GRAY2BGR)
    blended = cv2.addWeighted(colours, MAP_ALPHA, gray, 1 - MAP_ALPHA, 0)
    _, encoded = cv2.imencode(".png", blended)
    return encoded.tobytes()
