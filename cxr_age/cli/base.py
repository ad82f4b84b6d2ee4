"""What every command shares: an argument parser whose errors are one line, and a runner that turns a
`CxrAgeError` into that line on stderr with exit code 2 instead of a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from cxr_age.errors import CxrAgeError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """`argparse` with a one-line error message and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def run(prog: str, body: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None) -> int:
    """Run a command body; bad input ends as `prog: error: message` on stderr and exit code 2."""
    try:
        return body(argv) or 0
    except CxrAgeError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
