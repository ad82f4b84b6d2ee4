"""Synthetic chest-like phantoms with a known answer: a random body outline, two darker lungs of random size
and position, smooth texture and pixel noise, and age written into one small fixed patch only (its
brightness grows with age). A model that learns the age must look at that patch, so a saliency method can be
scored against the patch's ground-truth region."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxr_age.stats.age_gap import FINDINGS as FINDING_LABELS

SIZE = 64
# Rows and columns of the age patch (8 x 8 px) and of the ground-truth region around it (16 x 16 px, 6.25%).
PATCH = (slice(17, 25), slice(35, 43))
REGION = (slice(13, 29), slice(31, 47))


def region_mask(size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[REGION] = True
    return mask


def phantom(age: float, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One phantom in [0, 1]: everything random except the patch, whose brightness is 0.6 * age / 90."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.25 + 0.3 * cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), 3)
    image += 0.25 * ((((xx - 0.5) / 0.45) ** 2 + ((yy - 0.55) / 0.55) ** 2) < 1)
    for centre in (0.3, 0.7):
        width, height = 0.15 + rng.normal(0, 0.01), 0.28 + rng.normal(0, 0.02)
        lung = ((xx - centre - rng.normal(0, 0.02)) / width) ** 2 + ((yy - 0.5) / height) ** 2 < 1
        image -= 0.2 * lung
    image += rng.normal(0, 0.04, (size, size))
    image[PATCH] += 0.6 * age / 90
    return image.clip(0, 1)


def metadata_columns(n: int, seed: int) -> dict[str, list[str]]:
    """NIH-style sex, view and finding labels unrelated to the image (own generator: the images stay the same)."""
    rng = np.random.default_rng(seed + 1000)
    findings = [label for label in FINDING_LABELS if label != "No Finding"]
    labels = [("|".join(rng.choice(findings, size=rng.integers(1, 3), replace=False)) if rng.random() < 0.6
               else "No Finding") for _ in range(n)]
    return {"sex": rng.choice(["M", "F"], n).tolist(), "view": rng.choice(["PA", "AP"], n).tolist(), "findings": labels}


def write_phantoms(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` phantom PNGs of uniform random ages (2-88 years, one patient each) and their `labels.csv`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ages = rng.uniform(2, 88, n).round(1)
    names = [f"phantom{i:04d}.png" for i in range(n)]
    for name, age in zip(names, ages):
        cv2.imwrite(str(folder / name), (phantom(age, rng) * 255).round().astype(np.uint8))
    table = pd.DataFrame({"image": names, "age": ages, "patient_id": [f"p{i}" for i in range(n)],
                          **metadata_columns(n, seed)})
    table.to_csv(folder.parent / "labels.csv", index=False)
    return folder.parent / "labels.csv"
