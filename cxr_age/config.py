"""Settings of a run: which data, how it is filtered and split, and how the network is trained.

An experiment is one TOML file in `experiments/` with a `[data]` and a `[train]` table whose keys are the
fields below. `Experiment.load` reads one and resolves every default the paper fixes (the backbone and loss
of the task); settings given by name (a command's flags, a notebook's keywords) override the file, and the
resolved settings are saved in the run directory (`config.toml`).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cxr_age import paths
from cxr_age.errors import CxrAgeError
from cxr_age.tasks import get_task


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
    jit_compile: bool | None = None
    # Devices: default | mirrored | multiworker (cxr_age.distribute); unset means default. batch_size is global.
    strategy: str | None = None


@dataclass
class Experiment:
    """One run's settings: its name, data settings and training settings.

    Examples:
        >>> experiment = Experiment.load("demo", task="regress", epochs=2)
        >>> experiment.train.backbone, experiment.train.loss, experiment.data.image_size
        ('densenet169', 'mse', 128)
    """

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def load(cls, name: str | Path | None = None, task: str | None = None, **settings: Any) -> Experiment:
        """An experiment from `experiments/` or a TOML file, resolved for `task`, with `settings` on top.

        Args:
            name: a config name in `experiments/` (`regress_mse`, `regress_r2`, `classify`,
                `classify_pretrained`, `demo`) or a TOML path. Default: the paper's config for the task when
                `csv` names a dataset, else `demo` (the embedded sample).
            task: `regress` or `classify`; may be left out when the config names its task.
            **settings: any field of `DataConfig` or `TrainConfig` (`csv=`, `image_size=`, `epochs=`, ...).
        """
        if name is None:
            name = get_task(task).paper_config if settings.get("csv") else "demo"
        config = load_experiment(paths.experiment_file(str(name)))
        if task is not None and config.train.task not in (None, task):
            raise CxrAgeError(f"config {name} is for {config.train.task}, not {task}")
        return config.with_settings(task=task or config.train.task, **settings)

    def with_settings(self, **settings: Any) -> Experiment:
        """A copy with the given (non-None) settings replacing these, every default of the task filled in
        (the paper's backbone and loss) and the loss checked against the task."""
        given = {key: value for key, value in settings.items() if value is not None}
        data_fields = {f.name for f in fields(DataConfig)}
        train_fields = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(given) - data_fields - train_fields)
        if unknown:
            raise CxrAgeError(f"unknown setting(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(data_fields | train_fields))}")
        config = override(self, {k: v for k, v in given.items() if k in data_fields},
                          {k: v for k, v in given.items() if k in train_fields})
        task = get_task(config.train.task)
        train = replace(config.train, backbone=config.train.backbone or task.paper_backbone,
                        loss=task.check_loss(config.train.loss or task.losses[0]))
        return replace(config, train=train)


def _table(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CxrAgeError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment TOML file (`name`, `[data]`, `[train]`)."""
    path = Path(path)
    if not path.is_file():
        raise CxrAgeError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CxrAgeError(f"{path} is not valid TOML: {err}") from None
    unknown = sorted(set(raw) - {"name", "data", "train"})
    if unknown:
        raise CxrAgeError(f"{path}: unknown section(s) {', '.join(unknown)}; expected name, [data], [train]")
    return Experiment(
        name=str(raw.get("name", path.stem)),
        data=_table(DataConfig, raw.get("data", {}), f"{path} [data]"),
        train=_table(TrainConfig, raw.get("train", {}), f"{path} [train]"),
    )


def to_toml(config: Experiment) -> str:
    """The resolved settings as TOML (unset optional values are left out, as TOML has no null)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        return repr(v)

    lines = [f"name = {value(config.name)}"]
    for section in ("data", "train"):
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in asdict(getattr(config, section)).items() if v is not None]
    return "\n".join(lines) + "\n"


def override(config: Experiment, data: dict[str, Any], train: dict[str, Any]) -> Experiment:
    """`config` with the given (non-None) values replacing its own."""
    return replace(
        config,
        data=replace(config.data, **{k: v for k, v in data.items() if v is not None}),
        train=replace(config.train, **{k: v for k, v in train.items() if v is not None}),
    )
