"""`cxr-age-saliency --group 70-80`: per-age-group average saliency maps with tf-keras-vis."""

from __future__ import annotations

from collections.abc import Sequence

from cxr_age.cli.base import run
from cxr_age.cli.pending import pending

PROG = "cxr-age-saliency"


def main(argv: Sequence[str] | None = None) -> int:
    body = pending(
        PROG,
        "Average tf-keras-vis saliency maps of a trained classifier over the test images of an age group.",
        "saliency needs a trained classifier run (the experiments issue) and arrives with the saliency issue",
    )
    return run(PROG, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
