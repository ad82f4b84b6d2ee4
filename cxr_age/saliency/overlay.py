"""Saliency overlays of single studies, for the predict command's overlays: the regressor's vanilla gradient
map of each image (Simonyan et al. 2014, through tf-keras-vis), beside the image, one PNG per image."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from cxr_age.config import DEMO_NOTICE
from cxr_age.io.files import claim_file
from cxr_age.saliency.methods import MapSettings, SaliencyMaps
from cxr_age.saliency.plots import study_figure
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
