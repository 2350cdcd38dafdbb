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

from .report import machine_info

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

BUDGET_MESSAGE = 3_000
"""Issue 4: scallion may add at most this many instructions per echoed message over raw ASGI."""
BUDGET_REQUEST = 15_000
"""Issue 4: scallion's ``App`` may add at most this many instructions per HTTP hello over raw ASGI."""


@dataclass(frozen=True)
class Config:
    """One application endpoint driven by the fake server."""

    name: str
    kind: str  # "ws" or "http"
    app: str
    path: str
    baseline: str  # the config this one is compared with
    budget: int | None = None


CONFIGS: list[Config] = [
    Config("raw echo", "ws", "bench.apps.raw:app", "/ws", "raw echo"),
    Config("scallion generator echo (App)", "ws", "bench.apps.scallion_app:app", "/ws", "raw echo", BUDGET_MESSAGE),
    Config("scallion object echo (App)", "ws", "bench.apps.scallion_app:app", "/ws-obj", "raw echo", BUDGET_MESSAGE),
    Config(
        "scallion generator echo (build_server)",
        "ws",
        "bench.apps.scallion_core:app",
        "/ws",
        "raw echo",
        BUDGET_MESSAGE,
    ),
    Config("starlette echo", "ws", "bench.apps.starlette_app:app", "/ws", "raw echo"),
    Config("raw hello", "http", "bench.apps.raw:app", "/", "raw hello"),
    Config("scallion App hello", "http", "bench.apps.scallion_app:app", "/", "raw hello", BUDGET_REQUEST),
    Config("scallion build_server hello", "http", "bench.apps.scallion_core:app", "/", "raw hello"),
    Config("starlette hello", "http", "bench.apps.starlette_app:app", "/", "raw hello"),
]
"""What ``make bench-instructions`` counts; ``--only`` picks some by name."""

OPTIONAL: list[Config] = [
    Config("litestar echo", "ws", "bench.apps.litestar_app:app", "/ws", "raw echo"),
    Config("litestar hello", "http", "bench.apps.litestar_app:app", "/", "raw hello"),
    Config("raw json", "http", "bench.apps.raw:app", "/json", "raw json"),
    Config("scallion App json", "http", "bench.apps.scallion_app:app", "/json", "raw json"),
    Config("starlette json", "http", "bench.apps.starlette_app:app", "/json", "raw json"),
    Config("floor: generator driver", "ws", "bench.apps.floors:app", "/gen", "raw echo"),
    Config("floor: generator driver, ws_send", "ws", "bench.apps.floors:app", "/gen-send", "raw echo"),
    Config("floor: object", "ws", "bench.apps.floors:app", "/obj", "raw echo"),
    Config("floor: object through a proxy", "ws", "bench.apps.floors:app", "/obj-proxy", "raw echo"),
]
"""More configurations, counted only when named with ``--only``."""

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


@dataclass
class Result:
    """Instructions per message (or request) of one configuration, one value per repeat."""

    config: Config
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


def callgrind(config: Config, count: int, python: str) -> int:
    """Instructions executed by one fake-server run of ``count`` messages under callgrind."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        python, "-m", "bench.pingpong", "--app", config.app, "--kind", config.kind, "--path", config.path,
        "--count", str(count),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{config.name} with {count} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def measure(configs: Sequence[Config], count: int, repeat: int, jobs: int, python: str) -> list[Result]:
    """Run every (config, 0 | count, repeat) under callgrind, ``jobs`` at a time."""
    # a config's runs go back to back, so a repeat pair sees the same code even while scallion is being edited
    runs = [(config, n, r) for config in configs for r in range(repeat) for n in (0, count)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        totals = list(pool.map(lambda run: callgrind(run[0], run[1], python), runs))
    by_run = dict(zip(runs, totals, strict=True))
    results = []
    for config in configs:
        result = Result(config)
        for r in range(repeat):
            empty, full = by_run[(config, 0, r)], by_run[(config, count, r)]
            result.totals.append((empty, full))
            result.per_message.append((full - empty) / count)
        results.append(result)
    return results


def table(results: Sequence[Result]) -> str:
    """The markdown report: per message, the extra cost over the baseline, and the budget check."""
    by_name = {result.config.name: result for result in results}
    lines = [
        "| configuration | unit | instructions | over baseline | budget | repeat spread |",
        "|---|---|---:|---:|---|---:|",
    ]
    for result in results:
        config = result.config
        unit = "message" if config.kind == "ws" else "request"
        base = by_name.get(config.baseline)
        extra = result.median - base.median if base is not None and base is not result else None
        extra_text = "" if extra is None else f"{extra:+,.0f}"
        budget = ""
        if config.budget is not None and extra is not None:
            budget = f"+{config.budget:,}: {'within' if extra <= config.budget else '**over**'}"
        lines.append(
            f"| {config.name} | {unit} | {result.median:,.0f} | {extra_text} | {budget} | {result.spread:.1e} |"
        )
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
            {**asdict(r.config), "per_message": r.per_message, "median": r.median, "totals": r.totals} for r in results
        ],
    }
    json_path = RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path = RESULTS / f"{stem}.md"
    md_path.write_text(
        f"# Instructions per message / request\n\ncallgrind, fake ping-pong server on uvloop, N={count}, "
        f"{repeat} repeat(s), PYTHONHASHSEED=0; `(I(N) - I(0)) / N`.\n\n{table(results)}\n"
    )
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="messages / requests per run (default 2000)")
    parser.add_argument("--repeat", type=int, default=2, help="independent repeats of each pair (default 2)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel valgrinds")
    parser.add_argument("--only", nargs="*", help="configuration names (substring match), optional ones too")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run the apps with")
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
