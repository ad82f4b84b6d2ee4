"""cxr-age: age from a frontal chest X-ray, after Karargyris et al., "Age prediction using a large chest
X-ray dataset", SPIE Medical Imaging 2019 (arXiv 1903.06542)."""

import os

# TensorFlow's C++ start-up chatter (CUDA probes on machines without a GPU, oneDNN notes) would bury the
# one-line messages this tool promises; a user who wants it back sets TF_CPP_MIN_LOG_LEVEL themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
