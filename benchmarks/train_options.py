"""Training throughput of the device options against the float32 one-device baseline, in one run: images/s
of the same DenseNet regressor step with `--mixed-precision`, `--jit-compile` and `--strategy mirrored`
(every GPU of the machine, or its logical CPU devices when it has none), and each one's ratio to the baseline.
Mirrored keeps --batch images per replica, so its global batch grows with the replicas; its scaling
efficiency is the ratio divided by the replicas. Made for a GPU machine; on a CPU the figures say little.

Images: the embedded sample (477 NIH images) decoded once into memory, so that only the step is timed.
After a warm-up (tracing, and XLA's compilation) each option gets --repeats passes of --steps steps, the
options alternating; the figure per option is the median images/s.

    python benchmarks/train_options.py [--backbone densenet169] [--image-size 256] [--batch 16] [--steps 20]
                                       [--repeats 3] [--options baseline mixed-precision jit-compile mirrored]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf
from sample import sample_arrays

from cxr_age.config import TrainConfig
from cxr_age.nets.densenet import NetworkOptions, build_model
from cxr_age.nets.distribute import make_strategy
from cxr_age.tasks import REGRESS

OPTIONS = {
    "baseline": {},
    "mixed-precision": {"mixed_precision": True},
    "jit-compile": {"jit_compile": True},
    "mirrored": {"strategy": "mirrored"},
}


class Option:
    """One option's compiled model and its repeating in-memory feed at its global batch."""

    def __init__(self, name: str, args: argparse.Namespace, images: np.ndarray, targets: np.ndarray) -> None:
        settings = TrainConfig(task="regress", backbone=args.backbone, loss="mse", **OPTIONS[name])
        strategy = make_strategy(settings.strategy)
        self.replicas = strategy.num_replicas_in_sync
        self.batch = args.batch * self.replicas
        self.data = (tf.data.Dataset.from_tensor_slices((images, targets)).repeat().batch(self.batch)
                     .prefetch(tf.data.AUTOTUNE))
        with strategy.scope():
            options = NetworkOptions(0.9, bool(settings.mixed_precision), synchronized_bn=self.replicas > 1)
            self.model = build_model(REGRESS.head, args.backbone, args.image_size, options=options)
            REGRESS.compile(self.model, settings)

    def images_per_second(self, steps: int) -> float:
        start = time.perf_counter()
        self.model.fit(self.data, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
        return steps * self.batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="densenet169", choices=("densenet121", "densenet169", "densenet201"))
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16, help="images per replica and step")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--options", nargs="+", choices=tuple(OPTIONS), default=list(OPTIONS))
    args = parser.parse_args()
    names = ["baseline"] + [name for name in args.options if name != "baseline"]
    images, targets = sample_arrays(args.image_size)
    options = {name: Option(name, args, images, targets) for name in names}
    for option in options.values():
        option.images_per_second(2)
    passes: dict[str, list[float]] = {name: [] for name in options}
    for _ in range(args.repeats):
        for name, option in options.items():
            passes[name].append(option.images_per_second(args.steps))
    devices = ", ".join(d.name.split("device:")[-1] for d in tf.config.list_logical_devices() if "CPU" not in d.name)
    print(f"{args.backbone}, {args.image_size} px, {args.batch} images per replica, {args.steps} steps per pass, "
          f"median of {args.repeats} alternating passes; accelerators: {devices or 'none'}")
    baseline = statistics.median(passes["baseline"])
    for name, option in options.items():
        value = statistics.median(passes[name])
        scaling = f", {value / baseline / option.replicas:.2f} per replica" if option.replicas > 1 else ""
        print(f"{name:<16} {option.replicas} replica(s), batch {option.batch:>4}: {value:8.1f} images/s  "
              f"x{value / baseline:.2f}{scaling}  (passes: {', '.join(f'{v:.1f}' for v in passes[name])})")


if __name__ == "__main__":
    main()
