"""The two engines side by side, in one run: a run exported as a bundle with its ONNX network, then
`cxr-age-predict` over a folder (images/s, the network warm) and of one image in a fresh process (cold
start, imports and model loading included), Keras engine against ONNX engine, passes alternated.

    python benchmarks/engines.py --run RUN [--images 477] [--repeats 3]

Default images: the embedded sample's 477 real NIH PNGs (256 px).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("keras", "onnx")


def folder_rate(bundle: Path, engine: str, folder: Path, images: int) -> float:
    """Images/s of `cxr-age-predict FOLDER` in this process's child, minus its start-up (one image first)."""
    command = [sys.executable, "-m", "cxr_age", "predict", "--model", str(bundle), "--engine", engine,
               "--no-progress", "--quiet", "--batch-size", "32"]
    one = next(folder.iterdir())
    start = time.perf_counter()
    subprocess.run([*command, str(one)], check=True, capture_output=True)
    single = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([*command, str(folder)], check=True, capture_output=True)
    return (images - 1) / max(time.perf_counter() - start - single, 1e-9)


def cold_start(bundle: Path, engine: str, image: Path) -> float:
    """Seconds for one image in a fresh process: imports, model loading, reading, predicting."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cxr_age", "predict", str(image), "--model", str(bundle), "--engine",
                    engine, "--no-progress", "--quiet"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished, evaluated run")
    parser.add_argument("--images", type=int, default=477)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from cxr_age.bundle.export import export_bundle
    from cxr_age.paths import sample_image_dir

    with tempfile.TemporaryDirectory() as scratch:
        bundle = export_bundle(args.run, Path(scratch) / "bundle", onnx=True)
        folder = Path(scratch) / "images"
        folder.mkdir()
        sources = sorted(sample_image_dir().glob("*.png"))
        for i in range(args.images):
            (folder / f"{i:05d}.png").symlink_to(sources[i % len(sources)])
        rates = {engine: [] for engine in ENGINES}
        colds = {engine: [] for engine in ENGINES}
        for _ in range(args.repeats):
            for engine in ENGINES:
                rates[engine].append(folder_rate(bundle, engine, folder, args.images))
                colds[engine].append(cold_start(bundle, engine, sources[0]))
    print(f"{args.images} images, {args.repeats} passes alternated; medians (passes)")
    for engine in ENGINES:
        print(f"  {engine:>5}: folder {statistics.median(rates[engine]):7.1f} images/s "
              f"({', '.join(f'{r:.1f}' for r in rates[engine])}); one image cold "
              f"{statistics.median(colds[engine]):5.1f} s ({', '.join(f'{c:.1f}' for c in colds[engine])})")
    per_pass = [o / k for o, k in zip(rates["onnx"], rates["keras"])]
    print(f"  onnx / keras images/s: {statistics.median(rates['onnx']) / statistics.median(rates['keras']):.2f} "
          f"on the medians, per pass {', '.join(f'{r:.2f}' for r in per_pass)}")
    print(f"  keras / onnx cold start: {statistics.median(colds['keras']) / statistics.median(colds['onnx']):.2f}")


if __name__ == "__main__":
    main()
