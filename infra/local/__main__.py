"""`python -m infra.local up|down|env --state-dir D`: the local cloud without the `samay` CLI.

For scripts and CI that must not load the pipeline layer; `samay local ...` is the user's way
(it also upserts the pipeline and prints tables).
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys

from infra.local import cloud


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "env"))
    parser.add_argument("--state-dir", default=".samay")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "up":
            _, started = cloud.start(args.state_dir, progress=print)
            print("started" if started else "already running")
        elif args.command == "down":
            print("stopped: " + (", ".join(cloud.stop(args.state_dir, progress=print)) or "nothing"))
        else:
            for name, value in cloud.read_env(args.state_dir).items():
                print(f"export {name}={shlex.quote(value)}")
    except cloud.CloudError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
