"""Rebuild `data/sample/` from the 477 full-size NIH PNGs: area-averaged downsampling to 256 px, each file's
bit depth and channels kept (the five RGBA originals stay RGBA), labels copied, and each image's NIH finding
labels added from the shipped v2020 table (for the age-gap analysis by finding).

    python data/make_sample.py ../shared/nih-sample data/sample
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import pandas as pd

SIZE = 256
NIH_TABLE = Path(__file__).resolve().parent / "Data_Entry_2017_v2020.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    labels = pd.read_csv(args.source / "labels.csv")
    (args.target / "images").mkdir(parents=True, exist_ok=True)
    for name in labels["image"]:
        image = cv2.imread(str(args.source / name), cv2.IMREAD_UNCHANGED)
        small = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(args.target / "images" / name), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    findings = pd.read_csv(NIH_TABLE, usecols=["Image Index", "Finding Labels"])
    findings.columns = ["image", "findings"]
    labels = labels.merge(findings, on="image", how="left", validate="one_to_one")
    labels[["image", "age", "sex", "view", "patient_id", "findings"]].to_csv(args.target / "labels.csv", index=False)


if __name__ == "__main__":
    main()
