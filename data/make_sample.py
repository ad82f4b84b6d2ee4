"""Rebuild `data/sample/` from the 477 full-size NIH PNGs: area-averaged downsampling to 256 px, each file's
bit depth and channels kept (the five RGBA originals stay RGBA), labels copied.

    python data/make_sample.py ../shared/nih-sample data/sample
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import pandas as pd

SIZE = 256


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
    labels[["image", "age", "sex", "view", "patient_id"]].to_csv(args.target / "labels.csv", index=False)


if __name__ == "__main__":
    main()
