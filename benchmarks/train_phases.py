"""Where a training run's time goes, phase by phase: start-up and data checks, tracing the training step,
each epoch (with its validation pass), and the evaluation (prediction, then metrics, uncertainty and
figures). Runs the real `cxr_age.train` of a config (default: the demo, what `cxr-age-train regress` runs on
the embedded sample) into a scratch folder.

    python benchmarks/train_phases.py [--task regress] [--config demo] [--repeats 1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path


def _timed(totals: dict[str, float], name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def one_run(task: str, config: str, folder: Path) -> dict[str, float]:
    """The phases of one training run, in seconds."""
    import keras

    import cxr_age.workflows.evaluation as evaluation
    import cxr_age.workflows.training as training
    from cxr_age.config import Experiment

    start = time.perf_counter()
    totals: dict[str, float] = {}
    marks: dict[str, float] = {}
    evaluation.predict_split = _timed(totals, "evaluate: predict", evaluation.predict_split)
    training.evaluate = _timed(totals, "evaluate", training.evaluate)
    training.prepare_data = _timed(totals, "select, check, split", training.prepare_data)

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks["fit"] = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            marks.setdefault("first step", time.perf_counter())

        def on_epoch_begin(self, epoch, logs=None):
            marks[f"epoch {epoch}"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            totals[f"epoch {epoch + 1}"] = time.perf_counter() - marks[f"epoch {epoch}"]

    training.train(Experiment.load(config, task=task), folder, callbacks=[Clock()])
    totals["start-up before fit"] = marks["fit"] - start
    totals["trace and first step"] = marks["first step"] - marks["fit"]
    totals["evaluate: metrics, uncertainty, figures"] = totals["evaluate"] - totals["evaluate: predict"]
    totals["total"] = time.perf_counter() - start
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="regress", choices=("regress", "classify"))
    parser.add_argument("--config", default="demo")
    parser.add_argument("--repeats", type=int, default=1, help="runs, each in this process (traced anew)")
    args = parser.parse_args()
    runs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as scratch:
            runs.append(one_run(args.task, args.config, Path(scratch) / f"run{repeat}"))
    print(f"{args.task} {args.config}: seconds per phase, median of {len(runs)} (each run)")
    for name in runs[0]:
        values = [run[name] for run in runs]
        print(f"  {name:<40} {statistics.median(values):7.1f}  ({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
