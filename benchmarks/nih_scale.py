"""The whole tool at NIH size, without the NIH images: a tree of files named as in the NIH table (symbolic
links to the 477 real sample PNGs of ../shared/nih-sample, so every decode is real) for the first --fractions
of the table's patients (1/16, 1/4 and all: 112,120 images of 30,805 patients), and each step run as a user
runs it, in a fresh process, timed, with its peak resident memory:

  stats, split, check, prepare (64 px)      the `cxr-age-data` commands on the table and tree;
  evaluate regress / classify               `cxr-age-evaluate RUN` (+ `--age-gap` for the regressor) of runs
                                            made from that split and a DenseNet121 at 64 px with random
                                            weights: every val and test image predicted (from the prepared
                                            store), metrics with 1,000 patient-bootstrap draws, per-group
                                            AUCs, conformal intervals, calibration, the age-gap tables;
  report                                    `cxr-age-report` of the regress run;
  saliency                                  `cxr-age-saliency --batch-size 64` of the classify run over its
                                            test split (vanilla gradients, averaged per age group).

The weights are random because no model can be trained on 112,120 images on this machine; the steps' cost
does not depend on them. Then each step's growth exponent k (time ~ n^k, fitted over the fractions by least
squares in log-log) and its memory at each size. Fixed costs (Python and TensorFlow start-up, a DenseNet's
trace) pull k below 1 at small n.

    python benchmarks/nih_scale.py [--fractions 0.0625 0.25 1] [--json FILE] [--keep DIR]
    python benchmarks/nih_scale.py --reuse DIR --steps "evaluate regress" saliency   # re-measure some steps
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SIZE = 64
# At 64 px a batch's cost is mostly the per-call overhead of eager Keras and tf-keras-vis (about 3 maps/s in
# the default batches of 8 at 1/16 of NIH), so the benchmark maps 64 at a time.
SALIENCY_BATCH = 64

MEASURED = """
import importlib, json, resource, sys, time
start = time.perf_counter()
code = importlib.import_module(sys.argv[2]).main(sys.argv[3:])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
open(sys.argv[1], "w").write(json.dumps({"code": code, "seconds": seconds, "peak_mib": peak}))
"""

MAKE_RUN = """
import sys
from pathlib import Path
from cxr_age.config import DataConfig, Experiment, TrainConfig, to_toml
from cxr_age.nets.densenet import build_model
run, task, csv, images, size = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
loss = "mse" if task == "regress" else "crossentropy"
experiment = Experiment(name="nih-scale", data=DataConfig(csv=csv, image_dir=images, image_size=size),
                        train=TrainConfig(task=task, backbone="densenet121", loss=loss))
(run / "config.toml").write_text(to_toml(experiment))
build_model(experiment.task.head, "densenet121", size).save(run / "model.keras")
"""


def subset(table: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """The rows of the first `fraction` of the patients (patients whole, in table order)."""
    patients = table["Patient ID"].drop_duplicates()
    return table[table["Patient ID"].isin(patients.iloc[:int(np.ceil(fraction * len(patients)))])]


def link_tree(names: pd.Series, originals: list[Path], folder: Path) -> None:
    """One symbolic link per image name, cycling through the real PNGs."""
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        (folder / name).symlink_to(originals[i % len(originals)])


def measured(module: str, args: list[str], cwd: Path) -> dict:
    """Run a command's `main` in a fresh Python: wall seconds (imports included) and peak resident MiB."""
    result_file = cwd / f".measure-{time.monotonic_ns()}.json"
    done = subprocess.run([sys.executable, "-c", MEASURED, str(result_file), module, *args], cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0 or not result_file.is_file():
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result = json.loads(result_file.read_text())
    if result["code"] not in (0, None):
        raise SystemExit(f"{module} {' '.join(args)} exited with {result['code']}:\n{done.stderr[-3000:]}")
    return {"seconds": result["seconds"], "peak_mib": result["peak_mib"]}


def make_run(split: Path, run: Path, task: str, csv: Path, images: Path) -> None:
    """A run folder of `task`: the split command's files, a config and a DenseNet121 with random weights."""
    run.mkdir()
    for name in ("train.csv", "val.csv", "test.csv"):
        (run / name).write_bytes((split / name).read_bytes())
    subprocess.run([sys.executable, "-c", MAKE_RUN, str(run), task, str(csv), str(images), str(SIZE)], check=True,
                   capture_output=True)


STEPS = ("stats", "split", "check", "prepare", "evaluate regress", "evaluate classify", "report", "saliency")


def _fresh(folder: Path) -> Path:
    """`folder`, or a new name beside it when a run of an earlier benchmark left it (nothing is overwritten)."""
    return folder if not folder.exists() else folder.with_name(f"{folder.name}-{time.time_ns()}")


def _command(step: str, work: Path, csv: Path, images: Path) -> tuple[str, list[str]]:
    """The module and arguments of one step, run as a user runs it."""
    data = ["--csv", str(csv), "--image-dir", str(images), "--quiet"]
    if step in ("stats", "split", "check"):
        return "cxr_age.cli.data", [step, *data, "--out", str(_fresh(work / step))]
    if step == "prepare":
        return "cxr_age.cli.data", ["prepare", *data, "--image-size", str(SIZE)]
    if step.startswith("evaluate"):
        task = step.split()[1]
        return "cxr_age.cli.evaluate", [str(work / task), *(["--age-gap"] if task == "regress" else []), "--quiet"]
    if step == "report":
        return "cxr_age.cli.report", [str(work / "regress"), "--quiet"]
    return "cxr_age.cli.saliency", ["--run", str(work / "classify"), "--no-progress", "--batch-size",
                                    str(SALIENCY_BATCH), "--out", str(_fresh(work / "saliency")), "--quiet"]


def steps(work: Path, csv: Path, images: Path, chosen: tuple[str, ...] = STEPS) -> dict[str, dict]:
    """The chosen steps at one size, in the order a user runs them (the runs are made once, after prepare)."""
    results = {}
    for step in (step for step in STEPS if step in chosen):
        if step.startswith("evaluate"):
            for task in ("regress", "classify"):
                if not (work / task).exists():
                    make_run(work / "split", work / task, task, csv, images)
        results[step] = measured(*_command(step, work, csv, images), work)
    return results


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """k of time ~ n^k: the least-squares slope of log time on log n."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0]) if len(sizes) > 1 else float("nan")


def print_table(results: dict[float, dict]) -> dict[str, float]:
    fractions = sorted(results)
    sizes = [results[f]["images"] for f in fractions]
    names = list(results[fractions[0]]["steps"])
    print("step".ljust(20) + "".join(f"{n:>10,} img  MiB" for n in sizes) + "       k")
    exponents = {}
    for name in names:
        seconds = [results[f]["steps"][name]["seconds"] for f in fractions]
        exponents[name] = exponent(sizes, seconds)
        cells = "".join(f"{s:12.1f} s {results[f]['steps'][name]['peak_mib']:5.0f}" for s, f in zip(seconds, fractions))
        print(f"{name:<20}{cells}  {exponents[name]:6.2f}")
    return exponents


def _tree(table: pd.DataFrame, originals: list[Path], fraction: float, work: Path, reuse: bool) -> pd.DataFrame:
    """The table's rows for `fraction` of its patients, with their tree of links (made unless reused)."""
    rows = subset(table, fraction)
    if not reuse:
        link_tree(rows["Image Index"], originals, work / "images")
        rows.to_csv(work / "Data_Entry_2017.csv", index=False)
    elif not (work / "images").is_dir():
        raise SystemExit(f"--reuse: {work} holds no tree of an earlier --keep")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=SHARED / "nih-metadata" / "Data_Entry_2017.csv.gz")
    parser.add_argument("--images", type=Path, default=SHARED / "nih-sample")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1 / 16, 1 / 4, 1.0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    work_folder = parser.add_mutually_exclusive_group()
    work_folder.add_argument("--keep", type=Path, help="work in this new folder and keep it (default: a temporary one)")
    work_folder.add_argument("--reuse", type=Path, help="a folder an earlier --keep left: its trees, split, store and "
                                                        "runs are used again (with --steps, to re-measure some steps)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), metavar="STEP",
                        help=f"measure only these (quoted names: {', '.join(STEPS)}); default all")
    args = parser.parse_args()
    table = pd.read_csv(args.table)
    originals = sorted(args.images.glob("*.png"))
    results: dict[float, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.reuse or args.keep or Path(scratch)
        for fraction in sorted(args.fractions):
            work = root / f"fraction-{fraction:g}"
            rows = _tree(table, originals, fraction, work, args.reuse is not None)
            print(f"{fraction:g} of the patients: {len(rows):,} images, {rows['Patient ID'].nunique():,} patients",
                  flush=True)
            started = time.perf_counter()
            results[fraction] = {"images": len(rows), "patients": int(rows["Patient ID"].nunique()),
                                 "steps": steps(work, work / "Data_Entry_2017.csv", work / "images", tuple(args.steps))}
            print(f"  done in {time.perf_counter() - started:.0f} s: " + ", ".join(
                f"{name} {step['seconds']:.1f} s" for name, step in results[fraction]["steps"].items()), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
        exponents = print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"sizes": results, "exponents": exponents}, indent=2))


if __name__ == "__main__":
    main()
