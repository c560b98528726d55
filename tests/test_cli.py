"""The CLI lists every command group of the contract (DESIGN 4.8)."""
from typer.testing import CliRunner

from pipelines.cli import app

COMMANDS = ["local", "data", "push", "pipeline", "predict", "dashboard", "demo", "bench"]


def test_help_lists_every_command_group() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in COMMANDS:
        assert command in result.output
