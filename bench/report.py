"""Turning measurements into the machine description, the summary, the markdown table and the chart."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PACKAGES = [
    "scallion", "uvicorn", "granian", "uvloop", "httptools", "websockets", "wsproto", "picows", "starlette",
    "litestar", "emmett", "emmett-core", "msgspec", "matplotlib",
]  # fmt: skip

TARGETS = {"echo": 0.97, "http-hello": 0.90, "http-json": 0.90}
"""Issue 4's ratio-to-raw targets, drawn on the chart."""

WORKLOAD_TITLES = {
    "echo": "websocket echo (msgs/s)",
    "http-hello": "HTTP hello (req/s)",
    "http-json": "HTTP JSON (req/s)",
    "broadcast": "broadcast to 1,000 sockets, a queue each (deliveries/s)",
    "broadcast-sequential": "broadcast to 1,000 sockets, sent in turn (deliveries/s)",
}

Record = dict[str, Any]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _command_output(command: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    root = Path(__file__).resolve().parent.parent
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "packages": {name: _version(name) for name in PACKAGES},
        "wrk": _command_output(["wrk", "-v"]),
        "valgrind": _command_output(["valgrind", "--version"]),
        "commit": _command_output(["git", "-C", str(root), "rev-parse", "--short", "HEAD"]),
        "scallion_modified": bool(_command_output(["git", "-C", str(root), "status", "--porcelain", "scallion"])),
    }


def machine_markdown(info: dict[str, Any]) -> str:
    """The machine as a short markdown list."""
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items() if version)
    return "\n".join(
        [
            f"- CPU: {info['cpu']}, {info['nproc']} cores (nproc); kernel {info['kernel']}",
            f"- Python {info['python']} ({info['implementation']}); commit {info['commit']}"
            + (" with uncommitted changes in scallion/" if info.get("scallion_modified") else ""),
            f"- {packages}",
            f"- {info['wrk'] or 'wrk: not installed'}; {info['valgrind'] or 'valgrind: not installed'}",
        ]
    )


# -- summary ------------------------------------------------------------------------------------------
def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(records: Iterable[Record], baseline_server: dict[str, str]) -> list[Record]:
    """Per (workload, framework, server): median/min/max of the value and the latencies, and the ratio to raw
    on the same server (the median of per-round ratios, so each ratio pairs measurements made minutes apart
    at most). ``baseline_server`` maps a server to the one raw runs on (``granian-rsgi`` -> ``granian``)."""
    records = [r for r in records if r.get("value")]
    raw = {(r["workload"], r["server"], r["round"]): r["value"] for r in records if r["framework"] == "raw"}
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for record in records:
        groups.setdefault((record["workload"], record["framework"], record["server"]), []).append(record)
    rows = []
    for (workload, framework, server), group in groups.items():
        row: Record = {"workload": workload, "framework": framework, "server": server, "rounds": len(group)}
        row.update(_spread([r["value"] for r in group]))
        for key in ("p50_us", "p99_us"):
            values = [r[key] for r in group if r.get(key) is not None]
            if values:
                row[key] = statistics.median(values)
        base_server = baseline_server.get(server, server)
        ratios = [
            r["value"] / raw[(workload, base_server, r["round"])]
            for r in group
            if (workload, base_server, r["round"]) in raw
        ]
        if ratios:
            row["ratio"] = _spread(ratios)
        rows.append(row)
    return rows


# -- markdown -----------------------------------------------------------------------------------------
def _rate(value: float) -> str:
    return f"{value:,.0f}"


def results_markdown(
    rows: Sequence[Record], order: Sequence[str], servers: Sequence[str], titles: dict[str, str] | None = None
) -> str:
    """One table per workload: rate median and range, ratio to raw, and latencies (echo and HTTP)."""
    titles = {**WORKLOAD_TITLES, **(titles or {})}
    parts = []
    rank = {name: i for i, name in enumerate(order)}
    server_rank = {name: i for i, name in enumerate(servers)}
    for workload, title in titles.items():
        chosen = [r for r in rows if r["workload"] == workload]
        if not chosen:
            continue
        chosen.sort(key=lambda r: (server_rank.get(r["server"], 99), rank.get(r["framework"], 99)))
        latency = workload in ("echo", "http-hello", "http-json")
        header = "| server | framework | median | min - max | ratio to raw | ratio min - max |"
        rule = "|---|---|---:|---:|---:|---:|"
        if latency:
            header += " p50 ms | p99 ms |"
            rule += "---:|---:|"
        lines = [f"### {title}", "", header, rule]
        for r in chosen:
            ratio = r.get("ratio")
            line = (
                f"| {r['server']} | {r['framework']} | {_rate(r['median'])} | {_rate(r['min'])} - {_rate(r['max'])} "
                f"| {ratio['median']:.2f} | {ratio['min']:.2f} - {ratio['max']:.2f} |"
                if ratio
                else f"| {r['server']} | {r['framework']} | {_rate(r['median'])} | {_rate(r['min'])} - "
                f"{_rate(r['max'])} | | |"
            )
            if latency:
                p50, p99 = r.get("p50_us"), r.get("p99_us")
                line += f" {p50 / 1000:.2f} |" if p50 is not None else " |"
                line += f" {p99 / 1000:.2f} |" if p99 is not None else " |"
            lines.append(line)
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def memory_markdown(memory: Sequence[Record]) -> str:
    """The idle-connection memory table."""
    lines = [
        "| server | framework | connections | RSS before (MiB) | RSS after (MiB) | KiB per connection |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for m in memory:
        if m.get("error"):
            lines.append(f"| {m['server']} | {m['framework']} | {m.get('connections', 0)} | | | error: {m['error']} |")
            continue
        lines.append(
            f"| {m['server']} | {m['framework']} | {m['connections']:,} | {m['rss_before'] / 2**20:.1f} "
            f"| {m['rss_after'] / 2**20:.1f} | {m['per_connection'] / 1024:.2f} |"
        )
    return "\n".join(lines)


# -- chart --------------------------------------------------------------------------------------------
def chart(
    rows: Sequence[Record],
    order: Sequence[str],
    servers: Sequence[str],
    path: Path,
    title: str,
    titles: dict[str, str] | None = None,
) -> Path:
    """Horizontal bars of the ratio to raw, one panel per workload, one colour per server; whiskers span the
    rounds' min to max (cut at the right edge); a solid line marks 1.0 and a dashed one issue 4's target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    titles = {**WORKLOAD_TITLES, **(titles or {})}
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    color = {server: palette[i % len(palette)] for i, server in enumerate(servers)}
    workloads = [
        w for w in titles if any(r["workload"] == w and "ratio" in r and r["framework"] != "raw" for r in rows)
    ]
    bars = []  # bars per panel, so that every bar gets the same height
    for workload in workloads:
        chosen = [r for r in rows if r["workload"] == workload and "ratio" in r and r["framework"] != "raw"]
        servers_in = {r["server"] for r in chosen}
        bars.append(len({r["framework"] for r in chosen}) * max(1, len(servers_in - {"granian-rsgi"})))
    fig, axes = plt.subplots(
        len(workloads), 1, figsize=(9, 1.2 + sum(0.8 + 0.2 * n for n in bars)), squeeze=False,
        gridspec_kw={"height_ratios": [0.8 + 0.2 * n for n in bars]},
    )  # fmt: skip
    used: set[str] = set()
    for ax, workload in zip(axes[:, 0], workloads, strict=True):
        chosen = [r for r in rows if r["workload"] == workload and "ratio" in r and r["framework"] != "raw"]
        frameworks = [f for f in order if any(r["framework"] == f for r in chosen)]
        present = [s for s in servers if any(r["server"] == s for r in chosen)]
        used.update(present)
        height = 0.8 / max(1, len(present))
        for j, server in enumerate(present):
            ys, values, low, high = [], [], [], []
            for i, framework in enumerate(frameworks):
                row = next((r for r in chosen if r["framework"] == framework and r["server"] == server), None)
                if row is None:
                    continue
                ratio = row["ratio"]
                ys.append(i + (j - (len(present) - 1) / 2) * height)
                values.append(ratio["median"])
                low.append(ratio["median"] - ratio["min"])
                high.append(ratio["max"] - ratio["median"])
            ax.barh(
                ys,
                values,
                height=height * 0.95,
                xerr=[low, high],
                color=color[server],
                capsize=2,
                error_kw={"elinewidth": 0.8},
            )
            for y, value in zip(ys, values, strict=True):
                ax.text(0.01, y, f"{value:.2f}", va="center", fontsize=6.5, color="white")
        ax.set_yticks(range(len(frameworks)), frameworks)
        ax.set_ylim(len(frameworks) - 0.5, -0.5)
        ax.axvline(1.0, color="black", linewidth=0.8)
        target = TARGETS.get(workload)
        if target:
            ax.axvline(target, color="gray", linestyle="--", linewidth=0.8)
        ax.set_title(f"{titles[workload]}: ratio to raw ASGI on the same server", fontsize=10)
        # whiskers of a disturbed round may run off the right edge; the table has every number
        ax.set_xlim(0, max(1.25, *(r["ratio"]["median"] * 1.2 for r in chosen)))
        ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=color[s], label=s) for s in servers if s in used]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, 0.965))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
