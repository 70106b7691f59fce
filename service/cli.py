"""The `stn` command. Each command group lives beside the code it drives and adds its own
subparsers.

Command modules import nothing heavy at import time (no torch, no onnxruntime) so `stn --help` is
quick and a serving-only install (no torch) can still run the serving commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "training.cli",  # train, export
    "training.documents.cli",  # evaluate, pages
    "training.paper.cli",  # bench
    "service.commands",  # serve, align, rectify
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stn", description="Align images and documents with Spatial Transformer Networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from service.commands import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
