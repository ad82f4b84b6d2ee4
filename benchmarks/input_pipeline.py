"""Input pipeline throughput, one run, on the real 1024 x 1024 NIH PNGs of ../shared/nih-sample (each read
several times, to at least --reads reads), images per second to --image-size px:

  (a) the usual hand-written Keras loader: a keras.utils.PyDataset reading with OpenCV, one worker;
  (b) the machine's limit: OpenCV decode and area resize in one process per core, no framework;
  (c) our raw tf.data path (cxr_age.io.pipeline.make_dataset on the PNG files);
  (d) our prepared store (make_dataset reading `cxr-age-data prepare` shards).

Each figure is the median of --repeats timed passes, each in a fresh process (after a warm-up there).
Targets (issue 5): (c) >= 0.9 x (b) and
(d) >= 20 x (a). Peak resident memory of (d) is measured in a fresh process reading a store of the sample
and one four times as large (symbolic links to the same files), which must be about equal.

    python benchmarks/input_pipeline.py [--images DIR] [--reads 2000] [--image-size 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32


def _opencv_image(path: str, size: int) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def keras_pydataset(paths: list[str], size: int) -> float:
    """(a) One worker: a PyDataset whose __getitem__ decodes and resizes a batch with OpenCV."""
    import keras

    class OpenCVDataset(keras.utils.PyDataset):
        def __len__(self) -> int:
            return int(np.ceil(len(paths) / BATCH))

        def __getitem__(self, index: int) -> np.ndarray:
            batch = paths[index * BATCH:(index + 1) * BATCH]
            return np.stack([_opencv_image(path, size) for path in batch]).astype(np.float32)[..., None] / 255.0

    data = OpenCVDataset(workers=1, use_multiprocessing=False)
    start = time.perf_counter()
    count = sum(len(data[i]) for i in range(len(data)))
    return count / (time.perf_counter() - start)


def _opencv_worker(job: tuple[str, int]) -> int:
    return _opencv_image(*job).size


def opencv_processes(paths: list[str], size: int) -> float:
    """(b) One OpenCV process per core, decode and area resize, results sent back to the parent."""
    with multiprocessing.Pool(os.cpu_count()) as pool:
        pool.map(_opencv_worker, [(paths[0], size)] * os.cpu_count())
        start = time.perf_counter()
        count = sum(1 for _ in pool.imap_unordered(_opencv_worker, [(p, size) for p in paths], chunksize=8))
        return count / (time.perf_counter() - start)


def _frame(paths: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"path": paths, "age": 50.0, "group": 4})


def _iterate(data) -> int:
    return sum(int(images.shape[0]) for images, _ in data)


def tf_data(paths: list[str], size: int, store=None) -> float:
    """(c) / (d): make_dataset over the files, or over a prepared store."""
    from cxr_age.io.pipeline import make_dataset
    from cxr_age.tasks import REGRESS

    warm, frame = _frame(paths[:BATCH * 2]), _frame(paths)
    _iterate(make_dataset(warm, REGRESS.targets(warm), size, BATCH, store=store))
    data = make_dataset(frame, REGRESS.targets(frame), size, BATCH, store=store)
    start = time.perf_counter()
    count = _iterate(data)
    return count / (time.perf_counter() - start)


def _store(paths: list[str], size: int, folder: Path):
    from cxr_age.io.store import PreparedStore
    from cxr_age.io.store_writer import prepare_store

    prepare_store(_frame(paths), size, folder, progress=False)
    return PreparedStore(folder)


def peak_memory_of_store_read(folder: Path, paths_file: Path, size: int) -> float:
    """Peak resident memory (MiB) of a fresh process that reads every image of a store once."""
    code = (
        "import resource, sys, pandas as pd\n"
        "from pathlib import Path\n"
        "from cxr_age.io.store import PreparedStore\n"
        "from cxr_age.io.pipeline import make_dataset\n"
        "from cxr_age.tasks import REGRESS\n"
        f"paths = Path({str(paths_file)!r}).read_text().splitlines()\n"
        f"store = PreparedStore(Path({str(folder)!r}))\n"
        "frame = pd.DataFrame({'path': paths, 'age': 50.0, 'group': 4})\n"
        f"data = make_dataset(frame, REGRESS.targets(frame), {size}, {BATCH}, store=store)\n"
        "n = sum(int(x.shape[0]) for x, _ in data)\n"
        "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(output.split()[-1])


MEASURES = {
    "a": ("(a) keras PyDataset + OpenCV, 1 worker", lambda paths, size, store: keras_pydataset(paths, size)),
    "b": ("(b) OpenCV, one process per core", lambda paths, size, store: opencv_processes(paths, size)),
    "c": ("(c) cxr-age tf.data from PNG", lambda paths, size, store: tf_data(paths, size)),
    "d": ("(d) cxr-age prepared store", lambda paths, size, store: tf_data(paths, size, _open(store))),
}


def _open(folder: str):
    from cxr_age.io.store import PreparedStore

    return PreparedStore(Path(folder))


def measure_in_fresh_process(key: str, args: argparse.Namespace, store: Path) -> float:
    """One timed pass of a method in its own process, so that no method inherits another's threads."""
    command = [sys.executable, __file__, "--measure", key, "--images", str(args.images), "--reads", str(args.reads),
               "--image-size", str(args.image_size), "--store", str(store)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "nih-sample")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", choices=MEASURES, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    originals = sorted(str(p) for p in args.images.glob("*.png"))
    paths = originals * int(np.ceil(args.reads / len(originals)))
    size = args.image_size
    if args.measure:
        print(MEASURES[args.measure][1](paths, size, args.store))
        return
    print(f"{len(originals)} PNGs from {args.images}, {len(paths)} reads per pass, {size} px, "
          f"{os.cpu_count()} cores, median of {args.repeats} passes, each in a fresh process")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        _store(originals, size, scratch / "store1x")
        figures = {}
        for key, (name, _) in MEASURES.items():
            figures[name] = statistics.median(measure_in_fresh_process(key, args, scratch / "store1x")
                                              for _ in range(args.repeats))
            print(f"{name:<42} {figures[name]:10.1f} images/s")
        a, b, c, d = figures.values()
        print(f"(c) / (b) = {c / b:.2f}  (target >= 0.9: {'met' if c / b >= 0.9 else 'NOT met'})")
        print(f"(d) / (a) = {d / a:.1f}  (target >= 20: {'met' if d / a >= 20 else 'NOT met'})")
        links = scratch / "links"
        links.mkdir()
        copies = []
        for copy in range(4):
            for original in originals:
                link = links / f"{copy}_{Path(original).name}"
                link.symlink_to(original)
                copies.append(str(link))
        _store(copies, size, scratch / "store4x")
        memory = {}
        for label, folder, listed in (("1x", scratch / "store1x", originals), ("4x", scratch / "store4x", copies)):
            listing = scratch / f"{label}.txt"
            listing.write_text("\n".join(listed))
            memory[label] = peak_memory_of_store_read(folder, listing, size)
            print(f"(d) peak resident memory reading the {label} store ({len(listed)} images): {memory[label]:.0f} MiB")
        print(f"4x / 1x peak memory = {memory['4x'] / memory['1x']:.2f}")
        print(json.dumps({"images_per_second": figures, "peak_mib": memory, "reads": len(paths), "size": size}))


if __name__ == "__main__":
    main()
