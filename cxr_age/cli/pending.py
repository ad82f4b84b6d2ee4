"""Commands whose capability is not built yet: each has its `--help` and says plainly what is missing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cxr_age.cli.base import Parser
from cxr_age.errors import CxrAgeError


def pending(prog: str, description: str, missing: str) -> Callable[[Sequence[str] | None], None]:
    """A command body that answers `--help` and otherwise stops with one line: `missing` is not built yet."""

    def body(argv: Sequence[str] | None) -> None:
        parser = Parser(prog=prog, description=f"{description} (not built yet: {missing})")
        parser.parse_known_args(argv)
        raise CxrAgeError(f"not built yet: {missing}")

    return body
