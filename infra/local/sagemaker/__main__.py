"""`python -m infra.local.sagemaker --host 127.0.0.1 --port P --state-dir D`: run the local SageMaker service."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from infra.local.sagemaker.server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local.sagemaker", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True, help="where pipelines, executions, jobs and endpoints persist")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serve(args.host, args.port, args.state_dir)


if __name__ == "__main__":
    main(parse_args())
