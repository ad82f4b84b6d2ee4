"""Saliency throughput and memory: vanilla-gradient maps (tf-keras-vis Saliency through
cxr_age.saliency.methods.SaliencyMaps) of a DenseNet classifier at --image-size px, computed a batch at a time
against one image at a time, and the peak resident memory of a fresh process that averages the maps of N and
of 4N images with the running mean the saliency command uses (which must not grow with N).

Images: the embedded sample (477 NIH images). The network's weights are random: speed and memory do not
depend on them. Throughput is the median of --repeats passes after a warm-up.

    python benchmarks/saliency.py [--backbone densenet121] [--image-size 128] [--images 64] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np
from sample import sample_arrays

MEMORY_CHECK = """
import resource, sys
import numpy as np
from cxr_age.config import DataConfig
from cxr_age.io.pipeline import make_dataset
from cxr_age.io.selection import select
from cxr_age.nets.densenet import build_model
from cxr_age.saliency.average import RunningMean
from cxr_age.saliency.methods import MapSettings, SaliencyMaps
from cxr_age.tasks import CLASSIFY
backbone, size, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
frame = select(DataConfig(image_size=size)).frame
frame = frame.iloc[np.arange(n) % len(frame)].reset_index(drop=True)
maps = SaliencyMaps(build_model(CLASSIFY.head, backbone, size), CLASSIFY, MapSettings("saliency"))
mean = RunningMean()
for images, _ in make_dataset(frame, CLASSIFY.targets(frame), size, batch):
    mean.add(maps(images, np.zeros(len(images), dtype=int)))
print(mean.count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def rate(maps, images: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        part = images[first:first + batch]
        maps(part, np.zeros(len(part), dtype=int))
    return len(images) / (time.perf_counter() - start)


def peak_memory(args: argparse.Namespace, count: int) -> float:
    command = [sys.executable, "-c", MEMORY_CHECK, args.backbone, str(args.image_size), str(count), str(args.batch)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="densenet121", choices=("densenet121", "densenet169", "densenet201"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=64, help="N: images per pass and for the memory check")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from cxr_age.nets.densenet import build_model
    from cxr_age.saliency.methods import MapSettings, SaliencyMaps
    from cxr_age.tasks import CLASSIFY

    images, _ = sample_arrays(args.image_size, args.images)
    maps = SaliencyMaps(build_model(CLASSIFY.head, args.backbone, args.image_size), CLASSIFY, MapSettings("saliency"))
    rate(maps, images[:args.batch], args.batch)
    rate(maps, images[:2], 1)
    figures = {}
    for name, batch in ((f"batches of {args.batch}", args.batch), ("one image at a time", 1)):
        passes = [rate(maps, images, batch) for _ in range(args.repeats)]
        figures[name] = statistics.median(passes)
        print(f"{name:<22} {figures[name]:7.1f} maps/s  (passes: {', '.join(f'{p:.1f}' for p in passes)})")
    batched, single = figures.values()
    print(f"batched / one at a time = {batched / single:.2f}  ({args.backbone}, {args.image_size} px, {len(images)} "
          f"sample images, median of {args.repeats})")
    memory = {count: peak_memory(args, count) for count in (args.images, 4 * args.images)}
    for count, mib in memory.items():
        print(f"peak resident memory averaging the maps of {count} images: {mib:.0f} MiB")
    print(f"4N / N peak memory = {memory[4 * args.images] / memory[args.images]:.2f}")


if __name__ == "__main__":
    main()
