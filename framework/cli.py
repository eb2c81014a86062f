"""The ``workflows`` command."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file():
        print(
            f"workflows: no demo script at {path} (run from the project root, or give a path)",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(Path.cwd()))
    runpy.run_path(str(path), run_name="__main__")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workflows", description="Durable workflows on AWS Lambda.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo locally (in-process moto, virtual clock)")
    demo.add_argument(
        "path", nargs="?", default="examples/demo.py", help="demo script (default: %(default)s)"
    )
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
