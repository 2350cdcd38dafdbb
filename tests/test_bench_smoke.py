"""Smoke tests of the benchmark harness in bench/, so it cannot rot. Nothing here is timed or compared:
they check that every benchmarked app answers correctly under the fake server, that one very short
wall-clock round runs end to end, and that the report renders."""

from __future__ import annotations

import importlib.util
import shutil
from typing import Any

import pytest

from bench import pingpong
from bench.instructions import CONFIGS, OPTIONAL, Config

uvloop = pytest.importorskip("uvloop")


def _installed(target: str) -> bool:
    module = target.split(":")[0]
    needs = {"starlette_app": "starlette", "litestar_app": "litestar", "emmett_app": "emmett"}
    framework = next((name for key, name in needs.items() if module.endswith(key)), None)
    return framework is None or importlib.util.find_spec(framework) is not None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("config", CONFIGS + OPTIONAL, ids=lambda c: c.name)
def test_fake_server_drives_each_app(config: Config) -> None:
    """The instruction-count driver (without valgrind) gets every echo / response back from every app."""
    if not _installed(config.app):
        pytest.skip(f"{config.app} is not installed")
    app = pingpong.load_app(config.app)
    if config.kind == "ws":
        payload = config.payload or pingpong.PAYLOAD
        peer = uvloop.run(pingpong.drive_websocket(app, config.path, 5, payload, reply=config.reply))
        assert peer.echoes == 5
        assert not peer.denied
    elif config.kind == "broadcast":
        assert config.pub_path is not None
        broadcast = uvloop.run(pingpong.drive_broadcast(app, config.path, config.pub_path, 3, 50))
        assert broadcast.delivered == 4 * 50  # the probe and 3 messages, to every subscriber
    else:
        http = uvloop.run(pingpong.drive_http(app, config.path, 5))
        assert http.responses == 5
        assert http.status == 200
        assert http.body in (b"Hello, World!", b'{"message":"Hello, World!"}', b'{"message": "Hello, World!"}')


@pytest.mark.timeout(60)
def test_fake_server_with_zero_messages() -> None:
    """The ``N = 0`` run of the instruction counts connects, accepts and disconnects cleanly."""
    app = pingpong.load_app("bench.apps.scallion_app:app")
    assert uvloop.run(pingpong.drive_websocket(app, "/ws-obj", 0)).echoes == 0
    assert uvloop.run(pingpong.drive_http(app, "/", 0)).responses == 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("app_key", ["raw", "scallion"])
def test_one_short_wall_clock_round(app_key: str) -> None:
    """One 1-second round of echo, HTTP (if wrk is installed) and a small broadcast on uvicorn."""
    pytest.importorskip("picows")
    from bench import run

    workloads = ["echo", "broadcast"] + (["http"] if shutil.which("wrk") else [])
    options = run.Options(rounds=1, duration=1.0, warmup=0.2, connections=4, subscribers=20, workloads=workloads)
    lines: list[str] = []
    records = run.serve_and_measure(run.APPS[app_key], "uvicorn-sansio", options, 1, lines.append)
    spec = run.APPS[app_key]
    expected = len(spec.echo) + len(spec.broadcast) + len(spec.sequential) + (2 if "http" in workloads else 0)
    assert len(records) == expected, lines
    for record in records:
        assert "error" not in record, record
        assert "server_log" not in record, record["server_log"]
        assert record["value"] > 0


def test_report_renders(tmp_path: Any) -> None:
    """Summary, markdown and (with matplotlib) the chart from made-up records."""
    from bench import report, run

    records = [
        {
            "round": r,
            "workload": w,
            "framework": f,
            "server": "uvicorn-sansio",
            "value": v * r,
            "p50_us": 100.0,
            "p99_us": 900.0,
        }
        for r in (1, 2)
        for w in ("echo", "http-hello")
        for f, v in (("raw", 100.0), ("scallion-gen", 95.0))
    ]
    rows = report.summarize(records, run.BASELINE_SERVER)
    scallion = next(r for r in rows if r["framework"] == "scallion-gen" and r["workload"] == "echo")
    assert scallion["ratio"]["median"] == pytest.approx(0.95)
    assert "| uvicorn-sansio | scallion-gen | 142 |" in report.results_markdown(rows, run.ORDER, run.SERVER_ORDER)
    if importlib.util.find_spec("matplotlib") is not None:
        path = report.chart(rows, run.ORDER, run.SERVER_ORDER, tmp_path / "chart.png", "test")
        assert path.stat().st_size > 1000
