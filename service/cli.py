"""The `stn` command. Each command group lives beside the code it drives and adds its own
subparsers; the groups are found through the "stn_align.commands" entry points, so an install
without the training distribution still has the serving commands, and the service never imports
training code.

Command modules import nothing heavy at import time (no torch, no onnxruntime) so `stn --help` is
quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "stn_align.commands"
SERVING_COMMANDS = "stn_align.service.commands"


def command_modules() -> list[str]:
    """The installed command modules, the serving commands first."""
    found = sorted({ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)})
    return [SERVING_COMMANDS] + [name for name in found if name != SERVING_COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stn",
        description="Align images and documents with Spatial Transformer Networks.",
        epilog="Training commands (train, export, evaluate, pages) come with the training "
        "distribution (pip install ./training), `bench` with ./experiments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from stn_align.service.commands import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
