"""Command line: ``python -m rn623_events {asyncapi,schemas,snapshot}``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rn623_events.asyncapi import render_asyncapi, write_asyncapi
from rn623_events.registry import REGISTRY
from rn623_events.snapshots import SNAPSHOT_DIR, render_schema, snapshot_filename, write_snapshots


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rn623_events", description="Event contract tooling."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    asyncapi = commands.add_parser("asyncapi", help="print or write the AsyncAPI 3.0 document")
    asyncapi.add_argument("-o", "--output", type=Path, help="YAML file (default: stdout)")
    schemas = commands.add_parser("schemas", help="export every contract's JSON Schema")
    schemas.add_argument("-o", "--output", type=Path, required=True, help="directory")
    snapshot = commands.add_parser(
        "snapshot", help="rewrite the committed contract snapshots and asyncapi.yaml"
    )
    snapshot.add_argument("--dir", type=Path, default=SNAPSHOT_DIR, help="snapshot directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "asyncapi":
        if args.output is None:
            sys.stdout.write(render_asyncapi())
        else:
            write_asyncapi(args.output)
        return 0
    if args.command == "schemas":
        args.output.mkdir(parents=True, exist_ok=True)
        for info in REGISTRY:
            path = args.output / snapshot_filename(info)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_schema(info), "utf-8")
        sys.stdout.write(f"{len(REGISTRY)} schemas written to {args.output}\n")
        return 0
    try:
        written = write_snapshots(directory=args.dir)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    for path in written:
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
