"""The embedded demo sample: complete, faithful to the NIH originals, and small."""

import cv2
import numpy as np
import pandas as pd
from helpers import FULL_SIZE, NIH_2020, RGBA_IMAGES

from cxr_age.paths import data_dir, sample_csv, sample_image_dir


def test_sample_matches_its_labels_and_the_originals():
    labels = pd.read_csv(sample_csv())
    original = pd.read_csv(FULL_SIZE / "labels.csv")
    assert len(labels) == 477 and labels["patient_id"].is_unique
    pd.testing.assert_frame_equal(labels.drop(columns="findings"), original[labels.columns.drop("findings")])
    nih = pd.read_csv(NIH_2020, usecols=["Image Index", "Finding Labels"]).set_index("Image Index")
    assert labels["findings"].tolist() == nih.loc[labels["image"], "Finding Labels"].tolist()
    assert sorted(p.name for p in sample_image_dir().iterdir()) == sorted(labels["image"])


def test_sample_images_are_downsampled_originals():
    for name in ["00000075_000.png", RGBA_IMAGES[0] + ".png"]:
        small = cv2.imread(str(sample_image_dir() / name), cv2.IMREAD_UNCHANGED)
        full = cv2.imread(str(FULL_SIZE / name), cv2.IMREAD_UNCHANGED)
        assert small.shape[:2] == (256, 256) and small.shape[2:] == full.shape[2:]
        expected = cv2.resize(full, (256, 256), interpolation=cv2.INTER_AREA)
        assert np.abs(small.astype(int) - expected).max() <= 1


def test_sample_keeps_the_rgba_files():
    channels = {name: cv2.imread(str(sample_image_dir() / f"{name}.png"), cv2.IMREAD_UNCHANGED).shape
                for name in RGBA_IMAGES}
    assert all(shape == (256, 256, 4) for shape in channels.values())


def test_data_folder_stays_small():
    size = sum(p.stat().st_size for p in data_dir().rglob("*") if p.is_file())
    assert size < 30e6
