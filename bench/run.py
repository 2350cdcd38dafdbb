"""The wall-clock benchmark: every framework on every server, interleaved, then idle-connection memory.

One round starts each (app, server) pair in turn -- raw, scallion, Starlette, Litestar on uvicorn
(websockets-sansio), uvicorn (wsproto) and granian, Emmett on granian RSGI -- and runs its workloads against
it: websocket echo for each handler style, HTTP hello and JSON with ``wrk``, and the broadcast. Rounds repeat
(A B C ... A B C ...), so slow drifts of the machine hit every configuration alike; the report gives medians,
min and max over rounds, and each configuration's ratio to raw ASGI on the same server in the same round.
The server runs on core 0 and the load generator on core 1 when there are two cores.

``python -m bench.run`` (``make bench``); ``--quick`` for a one-round smoke run. Writes
``bench/results/bench.{json,md,png}`` (``bench-quick`` for ``--quick``, ``bench-partial`` when only some apps,
servers or workloads were chosen).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .servers import ROOT, SERVERS, RunningServer, cores_to_pin, pinned, raise_open_files_limit

RESULTS = Path(__file__).resolve().parent / "results"

ASGI_SERVERS = ["uvicorn-sansio", "uvicorn-wsproto", "granian"]
HTTP_SERVERS = {"uvicorn-sansio", "granian", "granian-rsgi"}
"""HTTP does not depend on the websocket implementation: uvicorn-wsproto would repeat uvicorn-sansio."""
BROADCAST_SERVERS = {"uvicorn-sansio", "granian", "granian-rsgi"}
BASELINE_SERVER = {"granian-rsgi": "granian"}
"""Emmett on RSGI is compared with raw ASGI on granian."""

ORDER = ["raw", "scallion", "scallion-core", "scallion-gen", "scallion-obj", "starlette", "litestar", "emmett"]
SERVER_ORDER = ["uvicorn-sansio", "uvicorn-wsproto", "granian", "granian-rsgi"]


@dataclass(frozen=True)
class AppSpec:
    """One benchmarked application module and what it serves."""

    key: str
    target: str
    servers: Sequence[str]
    echo: dict[str, str]  # framework label -> websocket echo path
    broadcast: dict[str, tuple[str, str]]  # framework label -> (subscriber path, publisher path), queued
    sequential: dict[str, tuple[str, str]]  # the same for the sequential broadcast
    http: str | None  # framework label for the HTTP rows, None if the app serves no HTTP
    requires: str  # a module that must import, or the app is skipped


APPS: dict[str, AppSpec] = {
    spec.key: spec
    for spec in [
        AppSpec(
            "raw",
            "bench.apps.raw:app",
            ASGI_SERVERS,
            {"raw": "/ws"},
            {"raw": ("/subq", "/pubq")},
            {"raw": ("/sub", "/pub")},
            "raw",
            "msgspec",
        ),
        AppSpec(
            "scallion",
            "bench.apps.scallion_app:app",
            ASGI_SERVERS,
            {"scallion-gen": "/ws", "scallion-obj": "/ws-obj"},
            {"scallion-gen": ("/subq", "/pubq"), "scallion-obj": ("/subq-obj", "/pubq-obj")},
            {"scallion-obj": ("/sub-obj", "/pub-obj")},
            "scallion",
            "scallion",
        ),
        AppSpec(
            "scallion-core",
            "bench.apps.scallion_core:app",
            ASGI_SERVERS,
            {"scallion-core": "/ws"},
            {},
            {},
            "scallion-core",
            "scallion",
        ),
        AppSpec(
            "starlette",
            "bench.apps.starlette_app:app",
            ASGI_SERVERS,
            {"starlette": "/ws"},
            {"starlette": ("/subq", "/pubq")},
            {"starlette": ("/sub", "/pub")},
            "starlette",
            "starlette",
        ),
        AppSpec(
            "litestar",
            "bench.apps.litestar_app:app",
            ASGI_SERVERS,
            {"litestar": "/ws"},
            {"litestar": ("/subq", "/pubq")},
            {"litestar": ("/sub", "/pub")},
            "litestar",
            "litestar",
        ),
        AppSpec(
            "emmett",
            "bench.apps.emmett_app:app",
            ["granian-rsgi"],
            {"emmett": "/ws"},
            {"emmett": ("/subq", "/pubq")},
            {"emmett": ("/sub", "/pub")},
            "emmett",
            "emmett",
        ),
    ]
}
DEFAULT_APPS = ["raw", "scallion", "starlette", "litestar", "emmett"]
MEMORY_APPS = {"raw": "/ws", "scallion-gen": "/ws", "scallion-obj": "/ws-obj", "starlette": "/ws"}
"""Framework label -> echo path held open by the idle connections (the app is found through ``APPS``)."""


@dataclass
class Options:
    """What one run measures and for how long."""

    rounds: int = 5
    duration: float = 3.0
    warmup: float = 0.5
    connections: int = 50
    size: int = 64
    subscribers: int = 1000
    window: int = 4
    http_connections: int = 64
    memory_connections: int = 10_000
    memory_server: str = "uvicorn-sansio"
    apps: list[str] = field(default_factory=lambda: list(DEFAULT_APPS))
    servers: list[str] = field(default_factory=lambda: [*ASGI_SERVERS, "granian-rsgi"])
    workloads: list[str] = field(default_factory=lambda: ["echo", "http", "broadcast", "memory", "pubsub-redis"])
    quick: bool = False
    render: Path | None = None
    out: str | None = None


def available(spec: AppSpec) -> bool:
    """True when the app's framework is installed (Emmett may not be)."""
    done = subprocess.run([sys.executable, "-c", f"import {spec.requires}"], capture_output=True, check=False)
    return done.returncode == 0


# -- one measurement ----------------------------------------------------------------------------------
def run_client(args: list[str], core: int | None, timeout: float) -> dict[str, Any]:
    """Run ``bench.client`` pinned to ``core``; its last stdout line is the JSON result."""
    command = pinned([sys.executable, "-m", "bench.client", *args], core)
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"client timed out after {timeout:.0f}s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"client failed ({done.returncode}): {done.stderr.strip()[-500:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


_WRK_RATE = re.compile(r"Requests/sec:\s*([\d.]+)")
_WRK_LATENCY = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def run_wrk(url: str, connections: int, duration: float, core: int | None) -> dict[str, Any]:
    """``wrk -t1 -c<connections> -d<duration>s --latency url`` -> requests/s and latency percentiles."""
    seconds = max(1, round(duration))
    command = pinned(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url], core)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    rate = _WRK_RATE.search(done.stdout)
    if done.returncode != 0 or rate is None:
        return {"error": f"wrk failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}"}
    result: dict[str, Any] = {"value": float(rate.group(1))}
    for percent, value, unit in _WRK_LATENCY.findall(done.stdout):
        result[f"p{percent}_us"] = float(value) * _UNIT_US[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", done.stdout)
    if errors:
        result["error"] = f"{errors.group(1)} non-2xx responses"
    return result


def client_args(mode: str, **options: Any) -> list[str]:
    """``bench.client`` arguments: ``client_args("echo", url=u, sub_path=p)`` -> ``["echo", "--url", u,
    "--sub-path", p]``."""
    args = [mode]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


# -- one round ----------------------------------------------------------------------------------------
def serve_and_measure(
    spec: AppSpec, server_name: str, options: Options, round_no: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Start ``spec`` on ``server_name`` and run every selected workload against it."""
    server_core, client_core = cores_to_pin()
    records: list[dict[str, Any]] = []
    client_timeout = options.warmup + options.duration + 60
    timing = {"warmup": options.warmup, "duration": options.duration}

    def record(workload: str, framework: str, result: dict[str, Any]) -> None:
        entry = {"round": round_no, "workload": workload, "framework": framework, "server": server_name, **result}
        records.append(entry)
        if "error" in result:
            log(f"  {workload:10} {framework:13} {server_name:15} ERROR {result['error']}")
        else:
            extra = (
                f"  p50 {result['p50_us'] / 1000:.2f} ms  p99 {result['p99_us'] / 1000:.2f} ms"
                if "p50_us" in result
                else ""
            )
            log(f"  {workload:10} {framework:13} {server_name:15} {result['value']:>11,.0f}/s{extra}")

    with RunningServer(SERVERS[server_name], spec.target, server_core) as server:
        try:
            if "echo" in options.workloads:
                for framework, path in spec.echo.items():
                    url = f"ws://{server.url}{path}"
                    args = client_args("echo", url=url, connections=options.connections, size=options.size, **timing)
                    record("echo", framework, run_client(args, client_core, client_timeout))
            if "http" in options.workloads and spec.http and server_name in HTTP_SERVERS:
                run_wrk(f"http://{server.url}/", options.http_connections, 1, client_core)  # warm-up
                for workload, path in (("http-hello", "/"), ("http-json", "/json")):
                    url = f"http://{server.url}{path}"
                    record(workload, spec.http, run_wrk(url, options.http_connections, options.duration, client_core))
            if "broadcast" in options.workloads and server_name in BROADCAST_SERVERS:
                for workload, paths in (("broadcast", spec.broadcast), ("broadcast-sequential", spec.sequential)):
                    for framework, (sub, pub) in paths.items():
                        args = client_args(
                            "broadcast", url=f"ws://{server.url}", sub_path=sub, pub_path=pub,
                            subscribers=options.subscribers, window=options.window, **timing,
                        )  # fmt: skip
                        record(workload, framework, run_client(args, client_core, client_timeout))
        finally:
            server.stop()
            output = server.output()
            if "Traceback" in output or "ERROR" in output:
                log(f"  !! {spec.key} on {server_name} logged errors:\n{output[-4000:]}")
                for entry in records:
                    entry.setdefault("server_log", output[-4000:])
            server.discard_log()
    return records


def measure_memory(
    label: str, spec: AppSpec, path: str, options: Options, log: Callable[[str], None]
) -> dict[str, Any]:
    """RSS per idle websocket: (RSS with ``memory_connections`` open - RSS before) / connections."""
    server_core, client_core = cores_to_pin()
    count = options.memory_connections
    entry: dict[str, Any] = {"framework": label, "server": options.memory_server, "connections": count}
    with RunningServer(SERVERS[options.memory_server], spec.target, server_core) as server:
        url = f"ws://{server.url}{path}"
        warm = run_client(client_args("echo", url=url, connections=10, warmup=0.1, duration=0.3), client_core, 60)
        if "error" in warm:
            entry["error"] = warm["error"]
            return entry
        time.sleep(0.5)
        before = server.rss()
        command = pinned(
            [sys.executable, "-m", "bench.client", *client_args("idle", url=url, connections=count)], client_core
        )
        client = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert client.stdout is not None and client.stdin is not None
            ready = json.loads(client.stdout.readline() or "{}")
            time.sleep(1.0)  # let the server settle (accept tasks, watchdog readers)
            after = server.rss()
            client.stdin.write("done\n")
            client.stdin.flush()
            client.wait(timeout=120)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        connected = int(ready.get("connected", 0))
        entry.update(connections=connected, rss_before=before, rss_after=after)
        if connected != count:
            entry["error"] = f"{connected}/{count} connected: {ready.get('failures')}"
        if connected:
            entry["per_connection"] = (after - before) / connected
    if "per_connection" in entry:
        log(
            f"  memory {label:13} {options.memory_server:15} {connected:,} idle sockets: "
            f"{entry['per_connection'] / 1024:.2f} KiB each"
        )
    return entry


# -- the whole run ------------------------------------------------------------------------------------
def run(options: Options, log: Callable[[str], None] = print) -> dict[str, Any]:
    """All rounds, then memory; returns everything measured."""
    specs = []
    for key in options.apps:
        spec = APPS[key]
        if available(spec):
            specs.append(spec)
        else:
            log(f"skipping {key}: `import {spec.requires}` fails (install the bench extra)")
    pairs = [(spec, server) for spec in specs for server in spec.servers if server in options.servers]
    skipped = [key for key in options.apps if key not in {s.key for s in specs}]
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    for round_no in range(1, options.rounds + 1):
        log(f"round {round_no}/{options.rounds}  ({time.monotonic() - started:.0f} s)")
        for spec, server_name in pairs:
            try:
                records.extend(serve_and_measure(spec, server_name, options, round_no, log))
            except RuntimeError as exc:  # a server that does not start
                log(f"  !! {spec.key} on {server_name}: {exc}")
                records.append(
                    {
                        "round": round_no,
                        "workload": "start",
                        "framework": spec.key,
                        "server": server_name,
                        "error": str(exc)[-2000:],
                    }
                )
    memory = []
    if "memory" in options.workloads:
        limit = raise_open_files_limit(options.memory_connections + 1000)
        if limit < options.memory_connections + 100:
            log(f"open-file limit {limit} is too low for {options.memory_connections} connections; reducing")
            options.memory_connections = max(100, limit - 200)
        for label, path in MEMORY_APPS.items():
            serving = next((s for s in specs if label in s.echo), None)
            if serving is not None:
                memory.append(measure_memory(label, serving, path, options, log))
    pubsub_redis = None
    if "pubsub-redis" in options.workloads:  # bench/pubsub_redis.py: 2 processes through Redis, its own rounds
        from . import pubsub_redis as cross

        cross_options = cross.Options(options.rounds, options.subscribers, duration=options.duration)
        pubsub_redis = cross.run(cross_options, log) if cross.ready(log) else None
    elapsed = time.monotonic() - started
    return {
        "pubsub_redis": pubsub_redis,
        "options": {k: v for k, v in vars(options).items() if k not in ("render", "out")},
        "machine": report.machine_info(),
        "pinning": dict(zip(("server_core", "client_core"), cores_to_pin(), strict=True)),
        "skipped": skipped,
        "elapsed_s": round(elapsed, 1),
        "records": records,
        "summary": report.summarize(records, BASELINE_SERVER),
        "memory": memory,
    }


def default_stem(options: Options) -> str:
    """``bench`` for a full default run, ``bench-quick`` for ``--quick``, else ``bench-partial``, so that a
    partial run never overwrites the report that docs/performance.md quotes."""
    if options.quick:
        return "bench-quick"
    defaults = Options()
    same = (options.apps, options.servers, options.workloads) == (defaults.apps, defaults.servers, defaults.workloads)
    return "bench" if same else "bench-partial"


def write(data: dict[str, Any], stem_name: str) -> list[Path]:
    """``<stem>.json``, ``.md`` and ``.png`` in ``bench/results``."""
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / stem_name
    quick = data["options"]["quick"]
    json_path, md_path, png_path = (stem.with_suffix(s) for s in (".json", ".md", ".png"))
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    options = data["options"]
    errors = [r for r in data["records"] if "error" in r]
    header = (
        f"# Benchmark results{' (quick)' if quick else ''}\n\n"
        f"{options['rounds']} interleaved round(s) of {options['duration']} s per measurement "
        f"(after {options['warmup']} s warm-up); echo: {options['connections']} connections, "
        f"{options['size']}-byte text; HTTP: wrk -t1 -c{options['http_connections']}; broadcast: "
        f"{options['subscribers']} subscribers, window {options['window']}. Ratios are to raw ASGI on the same "
        f"server in the same round (Emmett on granian RSGI: to raw on granian ASGI). Pinning: {data['pinning']}. "
        f"Total time {data['elapsed_s']:.0f} s.\n\n"
        f"{report.machine_markdown(data['machine'])}\n"
    )
    if data["skipped"]:
        header += f"\nSkipped (not installed): {', '.join(data['skipped'])}\n"
    titles = {
        "broadcast": f"broadcast to {options['subscribers']:,} sockets, a queue each (deliveries/s)",
        "broadcast-sequential": f"broadcast to {options['subscribers']:,} sockets, sent in turn (deliveries/s)",
    }
    body = report.results_markdown(data["summary"], ORDER, SERVER_ORDER, titles)
    if data["memory"]:
        body += "\n\n### Idle websockets: RSS per connection\n\n" + report.memory_markdown(data["memory"])
    if data.get("pubsub_redis"):
        from .pubsub_redis import markdown

        body += "\n\n" + markdown(data["pubsub_redis"])
    if errors:
        body += "\n\n### Errors\n\n" + "\n".join(
            f"- round {e['round']} {e['workload']} {e['framework']} {e['server']}: {e['error']}" for e in errors
        )
    md_path.write_text(header + "\n" + body + "\n")
    paths = [json_path, md_path]
    if any("ratio" in row and row["framework"] != "raw" for row in data["summary"]):
        title = f"scallion benchmark, {options['rounds']} round(s); bars: median, whiskers: min-max"
        paths.append(report.chart(data["summary"], ORDER, SERVER_ORDER, png_path, title, titles))
    return paths


def parse(argv: Sequence[str] | None) -> Options:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s, 200 subscribers, 1,000 idle sockets")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    parser.add_argument("--duration", type=float, help="seconds counted per measurement (default 3)")
    parser.add_argument("--warmup", type=float, help="seconds of load before counting (default 0.5)")
    parser.add_argument("--connections", type=int, help="echo connections (default 50)")
    parser.add_argument("--subscribers", type=int, help="broadcast subscribers (default 1000)")
    parser.add_argument("--memory-connections", type=int, help="idle sockets for the memory test (default 10000)")
    parser.add_argument("--memory-server", choices=sorted(SERVERS), help="server for the memory test")
    parser.add_argument("--apps", nargs="+", choices=sorted(APPS), help=f"default: {' '.join(DEFAULT_APPS)}")
    parser.add_argument("--servers", nargs="+", choices=sorted(SERVERS), help="default: all")
    parser.add_argument("--workloads", nargs="+", choices=["echo", "http", "broadcast", "memory", "pubsub-redis"])
    parser.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the table and chart of a run")
    parser.add_argument("--out", help="result file stem in bench/results (default: bench, bench-quick, bench-partial)")
    args = parser.parse_args(argv)
    options = Options(quick=args.quick, render=args.render, out=args.out)
    if args.quick:
        options.rounds, options.duration, options.warmup = 1, 1.0, 0.3
        options.subscribers, options.memory_connections = 200, 1000
    for name, value in vars(args).items():
        if value is not None and name not in ("quick", "render", "out"):
            setattr(options, name, value)
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    options = parse(argv)
    if options.render is not None:
        data = json.loads(options.render.read_text())
        for path in write(data, options.render.stem):
            print(f"wrote {path}")
        return 0
    if "http" in options.workloads and shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); skipping the HTTP workloads", file=sys.stderr)
        options.workloads = [w for w in options.workloads if w != "http"]
    raise_open_files_limit(max(4096, options.subscribers + 1000))
    data = run(options)
    for path in write(data, options.out or default_stem(options)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
