"""Protocol conformance: the Autobahn testsuite (through ``kosoku``) against scallion echo servers, both
handler styles, on every real server. Framing is the server's job; this shows scallion adds no failure.

Excluded as the testsuite's own documentation suggests for a quick run: 9.* (performance), 12.* and 13.*
(compression). On uvicorn's websockets-sansio implementation case 7.1.5 (a close frame between two fragments)
fails for a raw ASGI echo too (uvicorn answers with 1002), so it is the server's and is excluded there. On daphne
the cases that echo an empty message (1.1.1, 1.2.1, 6.1.1, 6.1.2) fail because daphne sends nothing for an empty
message, shown with a raw ASGI app in tests/test_servers_more.py (test_raw_empty_messages). hypercorn passes all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servers import ALL_SERVERS, start_server

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("kosoku", path=str(Path(sys.executable).parent)) is None
                       and shutil.which("kosoku") is None, reason="kosoku (Autobahn testsuite) is not installed"),
]

EXCLUDED = ["9.*", "12.*", "13.*"]
SERVER_EXCLUDED = {
    "uvicorn-websockets-sansio": ["7.1.5"],
    "daphne": ["1.1.1", "1.2.1", "6.1.1", "6.1.2"],  # empty messages: SENDS_EMPTY_MESSAGES in tests/servers.py
}


def kosoku() -> str:
    local = Path(sys.executable).parent / "kosoku"
    return str(local) if local.exists() else "kosoku"


@pytest.mark.parametrize("style", ["generator", "obj"])
@pytest.mark.parametrize("kind", ALL_SERVERS)
def test_autobahn_cases_pass(kind: str, style: str, tmp_path: Path) -> None:
    server = start_server(kind, f"autobahn_echo:{style}", tmp_path)
    try:
        excluded = [*EXCLUDED, *SERVER_EXCLUDED.get(kind, [])]
        command = [kosoku(), "-m", "fuzzingclient", "-o", str(tmp_path / "reports"), f"127.0.0.1:{server.port}"]
        for case in excluded:
            command += ["-x", case]
        run = subprocess.run(command, capture_output=True, text=True, timeout=150)
    finally:
        server.stop()
    summary = run.stdout + run.stderr
    assert run.returncode == 0, summary[-3000:]
    assert "cases passed" in summary and "failed" not in summary, summary[-3000:]
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    assert index, "no case was run"
