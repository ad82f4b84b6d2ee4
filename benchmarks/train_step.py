"""Training throughput at --image-size px: the same compiled DenseNet fed from in-memory tensors against
fed by our pipeline from a prepared store (cxr_age.io.pipeline.make_dataset over `cxr-age-data prepare`
shards). Target (issue 5): the pipeline costs at most 5%.

Images: the embedded sample (477 NIH images). After one warm-up pass each (graph tracing), the two feeds
alternate for --repeats timed passes of --steps steps; the figure per feed is the median images/s.

    python benchmarks/train_step.py [--backbone densenet121] [--image-size 128] [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from cxr_age.config import DataConfig, TrainConfig
from cxr_age.io.feed import Feed
from cxr_age.io.pipeline import make_dataset
from cxr_age.io.selection import select
from cxr_age.io.store import PreparedStore
from cxr_age.io.store_writer import prepare_store
from cxr_age.nets.densenet import NetworkOptions, build_model
from cxr_age.tasks import REGRESS

BATCH = 16


def timed_fit(model, data, steps: int) -> float:
    """Images per second of `steps` training steps fed by `data` (a repeating dataset)."""
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="densenet121", choices=("densenet121", "densenet169", "densenet201"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size = args.image_size
    frame = select(DataConfig(image_size=size)).frame
    frame = frame.iloc[:len(frame) // BATCH * BATCH]  # whole batches only, so both feeds give the same steps
    with tempfile.TemporaryDirectory() as scratch:
        prepare_store(frame, size, Path(scratch) / "store", progress=False)
        store = PreparedStore(Path(scratch) / "store")
        targets = frame["age"].to_numpy(np.float32) / 90.0  # the pipeline's target shape, so no retrace
        images = tf.constant(store.read(store.ids(frame["path"])).astype(np.float32)[..., None] / 255.0)
        feeds = {
            "in-memory tensors": tf.data.Dataset.from_tensor_slices((images, targets)).shuffle(len(frame), seed=0)
            .batch(BATCH).repeat().prefetch(tf.data.AUTOTUNE),
            "pipeline from the prepared store": make_dataset(frame, targets, size, BATCH, Feed(shuffle=True),
                                                             store).repeat(),
        }
        model = build_model(REGRESS.head, args.backbone, size, options=NetworkOptions(bn_momentum=0.9))
        REGRESS.compile(model, TrainConfig(task="regress", backbone=args.backbone, loss="mse"))
        for data in feeds.values():
            timed_fit(model, data, 2)
        passes: dict[str, list[float]] = {name: [] for name in feeds}
        for _ in range(args.repeats):
            for name, data in feeds.items():
                passes[name].append(timed_fit(model, data, args.steps))
        print(f"{args.backbone}, {size} px, batch {BATCH}, {args.steps} steps per pass, median of {args.repeats} "
              f"alternating passes, {len(frame)} sample images")
        figures = {name: statistics.median(values) for name, values in passes.items()}
        for name, value in figures.items():
            print(f"{name:<34} {value:8.1f} images/s  (passes: {', '.join(f'{v:.1f}' for v in passes[name])})")
        memory, pipeline = figures.values()
        cost = 1 - pipeline / memory
        verdict = "met" if cost <= 0.05 else "NOT met"
        print(f"pipeline cost: {100 * cost:+.1f}% of the in-memory rate (target <= 5%: {verdict})")


if __name__ == "__main__":
    main()
