"""`python -m cxr_age data|train|evaluate|saliency|predict|report|export|serve|outcomes|pacs|listen ...`: the
console scripts under one entry point."""

from __future__ import annotations

import sys

from cxr_age.cli import data, evaluate, export, listen, outcomes, pacs, predict, report, saliency, serve, train

COMMANDS = {"data": data.main, "train": train.main, "evaluate": evaluate.main, "saliency": saliency.main,
            "predict": predict.main, "report": report.main, "export": export.main, "serve": serve.main,
            "outcomes": outcomes.main, "pacs": pacs.main, "listen": listen.main}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m cxr_age {{{','.join(COMMANDS)}}} ...  (each takes --help)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])
