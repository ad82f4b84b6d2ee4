"""Prediction throughput and cold start, one run, on the real 1024 x 1024 NIH PNGs of ../shared/nih-sample
(linked to at least --reads files) and on DICOM copies of them, images per second at the run's image size:

  (a) reading one file at a time in a Python loop (`read_image`, what cxr-age-predict did before issue 17);
  (b) the parallel reading path of prediction (`cxr_age.io.reader.read_batches`), no model;
  (c) the raw tf.data training path (`benchmarks/input_pipeline.py`'s figure (c), `make_dataset`);
  (d) the whole predict command (`cxr-age-predict FOLDER --run RUN --csv FILE`, in-process, from loading the
      run to the last row written);
  (e) the same network on the same number of in-memory tensors (loading the run, then compiled batches).

(a) and (b) are also given for the DICOM copies. On a CPU-only machine the network and the decoding share the
cores, so (d) cannot reach (e) however well reading overlaps computing; (d-split) and (e-split) measure that
overlap as a GPU machine would use it, with the network confined to one core (TensorFlow's op pools of one
thread) and reading to one other (`--read-threads 1`), so (d-split) >= 0.9 x (e-split) shows that reading is
hidden behind compute wherever the two do not compete for the same cores.

Cold start: the wall time of a fresh `cxr-age-predict` of one image against a fresh Python that imports Keras
and calls a bare `keras.models.load_model` on the run's file. Each figure is the median of --repeats passes,
each in a fresh process. Targets (issue 17): (b) >= 0.9 x (c) for PNG; (d) >= 0.9 x (e); cold start <= 1.2 x
the bare load.

Without --run, a one-epoch demonstration regressor (DenseNet169, 128 px) is trained first (a few minutes).

    python benchmarks/predict.py [--run RUN] [--images DIR] [--reads 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH = 16


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def loop_reads(folder: Path, size: int) -> float:
    """(a) One file at a time, as the old `prediction._read_all`."""
    from cxr_age.io.decode import read_image

    files = _files(folder)
    start = time.perf_counter()
    for path in files:
        read_image(path, size)
    return len(files) / (time.perf_counter() - start)


def parallel_reads(folder: Path, size: int) -> float:
    """(b) The prediction reader, batches of 16, after a warm-up of two batches, as (c) has."""
    from cxr_age.io.reader import read_batches

    files = _files(folder)
    sum(len(batch.indices) for batch in read_batches(files[:2 * BATCH], size, BATCH))
    start = time.perf_counter()
    count = sum(len(batch.indices) for batch in read_batches(files, size, BATCH))
    return count / (time.perf_counter() - start)


def training_path(folder: Path, size: int) -> float:
    """(c) `benchmarks/input_pipeline.py`'s tf.data figure over the same files."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from input_pipeline import tf_data

    return tf_data([str(path) for path in _files(folder)], size)


def predict_command(folder: Path, run: Path, scratch: Path, read_threads: int | None = None) -> float:
    """(d) The predict command's body in this process (imports done), rows printed to /dev/null."""
    import contextlib

    from cxr_age.cli.predict import main

    out = scratch / f"predictions-{os.getpid()}-{time.monotonic_ns()}.csv"
    count = len(_files(folder))
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        start = time.perf_counter()
        code = main([str(folder), "--run", str(run), "--csv", str(out), "--no-progress", "--batch-size", str(BATCH),
                     *(["--read-threads", str(read_threads)] if read_threads else [])])
        elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"cxr-age-predict exited with {code}")
    return count / elapsed


def in_memory(folder: Path, run: Path) -> float:
    """(e) Load the run, then the compiled network over in-memory tensors, as many as (d) predicts."""
    from cxr_age.age_model import AgeModel
    from cxr_age.io.reader import read_batches

    count = len(_files(folder))
    originals = sorted({path.resolve() for path in _files(folder)})
    start = time.perf_counter()
    model = AgeModel.load(run)
    load_seconds = time.perf_counter() - start
    images = np.concatenate([b.images for b in read_batches(originals, model.image_size, 64)])
    images = np.concatenate([images] * int(np.ceil(count / len(images))))[:count]
    start = time.perf_counter()
    for first in range(0, count, BATCH):
        model.columns(model.outputs(images[first:first + BATCH], compiled=True))
    return count / (time.perf_counter() - start + load_seconds)


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def cold_start(run: Path, image: Path) -> dict[str, float]:
    """Wall seconds of a fresh bare `load_model` and of a fresh one-image `cxr-age-predict`."""
    bare = f"import keras; keras.models.load_model({str(run / 'model.keras')!r})"
    return {"bare_load_model_s": _seconds([sys.executable, "-c", bare]),
            "predict_one_image_s": _seconds([sys.executable, "-m", "cxr_age.cli.predict", str(image), "--run",
                                             str(run), "--no-progress"])}


MEASURES = {
    "a": ("(a) one file at a time (old loop)", lambda args: loop_reads(args.folder, args.size)),
    "b": ("(b) parallel reading path, no model", lambda args: parallel_reads(args.folder, args.size)),
    "c": ("(c) raw tf.data training path", lambda args: training_path(args.folder, args.size)),
    "d": ("(d) whole predict command", lambda args: predict_command(args.folder, args.run, args.scratch)),
    "e": ("(e) same network, in-memory tensors", lambda args: in_memory(args.folder, args.run)),
    "d-split": ("(d-split) (d), network 1 core, reading 1", lambda args: predict_command(args.folder, args.run,
                                                                                            args.scratch, 1)),
    "e-split": ("(e-split) (e), network 1 core", lambda args: in_memory(args.folder, args.run)),
}

DICOM_MEASURES = ("a", "b")


def network_on_one_core() -> None:
    """TensorFlow's intra- and inter-op pools of one thread each: the network computes on one core."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def write_dicom_copy(png: Path, out: Path) -> None:
    """The PNG's pixels as an uncompressed 8-bit MONOCHROME2 digital chest X-ray (DX) file (the tests' writer)."""
    import cv2

    sys.path.insert(0, str(ROOT / "tests"))
    from dicoms import write_dicom

    pixels = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE).astype(np.uint16)
    write_dicom(out, pixels, bits=8, BodyPartExamined="CHEST", ViewPosition="PA")


def link_folder(originals: list[Path], folder: Path, reads: int) -> Path:
    """A folder of at least `reads` symbolic links, cycling through `originals`."""
    folder.mkdir()
    for i in range(int(np.ceil(reads / len(originals))) * len(originals)):
        original = originals[i % len(originals)]
        (folder / f"{i // len(originals):02d}_{original.name}").symlink_to(original)
    return folder


def measure_in_fresh_process(key: str, folder: Path, size: int, run: Path, scratch: Path) -> float:
    command = [sys.executable, __file__, "--measure", key, "--folder", str(folder), "--size", str(size),
               "--run", str(run), "--scratch", str(scratch)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{key} failed:\n{result.stderr[-3000:]}")
    return float(result.stdout.split()[-1])


def demo_run(scratch: Path) -> Path:
    run = scratch / "demo-run"
    print("training a one-epoch demonstration regressor for the benchmark (a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "cxr_age.cli.train", "regress", "--epochs", "1", "--out", str(run),
                    "--quiet"], check=True, capture_output=True)
    return run


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ({', '.join(f'{v:.1f}' for v in values)})"


def _passes(jobs: dict[str, tuple[str, Path]], args: argparse.Namespace, size: int, scratch: Path,
            ) -> dict[str, list[float]]:
    """Every job once per pass, passes alternating, so that a noisy minute spreads over all of them."""
    figures: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, (key, folder) in jobs.items():
            figures[name].append(measure_in_fresh_process(key, folder, size, args.run, scratch))
    return figures


def _ratio(name: str, value: float, target: str, met: bool) -> str:
    return f"{name} = {value:.2f}  (target {target}: {'met' if met else 'NOT met'})"


def _pair(figures: dict[str, list[float]], top: str, bottom: str) -> dict[str, float] | None:
    """top / bottom as the ratio of the medians and as the median of the ratios within each pass (the two
    are measured one after the other, so a pass's ratio sees the same state of a noisy machine)."""
    names = [f"{MEASURES[key][0]} PNG" for key in (top, bottom)]
    if not all(name in figures for name in names):
        return None
    tops, bottoms = (figures[name] for name in names)
    return {"of_medians": statistics.median(tops) / statistics.median(bottoms),
            "per_pass": [t / b for t, b in zip(tops, bottoms)],
            "median_per_pass": statistics.median(t / b for t, b in zip(tops, bottoms))}


def _report(figures: dict[str, list[float]], cold: dict[str, list[float]]) -> dict:
    """Print each figure (median and passes) and the ratios whose figures were measured."""
    for name, values in figures.items():
        print(f"{name:<46} {_median(values)} images/s")
    for key, values in cold.items():
        if values:
            print(f"cold start, {key:<34} {_median(values)} s")
    ratios = {}
    for top, bottom in (("b", "c"), ("d", "e"), ("d-split", "e-split")):
        pair = _pair(figures, top, bottom)
        if pair:
            ratios[f"{top}_over_{bottom}".replace("-", "_")] = pair
            passes = ", ".join(f"{value:.2f}" for value in pair["per_pass"])
            print(_ratio(f"({top}) / ({bottom})", pair["of_medians"], ">= 0.9", pair["of_medians"] >= 0.9)
                  + f"; within each pass {pair['median_per_pass']:.2f} median ({passes})")
    network_over_reading = _pair(figures, "e", "b")
    if network_over_reading:
        ratios["d_over_e_if_cores_shared"] = 1 / (1 + network_over_reading["of_medians"])
        print(f"(d) / (e) if reading and the network share the same cores, each image costing both CPU times: "
              f"{ratios['d_over_e_if_cores_shared']:.2f}")
    if cold["bare_load_model_s"]:
        ratio = statistics.median(cold["predict_one_image_s"]) / statistics.median(cold["bare_load_model_s"])
        ratios["cold_over_bare"] = ratio
        print(_ratio("cold start / bare load", ratio, "<= 1.2", ratio <= 1.2))
    return {"images_per_second": figures, "cold_start_s": cold, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a regress run (default: train a one-epoch demo run first)")
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "nih-sample")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=MEASURES, default=list(MEASURES),
                        help="measure only these figures (all by default; the targets need b, c, d and e, or "
                             "d-split and e-split)")
    parser.add_argument("--no-cold-start", action="store_true", help="leave out the cold-start timing")
    parser.add_argument("--measure", choices=MEASURES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        if args.measure.endswith("-split"):
            network_on_one_core()
        print(MEASURES[args.measure][1](args))
        return
    originals = sorted(args.images.glob("*.png"))
    if not originals:
        raise SystemExit(f"no PNG files in {args.images}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        args.run = args.run or demo_run(scratch)
        size = tomllib.loads((args.run / "config.toml").read_text())["data"]["image_size"]
        (scratch / "dicom").mkdir()
        dicoms = [scratch / "dicom" / f"{png.stem}.dcm" for png in originals]
        for png, dicom in zip(originals, dicoms):
            write_dicom_copy(png, dicom)
        png_folder = link_folder(originals, scratch / "png-links", args.reads)
        dicom_folder = link_folder(dicoms, scratch / "dicom-links", args.reads)
        count = len(_files(png_folder))
        print(f"{len(originals)} PNGs from {args.images} (and DICOM copies), {count} files per pass, {size} px "
              f"(the run's size), run {args.run}, {os.cpu_count()} cores, median of {args.repeats} passes "
              "(passes in brackets), each in a fresh process", flush=True)
        jobs = {f"{MEASURES[key][0]} PNG": (key, png_folder) for key in args.only}
        jobs.update({f"{MEASURES[key][0]} DICOM": (key, dicom_folder) for key in DICOM_MEASURES if key in args.only})
        figures = _passes(jobs, args, size, scratch)
        cold = {"bare_load_model_s": [], "predict_one_image_s": []}
        for _ in range(0 if args.no_cold_start else args.repeats):
            for key, value in cold_start(args.run, originals[0]).items():
                cold[key].append(value)
        print(json.dumps({**_report(figures, cold), "files": count, "size": size}))


if __name__ == "__main__":
    main()
