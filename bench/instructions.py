"""CPU instructions per echoed websocket message and per HTTP request, counted by callgrind.

Each configuration runs :mod:`bench.pingpong` twice under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0``: once with ``N`` messages (or requests) and once with 0. Everything else -- interpreter
start, imports, lifespan, connection setup and teardown -- is the same in both, so
``(instructions(N) - instructions(0)) / N`` is the cost of one message. Each pair is repeated (``--repeat``)
to show how closely runs agree; the report gives the median and the spread.

``python -m bench.instructions [--count 2000] [--repeat 2] [--jobs 2]`` (``make bench-instructions``)
writes ``bench/results/instructions.{json,md}`` (``instructions-partial`` with ``--only``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .apps import realtime_echo
from .report import machine_info

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

Budget = tuple[tuple[str, int], ...]
"""Instructions over the baseline a configuration may add, by interpreter (``("3.11", n), ("3.13", m)``; issue 9)."""

ECHO_GENERATOR: Budget = (("3.11", 4_000), ("3.13", 5_000))
ECHO_OBJECT: Budget = (("3.11", 4_000), ("3.13", 4_300))
HELLO: Budget = (("3.11", 14_000), ("3.13", 16_000))

SUBSCRIBERS = 1000
"""The broadcast's subscribers: each of its configurations publishes ``count // 100`` messages to this many."""


@dataclass(frozen=True)
class Config:
    """One application endpoint driven by the fake server."""

    name: str
    kind: str  # "ws", "http" or "broadcast" (``path`` the subscribers', ``pub_path`` the publisher's)
    app: str
    path: str
    baseline: str  # the config this one is compared with
    budget: Budget | None = None
    relative: tuple[str, int] | None = None
    """``(other, allowance)``: over its baseline, at most what ``other`` adds plus ``allowance``."""
    payload: str | None = None
    """The text the client sends (default: bench.pingpong's 64 bytes), and the reply it expects (default: it)."""
    reply: str | None = None
    pub_path: str | None = None
    fraction: float | None = None
    """Over its baseline, at most this fraction of the baseline's own count (0.10: 10% more)."""

    @property
    def unit(self) -> str:
        """What one count is of."""
        return {"ws": "message", "http": "request"}.get(self.kind, "delivery")

    def units(self, count: int) -> int:
        """How many units a run of ``count`` makes (a broadcast: ``count // 100`` publishes to everyone)."""
        return publishes(count) * SUBSCRIBERS if self.kind == "broadcast" else count


def publishes(count: int) -> int:
    """The broadcast's publishes for a run of ``count``."""
    return max(1, count // 100) if count else 0


CONFIGS: list[Config] = [
    Config("raw echo", "ws", "bench.apps.raw:app", "/ws", "raw echo"),
    Config("scallion generator echo (App)", "ws", "bench.apps.scallion_app:app", "/ws", "raw echo", ECHO_GENERATOR),
    Config("scallion object echo (App)", "ws", "bench.apps.scallion_app:app", "/ws-obj", "raw echo", ECHO_OBJECT),
    Config("scallion generator echo (build_server)", "ws", "bench.apps.scallion_core:app", "/ws", "raw echo",
           ECHO_GENERATOR),
    Config("starlette echo", "ws", "bench.apps.starlette_app:app", "/ws", "raw echo"),
    Config("raw hello", "http", "bench.apps.raw:app", "/", "raw hello"),
    Config("scallion App hello", "http", "bench.apps.scallion_app:app", "/", "raw hello", HELLO),
    Config("scallion build_server hello", "http", "bench.apps.scallion_core:app", "/", "raw hello",
           relative=("scallion App hello", 0)),
    Config("starlette hello", "http", "bench.apps.starlette_app:app", "/", "raw hello"),
    Config("raw json", "http", "bench.apps.raw:app", "/json", "raw json"),
    Config("scallion App json", "http", "bench.apps.scallion_app:app", "/json", "raw json",
           relative=("scallion App hello", 3_000)),
    Config("raw broadcast, a queue each", "broadcast", "bench.apps.raw:app", "/subq", "raw broadcast, a queue each",
           pub_path="/pubq"),
    Config("scallion generator broadcast (pubsub)", "broadcast", "bench.apps.scallion_app:app", "/subq",
           "raw broadcast, a queue each", pub_path="/pubq", fraction=0.10),
    Config("scallion object broadcast (pubsub)", "broadcast", "bench.apps.scallion_app:app", "/subq-obj",
           "raw broadcast, a queue each", pub_path="/pubq-obj", fraction=0.10),
]  # fmt: skip
"""What ``make bench-instructions`` counts; ``--only`` picks some by name."""

OPTIONAL: list[Config] = [
    Config("litestar echo", "ws", "bench.apps.litestar_app:app", "/ws", "raw echo"),
    Config("litestar hello", "http", "bench.apps.litestar_app:app", "/", "raw hello"),
    Config("starlette json", "http", "bench.apps.starlette_app:app", "/json", "raw json"),
    Config("floor: generator driver", "ws", "bench.apps.floors:app", "/gen", "raw echo"),
    Config("floor: generator driver, ws_send", "ws", "bench.apps.floors:app", "/gen-send", "raw echo"),
    Config("floor: generator in one coroutine, ws_send", "ws", "bench.apps.floors:app", "/gen-flat", "raw echo"),
    Config("floor: object", "ws", "bench.apps.floors:app", "/obj", "raw echo"),
    Config("floor: object through a proxy", "ws", "bench.apps.floors:app", "/obj-proxy", "raw echo"),
    Config("floor: generator in one coroutine, ws_send, hardened", "ws", "bench.apps.floors:app", "/gen-hard",
           "raw echo"),
    Config("floor: object through a C-level proxy, hardened", "ws", "bench.apps.floors:app", "/obj-hard",
           "raw echo"),
    Config("floor: HTTP hello, a response dict built and read (build_server)", "http", "bench.apps.floors:app",
           "/hello-dict", "raw hello"),
    Config("floor: HTTP hello, a context variable around a str (App)", "http", "bench.apps.floors:app",
           "/hello-ctx", "raw hello"),
    Config("realtime: plain echo of the event's JSON", "ws", "bench.apps.realtime_echo:app", "/json",
           "realtime: plain echo of the event's JSON", payload=realtime_echo.REQUEST),
    Config("realtime: typed event echoed", "ws", "bench.apps.realtime_echo:app", "/realtime",
           "realtime: plain echo of the event's JSON", payload=realtime_echo.REQUEST, reply=realtime_echo.REPLY),
]  # fmt: skip
"""More configurations, counted only when named with ``--only``."""

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


@dataclass
class Result:
    """Instructions per message (or request) of one configuration on one interpreter, one value per repeat."""

    config: Config
    version: str = ""
    """The interpreter, ``"3.11"``."""
    per_message: list[float] = field(default_factory=list)
    totals: list[tuple[int, int]] = field(default_factory=list)  # (instructions with 0, with N)

    @property
    def median(self) -> float:
        """The median over repeats."""
        return statistics.median(self.per_message)

    @property
    def spread(self) -> float:
        """max - min over repeats, relative to the median."""
        return (max(self.per_message) - min(self.per_message)) / self.median if self.median else 0.0


def messages(config: Config) -> list[str]:
    """The ``--payload``/``--reply`` (``--pub-path``/``--subscribers``) options of bench.pingpong for ``config``."""
    options = ["--payload", config.payload] if config.payload else []
    options += ["--reply", config.reply] if config.reply else []
    if config.kind == "broadcast":
        options += ["--pub-path", config.pub_path or "/pubq", "--subscribers", str(SUBSCRIBERS)]
    return options


def callgrind(config: Config, count: int, python: str) -> int:
    """Instructions executed by one fake-server run of ``count`` messages under callgrind."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        python, "-m", "bench.pingpong", "--app", config.app, "--kind", config.kind, "--path", config.path,
        "--count", str(publishes(count) if config.kind == "broadcast" else count), *messages(config),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{config.name} with {count} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def version_of(python: str) -> str:
    """``"3.11"`` for an interpreter path."""
    done = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def warm_up(configs: Sequence[Config], python: str) -> None:
    """Run every app once outside callgrind, so that its ``.pyc`` files exist before anything is counted."""
    for app in dict.fromkeys(c.app for c in configs):
        config = next(c for c in configs if c.app == app)
        command = [python, "-m", "bench.pingpong", "--app", app, "--kind", config.kind, "--path", config.path,
                   "--count", "1" if config.kind == "broadcast" else "10", *messages(config)]  # fmt: skip
        subprocess.run(command, cwd=ROOT, capture_output=True, timeout=300, check=True)


def measure(configs: Sequence[Config], count: int, repeat: int, jobs: int, pythons: Sequence[str]) -> list[Result]:
    """Run every (interpreter, config, 0 | count, repeat) under callgrind, ``jobs`` at a time."""
    for python in pythons:
        warm_up(configs, python)
    # a config's runs go back to back, so a repeat pair sees the same code even while scallion is being edited
    runs = [(py, config, n, r) for py in pythons for config in configs for r in range(repeat) for n in (0, count)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        totals = list(pool.map(lambda run: callgrind(run[1], run[2], run[0]), runs))
    by_run = dict(zip(runs, totals, strict=True))
    results = []
    for python in pythons:
        version = version_of(python)
        for config in configs:
            result = Result(config, version)
            for r in range(repeat):
                empty, full = by_run[(python, config, 0, r)], by_run[(python, config, count, r)]
                result.totals.append((empty, full))
                result.per_message.append((full - empty) / config.units(count))
            results.append(result)
    return results


def extras(results: Sequence[Result]) -> dict[tuple[str, str], float]:
    """Instructions over the baseline, by (interpreter, configuration name)."""
    medians = {(r.version, r.config.name): r.median for r in results}
    return {
        (r.version, r.config.name): r.median - medians[(r.version, r.config.baseline)]
        for r in results
        if (r.version, r.config.baseline) in medians
    }


def verdict(result: Result, over: dict[tuple[str, str], float]) -> str:
    """The budget check of one result: ``"+4,000: within"``, ``"<= App hello + 3,000 (+17,224): **over**"``."""
    config, extra = result.config, over.get((result.version, result.config.name))
    if extra is None or config.baseline == config.name:
        return ""
    budget = dict(config.budget or ())
    if result.version in budget:
        limit = budget[result.version]
        return f"+{limit:,}: {'within' if extra <= limit else '**over**'}"
    if config.fraction is not None:
        limit = (result.median - extra) * config.fraction
        return f"+{config.fraction:.0%} (+{limit:,.0f}): {'within' if extra <= limit else '**over**'}"
    if config.relative is not None and (result.version, config.relative[0]) in over:
        other, allowance = config.relative
        limit = over[(result.version, other)] + allowance
        return f"<= {other} + {allowance:,} ({limit:+,.0f}): {'within' if extra <= limit else '**over**'}"
    return ""


def table(results: Sequence[Result]) -> str:
    """The markdown report: per message, the extra cost over the baseline, and the budget check, one column group
    per interpreter."""
    over = extras(results)
    versions = list(dict.fromkeys(r.version for r in results))
    by_key = {(r.version, r.config.name): r for r in results}
    head = "| configuration | unit |" + "".join(f" {v} | over baseline | budget |" for v in versions)
    lines = [head, "|---|---|" + "---:|---:|---|" * len(versions)]
    for config in dict.fromkeys(r.config for r in results):
        unit = config.unit
        cells = ""
        for version in versions:
            result = by_key.get((version, config.name))
            if result is None:
                cells += " | | |"
                continue
            extra = over.get((version, config.name))
            extra_text = "" if extra is None or config.baseline == config.name else f"{extra:+,.0f}"
            cells += f" {result.median:,.0f} | {extra_text} | {verdict(result, over)} |"
        lines.append(f"| {config.name} | {unit} |{cells}")
    return "\n".join(lines)


def write(
    results: Sequence[Result], count: int, repeat: int, elapsed: float, stem: str = "instructions"
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``bench/results``."""
    RESULTS.mkdir(exist_ok=True)
    data = {
        "count": count,
        "repeat": repeat,
        "elapsed_s": round(elapsed, 1),
        "machine": machine_info(),
        "results": [
            {**asdict(r.config), "python": r.version, "per_message": r.per_message, "median": r.median}
            | {"totals": r.totals}
            for r in results
        ],
    }
    json_path = RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path = RESULTS / f"{stem}.md"
    md_path.write_text(
        f"# Instructions per message / request\n\ncallgrind, fake ping-pong server on uvloop, N={count}, "
        f"{repeat} repeat(s), PYTHONHASHSEED=0, after a warm-up run; `(I(N) - I(0)) / N`; budgets of issue 9 "
        f"per interpreter. A broadcast runs N/100 publishes to {SUBSCRIBERS:,} subscribers; its unit is one "
        f"delivery.\n\n{table(results)}\n"
    )
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="messages / requests per run (default 2000)")
    parser.add_argument("--repeat", type=int, default=2, help="independent repeats of each pair (default 2)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel valgrinds")
    parser.add_argument("--only", nargs="*", help="configuration names (substring match), optional ones too")
    parser.add_argument(
        "--python", nargs="+", default=[sys.executable], help="the interpreter(s) to run the apps with (one table)"
    )
    parser.add_argument("--out", help="result file stem in bench/results (default: instructions[-partial])")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    configs = CONFIGS
    if args.only:
        configs = [c for c in CONFIGS + OPTIONAL if any(word in c.name for word in args.only)]
        # every config is reported next to its baseline
        names = {c.name for c in configs}
        configs = [c for c in CONFIGS + OPTIONAL if c.name in names or c.name in {x.baseline for x in configs}]
    started = time.monotonic()
    results = measure(configs, args.count, args.repeat, args.jobs, args.python)
    elapsed = time.monotonic() - started
    # a partial run (--only) does not overwrite the full report that docs/performance.md quotes
    json_path, md_path = write(
        results, args.count, args.repeat, elapsed, args.out or ("instructions-partial" if args.only else "instructions")
    )
    print(table(results))
    print(f"\n{len(configs)} configurations in {elapsed:.0f} s; wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
