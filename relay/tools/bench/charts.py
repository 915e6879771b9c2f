"""PNG charts of the results (matplotlib, from the optional `bench` extra). Each chart
function takes the loaded results by name and returns the file it wrote, or None when its
scenario has no result yet."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Results = Mapping[str, dict[str, Any]]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def _done(results: Results, name: str) -> dict[str, Any] | None:
    doc = results.get(name)
    return doc["result"] if doc and doc["result"] else None


def throughput(results: Results, out: Path) -> Path | None:
    kinds = [k for k in ("web", "mobile") if _done(results, f"throughput-{k}")]
    if not kinds:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.4 * len(kinds), 3.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        r = results[f"throughput-{kind}"]["result"]
        e2e = (r.get("end_to_end") or {}).get("per_s") or 0
        floor = (r.get("floor") or {}).get("per_s") or 0
        ax.bar(["floor", "relay"], [floor, e2e], color=["#999999", "#1f77b4"])
        ratio = r.get("ratio")
        ax.set_title(f"{kind}: {ratio:.2f} of floor" if ratio else f"{kind}: no end to end")
        ax.set_ylabel("events/s")
    fig.suptitle("Throughput vs its floor, same run")
    return _save(fig, out / "throughput.png")


def cpu(results: Results, out: Path) -> Path | None:
    bars: list[tuple[str, float]] = []
    for kind in ("web", "mobile"):
        r = _done(results, f"throughput-{kind}")
        if r is None:
            continue
        for label, part in (("relay", "end_to_end"), ("floor", "floor")):
            value = (r.get(part) or {}).get("cpu_s_per_1000")
            if value is not None:
                bars.append((f"{kind} {label}", value))
    if not bars:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar([b[0] for b in bars], [b[1] for b in bars], color="#ff7f0e")
    ax.axhline(0.030, color="red", linestyle="--", label="web target (30 us/event)")
    ax.set_yscale("log")  # app conversions cost far more than web ones
    ax.set_ylabel("CPU seconds per 1,000 events")
    ax.set_title("CPU per 1,000 events")
    ax.legend()
    return _save(fig, out / "cpu.png")


def latency(results: Results, out: Path) -> Path | None:
    r = _done(results, "latency")
    if r is None:
        return None
    kinds = [k for k in ("web", "mobile") if isinstance(r.get(k), dict) and "p99_ms" in r[k]]
    if not kinds:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, kind in enumerate(kinds):
        values = [r[kind][f"p{p}_ms"] for p in (50, 95, 99)]
        ax.bar([i - 0.25, i, i + 0.25], values, 0.25, color=["#2ca02c", "#bcbd22", "#d62728"])
    ax.axhline(r["linger_ms"] + 150, color="red", linestyle="--", label="p99 target")
    ax.set_xticks(range(len(kinds)), [f"{k} (p50/p95/p99)" for k in kinds])
    ax.set_ylabel("ms, Kafka append to X's 2xx")
    ax.set_title(f"Latency at {r[kinds[0]]['load']:.0%} of capacity")
    ax.legend()
    return _save(fig, out / "latency.png")


def budget(results: Results, out: Path) -> Path | None:
    r = _done(results, "budget")
    if r is None or "accepted_per_window" not in r:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for series in r["accepted_per_window"].values():
        ax.plot(range(len(series)), series, marker=".", linewidth=0.8, alpha=0.7)
    ax.axhline(r["limit"], color="red", linestyle="--", label="budget per window")
    ax.axhline(r["limit"] * 0.98, color="orange", linestyle=":", label="98%")
    ax.set_xlabel(f"window ({r['window_s']:g}s; 0 = partial first window)")
    ax.set_ylabel("accepted events")
    ax.set_title(f"Accepted per window, {r['accounts']} accounts, {r['workers']} workers")
    ax.legend()
    return _save(fig, out / "budget.png")


def chaos(results: Results, out: Path) -> Path | None:
    kinds = [k for k in ("web", "mobile") if (_done(results, f"chaos-{k}") or {}).get("kills")]
    if not kinds:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for kind in kinds:
        per_kill = results[f"chaos-{kind}"]["result"]["duplicates_per_kill"]
        ax.plot(range(1, len(per_kill) + 1), per_kill, marker="o", label=kind)
    ax.set_xlabel("kill")
    ax.set_ylabel("duplicates after the kill")
    ax.set_title("kill -9: duplicates per kill (lost: see table)")
    ax.legend()
    return _save(fig, out / "chaos.png")


def hot_cold(results: Results, out: Path) -> Path | None:
    r = _done(results, "hot-cold")
    if r is None or "p99_ms" not in r.get("baseline", {}):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, phase in enumerate(("baseline", "with_hot")):
        values = [r[phase].get(f"p{p}_ms", 0) for p in (50, 95, 99)]
        ax.bar([i - 0.25, i, i + 0.25], values, 0.25, color=["#2ca02c", "#bcbd22", "#d62728"])
    ax.set_xticks([0, 1], ["cold, alone", "cold, hot backlog"])
    ax.set_ylabel("ms (p50/p95/p99)")
    ax.set_title("Cold accounts' latency beside a hot one")
    return _save(fig, out / "hot-cold.png")


def memory(results: Results, out: Path) -> Path | None:
    r = _done(results, "memory")
    if r is None or "peak_rss_mb" not in r:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.2))
    ax.bar(["worker"], [r["peak_rss_mb"]], color="#9467bd")
    ax.axhline(300, color="red", linestyle="--", label="target")
    ax.set_ylabel("peak RSS, MB")
    ax.set_title(f"{r['events']:,} events, {r['accounts']:,} accounts")
    ax.legend()
    return _save(fig, out / "memory.png")


CHARTS: tuple[Callable[[Results, Path], Path | None], ...] = (
    throughput,
    cpu,
    latency,
    budget,
    chaos,
    hot_cold,
    memory,
)


def draw_all(results: Results, out: Path) -> list[Path]:
    """Every chart that has data; [] without matplotlib (`pip install '.[bench]'`)."""
    try:
        _pyplot()
    except ImportError:
        return []
    out.mkdir(parents=True, exist_ok=True)
    return [p for chart in CHARTS if (p := chart(results, out)) is not None]
