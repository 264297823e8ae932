"""README command 2 and .ci/run are the same command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)]


def test_readme_opens_with_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) >= 2
    assert "smtpclient.demo" in commands[0]
    assert "nox" in commands[1]


def test_ci_run_is_readme_command_two() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    body = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    assert body == [readme_commands()[1]]
