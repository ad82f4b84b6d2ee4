"""Run at start-up by every Python process the tests launch (this folder is put on PYTHONPATH): installs
the network guard of `tests/no_network.py` when the tests name a log file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import no_network  # noqa: E402

no_network.install_from_environment()
