"""The settings tables of a run, as plain data: which images and how they are filtered and split
(`DataConfig`), and how the network is trained (`TrainConfig`). Every layer of the package reads them; only
`cxr_age.config` resolves them into an experiment with the paper's defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataConfig:
    """Data settings. Defaults follow Karargyris et al. (SPIE 2019) where the paper fixes them: ages above
    90 removed, 80/10/10 split by patient. The paper leaves the image size open; 256 px is ours."""

    # One table, or several trained on together (each split by patient on its own); `image_dir` and
    # `dataset` then give one value per table, or none (each table's default folder; detected layout).
    csv: str | list[str] | None = None
    image_dir: str | list[str] | None = None
    dataset: str | list[str] | None = None
    patients: str | None = None  # MIMIC-IV's patients.csv, for a MIMIC-CXR table (default: beside it)
    image_size: int = 256
    view: str = "all"
    max_age: float = 90.0
    seed: int = 0
    nih_lists: str | None = None
    skip_missing: bool = False
    skip_unreadable: bool = False
    augment: bool = False
    # Train, validate and calibrate on the images the dataset's labels call healthy (cxr_age.io.healthy); the
    # test split keeps everyone. Unset (None) means off, and stays out of the saved config, so older runs' hashes hold.
    healthy_only: bool | None = None


@dataclass
class TrainConfig:
    """Training settings. The paper fixes the backbone (DenseNet169 regressor, DenseNet201 classifier, not
    pretrained), the sigmoid / softmax heads and the two regression losses; the rest is ours. The task is
    set by the command (`regress` or `classify`); an unset backbone or loss means the paper's for the task
    (see `cxr_age.tasks`)."""

    task: str | None = None
    backbone: str | None = None
    loss: str | None = None
    weights: str | None = None
    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 1e-3
    patience: int = 10
    class_weights: bool = False
    age_scale: float = 90.0
    bn_momentum: float = 0.99
    demo: bool = False
    # GPU options. Unset: float32, and Keras's own XLA choice (on with a GPU, off on a CPU-only machine).
    mixed_precision: bool | None = None
    # The mixed policy training chose for the chip (cxr_age.nets.precision) and recorded; a config may name one.
    precision_policy: str | None = None
    jit_compile: bool | None = None
    # Devices: default | mirrored | multiworker (cxr_age.nets.distribute); unset means default. batch_size is global.
    strategy: str | None = None
