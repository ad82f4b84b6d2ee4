"""Settings of a run, resolved: an experiment is one TOML file in `experiments/` with a `[data]` and a
`[train]` table whose keys are the fields of `DataConfig` and `TrainConfig` (`cxr_age.settings`).
`Experiment.load` reads one and resolves every default the paper fixes (the backbone and loss of the task);
settings given by name (a command's flags, a notebook's keywords) override the file, and the resolved
settings are saved in the run directory (`config.toml`).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cxr_age import paths
from cxr_age.errors import CxrAgeError
from cxr_age.settings import DataConfig, TrainConfig
from cxr_age.tasks import Task, get_task

__all__ = ["DEMO_NOTICE", "DataConfig", "Experiment", "TrainConfig", "load_experiment", "override", "to_toml"]

DEMO_NOTICE = "DEMONSTRATION on the embedded sample (few images, low resolution, short training): not a result"


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

    @property
    def task(self) -> Task:
        """The task object the settings name: the one place a task name becomes its `Task`."""
        return get_task(self.train.task)

    @property
    def note(self) -> str:
        """The small print on every figure and summary of a demonstration run; empty for a real run."""
        return DEMO_NOTICE if self.train.demo else ""

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
        task = config.task
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
