"""Import TensorFlow without its C++ start-up log.

TensorFlow 2.19+ writes oneDNN and CUDA-probe lines to stderr during import, before its logging honours
TF_CPP_MIN_LOG_LEVEL (tensorflow/tensorflow#100442). They would bury the one-line messages this tool
promises, so the import runs with file descriptor 2 pointed at /dev/null, unless the user asked for the log
with TF_CPP_MIN_LOG_LEVEL=0. Import `tf` and `keras` from here, never TensorFlow or Keras directly.
"""

from __future__ import annotations

import os
import sys


def _import_tensorflow():
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    return tensorflow


__all__ = ["keras", "tf"]

tf = _import_tensorflow()
import keras  # noqa: E402 - after TensorFlow, whose import is the noisy one
