"""The cross-process fan-out through Redis: 2 server processes, ``--subscribers`` websockets split between
them, one publisher, for scallion's ``RedisBroker`` with history off and on, against a hand-written redis-py
pub/sub fan-out (bench/apps/pubsub_redis_app.py), interleaved round by round.

Per configuration and round, against a fresh redis-server (no persistence) and two fresh servers:

* ``deliveries/s``: the publisher keeps ``--window`` messages in flight (a message is done when every
  subscriber has it);
* ``latency``: publishes at a fixed ``--rate`` per second (1,000 subscribers x 10/s = 10,000 deliveries/s),
  each stamped with ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, one clock for every process of the machine):
  publish-to-delivery p50/p99 over every delivery;
* ``publishes/s``: the publisher alone (16 publishes in flight, nobody subscribed), so what history costs a
  publish is seen without the fan-out;
* the same again with a smaller fan-out at the same delivery rate (``--small``: 100 subscribers x 100/s =
  10,000 deliveries/s), which tells the cost of a delivery rate from the cost of one message's fan-out: the
  last of 500 frames a server process writes for one message leaves after the 499 before it.

Servers (uvicorn, websockets-sansio) on core 0, the load generator on core 1, Redis unpinned.
``python -m bench.pubsub_redis`` (or ``make bench``, which runs it after the other workloads);
``--quick`` for a smoke run. The client half runs as ``python -m bench.pubsub_redis client ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .servers import HOST, ROOT, SERVERS, RunningServer, cores_to_pin, free_port, pinned, raise_open_files_limit

CONFIGS = {
    "raw redis-py": ("bench.apps.pubsub_redis_app:raw", "off"),
    "scallion history off": ("bench.apps.pubsub_redis_app:app", "off"),
    "scallion history on": ("bench.apps.pubsub_redis_app:app", "on"),
}
"""Label -> (ASGI target, history)."""


@dataclass
class Options:
    """What one run measures."""

    rounds: int = 3
    subscribers: int = 1000
    window: int = 4
    rate: float = 10.0
    duration: float = 3.0
    warmup: float = 0.5
    server: str = "uvicorn-sansio"
    small: tuple[int, float] | None = (100, 100.0)
    """A second (subscribers, rate) measured in each round: the same delivery rate, a smaller fan-out."""


# -- the load generator (its own process) ---------------------------------------------------------------
async def client(urls: list[str], redis_url: str, kind: str, history: str, options: Options) -> dict[str, Any]:
    """Subscribers on every URL, one publisher; returns the measurements."""
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    from scallion.pubsub import History, RedisBroker

    state = {"delivered": 0, "counting": False}
    latencies: list[int] = []
    progress = asyncio.Event()

    class Subscriber(WSListener):  # type: ignore[misc]
        transport: WSTransport | None = None

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                state["delivered"] += 1
                if state["counting"]:
                    stamp = frame.get_payload_as_bytes().split(b" ", 2)[1]
                    latencies.append(time.perf_counter_ns() - int(stamp))
                progress.set()
            elif frame.msg_type is WSMsgType.CLOSE:
                transport.disconnect()

    gate = asyncio.Semaphore(100)

    async def connect(url: str) -> Subscriber:
        async with gate:
            _, listener = await ws_connect(Subscriber, url, websocket_handshake_timeout=30)
            return listener  # type: ignore[no-any-return]

    subscribers = await asyncio.gather(*(connect(urls[n % len(urls)]) for n in range(options.subscribers)))
    total = len(subscribers)
    broker = RedisBroker(redis_url, history=History(size=1000) if history == "on" else History(size=0))
    raw = broker.redis  # the baseline publishes with a plain PUBLISH on the same pooled client
    sequence = 0

    async def publish(padding: bytes = b"") -> None:
        nonlocal sequence
        sequence += 1
        payload = b"%d %d %s" % (sequence, time.perf_counter_ns(), padding)
        if kind == "raw":
            await raw.publish("fanout", payload)
        else:
            await broker.publish("fanout", payload)

    async def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), 0.05)
        return True

    result: dict[str, Any] = {}
    try:
        # probe: publish until one message reaches every subscriber (all are subscribed in both processes)
        deadline = time.monotonic() + 20
        while True:
            state["delivered"] = 0
            await publish()
            if await wait_until(lambda: state["delivered"] >= total, 0.5):
                break
            if time.monotonic() > deadline:
                return {"error": f"probe reached {state['delivered']}/{total} subscribers"}
        await wait_until(lambda: False, 0.2)  # drain stragglers of earlier probes
        # throughput: a window of messages in flight
        state["delivered"] = 0
        published = 0
        running = True

        async def keep_window() -> None:
            nonlocal published
            while running:
                if published * total - state["delivered"] < options.window * total:
                    published += 1
                    await publish(b"x" * 32)
                else:
                    progress.clear()
                    await progress.wait()

        pump = asyncio.ensure_future(keep_window())
        await asyncio.sleep(options.warmup)
        first, started = state["delivered"], time.perf_counter()
        await asyncio.sleep(options.duration)
        result["deliveries_per_s"] = (state["delivered"] - first) / (time.perf_counter() - started)
        running = False
        progress.set()
        await pump
        await wait_until(lambda: state["delivered"] >= published * total, 10)
        # latency at a fixed rate
        interval = 1 / options.rate
        count = max(1, round(options.rate * options.duration))
        state["counting"] = True
        next_at = time.perf_counter()
        for _ in range(count):
            await publish(b"x" * 32)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))  # the pace of the publisher
        await wait_until(lambda: len(latencies) >= count * total, 10)
        state["counting"] = False
        ordered = sorted(latencies)
        result["latency_deliveries"] = len(ordered)
        result["p50_ms"] = ordered[len(ordered) // 2] / 1e6 if ordered else None
        result["p99_ms"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6 if ordered else None
        # publish only: 16 in flight, nobody subscribed to this channel
        for subscriber in subscribers:
            if subscriber.transport is not None:
                subscriber.transport.send_close(WSCloseCode.OK)
                subscriber.transport.disconnect()
        subscribers = []
        done = 0
        stop_at = time.perf_counter() + options.duration

        async def publisher() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                payload = b"x" * 64
                if kind == "raw":
                    await raw.publish("alone", payload)
                else:
                    await broker.publish("alone", payload)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(16)))
        result["publishes_per_s"] = done / (time.perf_counter() - started)
        return result
    finally:
        for subscriber in subscribers:
            if subscriber.transport is not None and not subscriber.transport.is_disconnected:
                subscriber.transport.disconnect()
        await broker.close()


# -- the run ----------------------------------------------------------------------------------------------
class Redis:
    """A redis-server of the benchmark's own, on a free port, no persistence; stopped by PID."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        command = [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
                   "--dir", self.dir, "--logfile", ""]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def ready(log: Callable[[str], None] = print) -> bool:
    """Whether redis-py and redis-server are there (else the workload is skipped, saying why)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        log("skipping pubsub-redis: redis-py is missing (pip install 'scallion[redis]')")
        return False
    if shutil.which("redis-server") is None:
        log("skipping pubsub-redis: redis-server is missing (apt-get install redis-server)")
        return False
    return True


def measure(label: str, options: Options) -> dict[str, Any]:
    """One configuration, one round: a fresh Redis, two servers, the client process."""
    target, history = CONFIGS[label]
    server_core, client_core = cores_to_pin()
    redis = Redis()
    os.environ["BENCH_REDIS"], os.environ["BENCH_HISTORY"] = redis.url, history  # inherited by the servers
    try:
        with (
            RunningServer(SERVERS[options.server], target, server_core) as one,
            RunningServer(SERVERS[options.server], target, server_core) as two,
        ):
            urls = f"ws://{one.url}/sub,ws://{two.url}/sub"
            kind = "raw" if label.startswith("raw") else "scallion"
            args = ["client", "--urls", urls, "--redis", redis.url, "--kind", kind, "--history", history,
                    "--subscribers", str(options.subscribers), "--window", str(options.window),
                    "--rate", str(options.rate), "--duration", str(options.duration),
                    "--warmup", str(options.warmup)]  # fmt: skip
            command = pinned([sys.executable, "-m", "bench.pubsub_redis", *args], client_core)
            timeout = 4 * options.duration + 120
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                return {"config": label, "error": f"client failed ({done.returncode}): {done.stderr[-800:]}"}
            result: dict[str, Any] = {"config": label, **json.loads(lines[-1])}
            for server in (one, two):
                output = server.output()
                if "Traceback" in output:
                    result["server_log"] = output[-2000:]
            return result
    finally:
        redis.stop()


def run(options: Options, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every configuration in every round, interleaved; medians per configuration."""
    raise_open_files_limit(max(4096, options.subscribers * 2 + 1000))
    shapes = [options] + (
        []
        if options.small is None
        else [replace(options, subscribers=options.small[0], rate=options.small[1], small=None)]
    )
    records = []
    for round_no in range(1, options.rounds + 1):
        log(f"pubsub-redis round {round_no}/{options.rounds}")
        for label in CONFIGS:
            for shape in shapes:
                record = {"round": round_no, "subscribers": shape.subscribers, **measure(label, shape)}
                records.append(record)
                if "error" in record:
                    log(f"  {label:22} ERROR {record['error']}")
                else:
                    log(f"  {label:22} {shape.subscribers:>5} subscribers {record['deliveries_per_s']:>9,.0f} "
                        f"deliveries/s  p50 {record['p50_ms']:.2f} ms  p99 {record['p99_ms']:.2f} ms at "
                        f"{shape.rate:g}/s  {record['publishes_per_s']:>8,.0f} publishes/s")  # fmt: skip

    def summarize(subscribers: int) -> dict[str, dict[str, float]]:
        summary = {}
        for label in CONFIGS:
            good = [r for r in records if r["config"] == label and r["subscribers"] == subscribers and "error" not in r]
            if good:
                summary[label] = {
                    key: statistics.median(r[key] for r in good)
                    for key in ("deliveries_per_s", "p50_ms", "p99_ms", "publishes_per_s")
                }
        return summary

    data: dict[str, Any] = {"options": vars(options), "records": records, "summary": summarize(options.subscribers)}
    if options.small is not None:
        data["small_summary"] = summarize(options.small[0])
    return data


def markdown(data: dict[str, Any]) -> str:
    """The summary as a Markdown table (medians over rounds)."""
    options = data["options"]
    rows = [
        f"### Cross-process fan-out through Redis ({options['subscribers']:,} subscribers on 2 processes, "
        f"{options['rounds']} round(s), medians)\n",
        f"| configuration | deliveries/s (window {options['window']}) | p50 ms at {options['rate']:g}/s | "
        f"p99 ms at {options['rate']:g}/s | publishes/s alone |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in data["summary"].items():
        rows.append(
            f"| {label} | {row['deliveries_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['publishes_per_s']:,.0f} |"
        )
    small = options.get("small")
    if small and data.get("small_summary"):
        subscribers, rate = small
        rows += [
            f"\nThe same delivery rate with a smaller fan-out: {subscribers:,} subscribers at {rate:g}/s "
            f"({subscribers * rate:,.0f} deliveries/s)\n",
            f"| configuration | deliveries/s (window {options['window']}) | p50 ms at {rate:g}/s | "
            f"p99 ms at {rate:g}/s |",
            "|---|---:|---:|---:|",
        ]
        for label, row in data["small_summary"].items():
            rows.append(f"| {label} | {row['deliveries_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: the run (default), or ``client`` (the load generator, run by the run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "client"])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s with 200 subscribers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--urls", help="client: ws://host:port/sub,...")
    parser.add_argument("--redis", help="client: the Redis URL")
    parser.add_argument("--kind", choices=["raw", "scallion"], help="client: how to publish")
    parser.add_argument("--history", choices=["on", "off"], default="off")
    args = parser.parse_args(argv)
    options = Options(args.rounds, args.subscribers, args.window, args.rate, args.duration, args.warmup)
    if args.quick:
        options.rounds, options.subscribers, options.duration, options.warmup = 1, 200, 1.0, 0.2
    if args.mode == "client":
        import uvloop

        raise_open_files_limit(max(4096, options.subscribers + 1000))
        result = uvloop.run(client(args.urls.split(","), args.redis, args.kind, args.history, options))
        print(json.dumps(result), flush=True)
        return 0
    data = run(options)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    stem = results / ("pubsub-redis-quick" if args.quick else "pubsub-redis")
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(data))
    print(markdown(data))
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
