"""Training images/s of the paper's networks on Keras's JAX backend, for a machine that has JAX but no TensorFlow
(the GPU machines lent to this project): the DenseNet169 regressor and the DenseNet201 classifier of
`cxr_age.nets.densenet`, compiled as `cxr-age-train` compiles them, at --sizes px, in float32 and under the
mixed-precision policy `--mixed-precision` picks for the chip (`mixed_bfloat16` on GPUs of compute capability
8.0 and up, else `mixed_float16`; `cxr_age.nets.precision`). Only Keras, NumPy and pandas/scikit-learn (for
`cxr_age.tasks`) are needed: no TensorFlow.

Each figure is the median images/s of --repeats timed passes of --steps steps after a warm-up, on random
in-memory images (the pipeline is not measured here); the first step's seconds (XLA compilation, or its loading
from the persistent compilation cache, `cxr_age.nets.compile_cache`) are reported apart. A training rate is
also the rate at which the input must deliver images to keep the device busy; the last column gives it as the
CPU cores it would take at a per-core decode rate (--png-per-core, default: this project's measured raw PNG
path, docs/benchmarks.md) and says whether a prepared store's rate (--store-rate) covers it.

    KERAS_BACKEND=jax python benchmarks/gpu_step.py [--sizes 256 512] [--batch-size 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAPER_NETWORKS = (("regress", "densenet169", "mse"), ("classify", "densenet201", "crossentropy"))


def _batch(task: str, size: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, size, size, 1), dtype=np.float32)
    if task == "regress":
        return images, rng.random((batch_size, 1), dtype=np.float32)
    return images, np.eye(9, dtype=np.float32)[rng.integers(0, 9, batch_size)]


def images_per_second(task: str, backbone: str, loss: str, size: int, policy: str, args: argparse.Namespace,
                      ) -> tuple[float, list[float]]:
    """Seconds to compile the training step (its first call), and timed passes of `args.steps` steps, of
    one network under a dtype policy."""
    import keras

    from cxr_age.nets.densenet import NetworkOptions, build_model
    from cxr_age.settings import TrainConfig
    from cxr_age.tasks import get_task

    keras.utils.clear_session()
    model = build_model(get_task(task).head, backbone, size, options=NetworkOptions(policy=policy))
    get_task(task).compile(model, TrainConfig(task=task, backbone=backbone, loss=loss, jit_compile=True))
    x, y = _batch(task, size, args.batch_size, seed=size)
    start = time.perf_counter()
    model.train_on_batch(x, y)  # traces and compiles the step, or loads it from the compilation cache
    compile_seconds = time.perf_counter() - start
    model.train_on_batch(x, y)
    passes = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)  # returns host numbers: each step is waited for
        passes.append(args.steps * args.batch_size / (time.perf_counter() - start))
    return compile_seconds, passes


def _feeds(rate: float, args: argparse.Namespace) -> str:
    cores = rate / args.png_per_core
    store = "covers it" if args.store_rate >= rate else "does NOT cover it"
    return f"{cores:.1f} cores of PNG decode; a store at {args.store_rate:,.0f}/s {store}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--networks", nargs="+", default=["regress", "classify"], choices=("regress", "classify"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--png-per-core", type=float, default=104.0,
                        help="raw PNG path images/s per CPU core (default: 207.9/2, docs/benchmarks.md, 256 px)")
    parser.add_argument("--store-rate", type=float, default=18771.0,
                        help="prepared store images/s (default: docs/benchmarks.md, 2 cores)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--cache", type=Path,
                        help="XLA's compilation cache folder (default: the user's cache, ~/.cache/cxr-age/xla)")
    args = parser.parse_args()
    import keras

    from cxr_age.nets.compile_cache import enable_compile_cache
    from cxr_age.nets.precision import gpu_capability, mixed_policy

    cache = enable_compile_cache(args.cache)
    mixed = mixed_policy(gpu_capability())
    devices = [str(device) for device in __import__("jax").devices()] if keras.backend.backend() == "jax" else []
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, devices {devices or 'default'}, "
          f"batch {args.batch_size}, {args.steps} steps x {args.repeats} passes after a warm-up; compilation cache "
          f"{cache or 'none (not JAX)'}", flush=True)
    rows = []
    for task, backbone, loss in (net for net in PAPER_NETWORKS if net[0] in args.networks):
        for size in args.sizes:
            for policy in ("float32", mixed):
                compile_seconds, passes = images_per_second(task, backbone, loss, size, policy, args)
                rate = statistics.median(passes)
                ratio = f", {rate / rows[-1]['images_per_second']:.2f} x float32" if policy != "float32" else ""
                rows.append({"task": task, "backbone": backbone, "size": size, "policy": policy,
                             "compile_seconds": compile_seconds, "images_per_second": rate, "passes": passes})
                print(f"{backbone:<12} {task:<9} {size:4d} px {policy:<14} compiled in {compile_seconds:6.1f} s, "
                      f"{rate:9.1f} images/s "
                      f"({', '.join(f'{p:.1f}' for p in passes)}{ratio}); to feed it: {_feeds(rate, args)}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps({"backend": keras.backend.backend(), "devices": devices,
                                         "tensorflow_imported": "tensorflow" in sys.modules,
                                         "cache": str(cache) if cache else None,
                                         "environment": {"KERAS_BACKEND": os.environ.get("KERAS_BACKEND")},
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
