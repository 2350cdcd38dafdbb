"""The JavaScript client's logic (scallion/realtime/client.js) under Node's built-in test runner
(tests/browser/client.test.mjs), so that `make test` runs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(60)
def test_client_logic_under_node() -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the JS client's tests (apt-get install nodejs)"
    run = subprocess.run(
        [node, "--test", "tests/browser/client.test.mjs"], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout and "# pass 0" not in run.stdout
