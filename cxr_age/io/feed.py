"""How batches are fed to a network, whichever loader assembles them (`cxr_age.io.loader`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feed:
    """How batches are fed: shuffled (seeded, reshuffled each epoch) or in order, and with light augmentation
    or without."""

    shuffle: bool = False
    augment: bool = False
    seed: int = 0
