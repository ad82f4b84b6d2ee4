"""`cxr-age-train regress|classify`: the paper's DenseNet169 regressor and DenseNet201 age-group classifier."""

from __future__ import annotations

from collections.abc import Sequence

from cxr_age.cli.base import run
from cxr_age.cli.pending import pending

PROG = "cxr-age-train"


def main(argv: Sequence[str] | None = None) -> int:
    body = pending(
        PROG,
        "Train the DenseNet169 age regressor (`regress`) or the DenseNet201 nine-group classifier (`classify`).",
        "training arrives with the experiments issue; `cxr-age-data` (stats, split, check) works now",
    )
    return run(PROG, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
