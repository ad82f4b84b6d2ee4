"""Settings shared by every command: which data, how it is filtered, split and fed to the network.

Each field is also a command-line flag (`cxr_age.cli.options`); a flag given on the command line overrides
the value here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataConfig:
    """Data settings. Defaults follow Karargyris et al. (SPIE 2019) where the paper fixes them: ages above
    90 removed, 80/10/10 split by patient. The paper leaves the image size open; 256 px is ours."""

    csv: str | None = None
    image_dir: str | None = None
    image_size: int = 256
    view: str = "all"
    max_age: float = 90.0
    seed: int = 0
    nih_lists: str | None = None
    skip_missing: bool = False
    skip_unreadable: bool = False
    augment: bool = False
