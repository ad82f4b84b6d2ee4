#!/usr/bin/env bash
# Issue 27's GPU check, prepared to run as one call of the device tool on a GPU machine that has JAX and
# PyTorch but no TensorFlow (the H200s lent to this project). Run from the repository root there:
#
#   here, once:  echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps --only-binary=:all: \
#                  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
#                  --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
#   there:       bash benchmarks/gpu_check.sh [steps] [cached] [train]   (carry .whl; default: all three)
#
# Phases, each under its own time limit so that one slow compilation cannot take the others' time:
#   steps   gpu_step.py, the DenseNet169 regressor at 256 px, batch 64 and 128, float32 and the chip's mixed
#           policy, beside torchvision's (--peer torch), into an empty XLA cache          (limit 330 s)
#   cached  the same steps again at batch 128 from the now warm cache: compile seconds    (limit 120 s)
#   train   the real training command, two epochs on the embedded sample at 256 px, batch 64, from a store
#           prepared there by OpenCV, TensorFlow absent                                    (limit 300 s)
# Figures land in $OUT (or /tmp/gpu-check): one JSON and one log per phase.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH="/tmp/site:$PWD" KERAS_BACKEND=jax PYTHONUNBUFFERED=1 CXR_AGE_CACHE=/tmp/cxr-age-cache
results="${OUT:-/tmp/gpu-check}"
mkdir -p "$results"
phases="${*:-steps cached train}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$results/gpu.txt"
step=(python3 benchmarks/gpu_step.py --networks regress --sizes 256 --peak-tflops 790
      --cache "$CXR_AGE_CACHE/xla")
for phase in $phases; do
    start=$(date +%s)
    case "$phase" in
        steps) timeout 330 "${step[@]}" --batch-size 64 128 --peer torch --json "$results/steps.json" ;;
        cached) timeout 120 "${step[@]}" --batch-size 128 --steps 5 --repeats 1 --json "$results/cached.json" ;;
        train) timeout 300 "${step[@]}" --batch-size 64 --train-command float32 --json "$results/train.json" ;;
        *) echo "unknown phase $phase (steps, cached, train)"; exit 2 ;;
    esac 2>&1 | tee "$results/$phase.log"
    echo "phase $phase: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s" | tee -a "$results/phases.txt"
done
