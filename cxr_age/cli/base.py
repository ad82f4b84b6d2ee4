"""What every command shares: an argument parser whose errors are one line, `--quiet` / `--verbose`, and a
runner that quiets TensorFlow's start-up log, shows the library's log on stdout, and turns a `CxrAgeError`
into one line on stderr with exit code 2 instead of a traceback. The library names its parameters in
backticks (`max_age`); what a command prints names the flag instead (`--max-age`) wherever the command has
that flag, since there the flag is what the user set. Quieting TensorFlow is the commands' business
alone: the library leaves the process's environment and file descriptors as it found them."""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import NoReturn

from cxr_age.errors import CxrAgeError
from cxr_age.runtime import tensorflow_missing

EXIT_USAGE = 2
PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")
_FLAGS: set[str] = set()  # the option strings of every parser that has parsed a command line


def flag_words(text: str) -> str:
    """`text` with each backticked parameter that the command has as a flag written as that flag."""

    def flag(match: re.Match) -> str:
        option = "--" + match.group(1).replace("_", "-")
        return option if option in _FLAGS else match.group(0)

    return PARAMETER.sub(flag, text)


class _FlagFormatter(logging.Formatter):
    """The library's log lines as plain text, in the command's words."""

    def format(self, record: logging.LogRecord) -> str:
        return flag_words(super().format(record))


class Parser(argparse.ArgumentParser):
    """`argparse` with a one-line error message, exit code 2, and `--quiet` / `--verbose`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        loudness = self.add_mutually_exclusive_group()
        loudness.add_argument("--quiet", action="store_true", help="print warnings and results only")
        loudness.add_argument("--verbose", action="store_true", help="also print the library's debugging log")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        _FLAGS.update(option for action in self._actions for option in action.option_strings)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        parsed = super().parse_args(args, namespace)
        level = logging.WARNING if parsed.quiet else logging.DEBUG if parsed.verbose else logging.INFO
        logging.getLogger("cxr_age").setLevel(level)
        return parsed

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the block (C++ libraries write there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietLoader(importlib.abc.Loader):
    """Runs a module's loader with file descriptor 2 silenced."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _stderr_silenced():
            self.loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, wrapping its loader in `_QuietLoader`, whoever imports it first."""

    def find_spec(self, name: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> _QuietTensorFlowImport | None:
    """Hide TensorFlow's C++ start-up lines, which would bury the one-line messages the commands promise.
    TensorFlow 2.19+ writes oneDNN and CUDA-probe lines while it is imported, before it reads its log level
    (tensorflow/tensorflow#100442), so the import, whenever a command makes it, runs with file descriptor 2
    silenced; after it, TF_CPP_MIN_LOG_LEVEL=3 hides the rest (`failed call to cuInit` on a machine without
    a GPU). Only the commands do this; a user who sets TF_CPP_MIN_LOG_LEVEL themselves gets the log.
    Returns the import hook, to be removed if TensorFlow was never imported."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return None
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    hook = _QuietTensorFlowImport()
    sys.meta_path.insert(0, hook)
    return hook


def run(prog: str, body: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None) -> int:
    """Run a command body with the `cxr_age` log printed to stdout as plain lines; bad input ends as
    `prog: error: message` on stderr and exit code 2."""
    hook = quiet_tensorflow()
    _FLAGS.clear()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_FlagFormatter("%(message)s"))
    logger = logging.getLogger("cxr_age")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return body(argv) or 0
    except CxrAgeError as err:
        print(f"{prog}: error: {flag_words(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as err:
        if err.name != "tensorflow":
            raise
        print(f"{prog}: error: {tensorflow_missing('this command')}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
