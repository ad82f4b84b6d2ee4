"""cxr-age: age from a frontal chest X-ray, after Karargyris et al., "Age prediction using a large chest
X-ray dataset", SPIE Medical Imaging 2019 (arXiv 1903.06542).

The public API, the same one the commands stand on:

- `Experiment.load(name, task=..., **settings)`: an experiment config with the paper's defaults resolved.
- `train(experiment, out=None)`: train into a run folder (resumable) and evaluate; returns the folder.
- `evaluate(run, splits=("val", "test"))`: re-predict a run's splits, write its metrics and figures.
- `evaluate_external(run, csv, image_dir)`: external validation on another dataset, into `RUN/external/`.
- `read_table(csv, dataset=None)`: any supported dataset's metadata table, normalised (`cxr_age.io.datasets`).
- `AgeModel.load(run)`: a finished run's model; `.predict(files or arrays)`, `.saliency(...)`, `.metrics`.

Importing the package loads none of these and changes nothing in the process (no environment variable, no
redirected output, no matplotlib backend): each name is imported on first use. The library logs through
`logging.getLogger("cxr_age")`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AgeModel": "cxr_age.age_model",
    "CxrAgeError": "cxr_age.errors",
    "DataConfig": "cxr_age.settings",
    "Experiment": "cxr_age.config",
    "GROUP_LABELS": "cxr_age.io.ages",
    "Run": "cxr_age.run",
    "TrainConfig": "cxr_age.settings",
    "evaluate": "cxr_age.workflows.evaluation",
    "evaluate_external": "cxr_age.workflows.external",
    "read_table": "cxr_age.io.metadata",
    "train": "cxr_age.workflows.training",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cxr_age' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
