"""`websocket` and `request` are typed for users: ``mypy --strict`` accepts a correct app and reports mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

HERE = Path(__file__).parent / "typing"

pytestmark = pytest.mark.timeout(180)


def _mypy(name: str) -> tuple[str, int]:
    out, err, status = api.run(["--strict", "--no-incremental", "--cache-dir=/dev/null", str(HERE / name)])
    return out + err, status


def test_a_typed_app_passes_mypy_strict() -> None:
    output, status = _mypy("user_app.py")
    assert status == 0, output


def test_mistakes_on_the_proxies_are_reported() -> None:
    output, status = _mypy("user_mistakes.py")
    assert status == 1, output
    lines = [line for line in output.splitlines() if ": error:" in line]
    reported = {int(line.split(":")[1]) for line in lines}
    source = (HERE / "user_mistakes.py").read_text().splitlines()
    expected = {number for number, line in enumerate(source, 1) if "# E:" in line}
    assert reported == expected, output
