"""Instances per minute through a real Orthanc against `cxr-age-predict` on the same files, in one run: N of the
embedded sample's NIH images written as 12-bit DX For Presentation files and uploaded to an Orthanc with its
DICOMweb plugin (started here, authentication on), then, passes alternated, `cxr-age-pacs URL --store-sr` with
a fresh ledger (QIDO-RS, WADO-RS metadata and instance, prediction, SR, STOW-RS) and `cxr-age-predict FOLDER`
(reading the files from disk), each a fresh process timed from start to end.

    python benchmarks/pacs_throughput.py --run RUN [--images 100] [--repeats 3]

Needs Debian's orthanc and orthanc-dicomweb and the pacs extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pydicom.uid import generate_uid

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from dicoms import chest_instance  # noqa: E402
from orthanc_server import PASSWORD, USER, OrthancServer  # noqa: E402


def write_instances(folder: Path, count: int) -> list[Path]:
    from cxr_age.paths import sample_image_dir

    folder.mkdir(parents=True)
    sources = sorted(sample_image_dir().glob("*.png"))
    study, series = generate_uid(), generate_uid()
    return [chest_instance(folder / f"{i:05d}.dcm", cv2.imread(str(sources[i % len(sources)]), cv2.IMREAD_GRAYSCALE)
                           .astype(np.float64) / 255, study, series) for i in range(count)]


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished regress run or bundle")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "CXR_AGE_DICOMWEB_USER": USER, "CXR_AGE_DICOMWEB_PASSWORD": PASSWORD}
    with tempfile.TemporaryDirectory() as scratch:
        files = write_instances(Path(scratch) / "dicom", args.images)
        server = OrthancServer(Path(scratch) / "orthanc")
        server.start()
        try:
            for path in files:
                server.upload(path)
            rates: dict[str, list[float]] = {"cxr-age-pacs": [], "cxr-age-predict": []}
            base = [sys.executable, "-m", "cxr_age"]
            for repeat in range(args.repeats):
                pull = [*base, "pacs", server.dicomweb, "--model", args.run, "--store-sr", "--no-progress", "--quiet",
                        "--csv", str(Path(scratch) / f"ledger{repeat}.csv")]
                predict = [*base, "predict", str(Path(scratch) / "dicom"), "--model", args.run, "--no-progress",
                           "--quiet"]
                rates["cxr-age-pacs"].append(args.images / timed(pull, env) * 60)
                rates["cxr-age-predict"].append(args.images / timed(predict, env) * 60)
        finally:
            server.stop()
    for name, values in rates.items():
        print(f"{name}: median {statistics.median(values):.0f} instances/min (runs: "
              f"{', '.join(f'{v:.0f}' for v in values)})")
    ratio = [p / q for p, q in zip(rates["cxr-age-pacs"], rates["cxr-age-predict"])]
    print(f"pull / predict: median {statistics.median(ratio):.2f} (runs: {', '.join(f'{r:.2f}' for r in ratio)})")


if __name__ == "__main__":
    main()
