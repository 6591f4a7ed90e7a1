#!/usr/bin/env python3
"""The benchmark harness behind `make bench` and `make bench-quick` (see ci/bench.sh).

Reads the case registry bench/cases.toml, runs every case in a fresh process several
times, and writes:

  BENCHMARKS.md                 tables per workload: median, range, ratios, targets
  bench-results/results.json    everything, machine-readable
  bench-results/chart.png       ratios against their targets (needs matplotlib)

Runs are grouped by workload: for run k = 1..R, every case of the group runs once, so
run k of a row and run k of its peer are measured back to back; ratios are taken pair
by pair (run k / run k of the peer) and summarized by their median and range.

--quick runs only the rows marked `quick = true` (and the peers they compare with),
once each, writes under bench-results/tmp/, and exits 1 when a ratio is more than 2x
worse than in the committed bench-results/results.json: worse than twice the committed
median and than every committed run (see `regressed`).

Only the standard library is needed, except matplotlib for the chart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GROUPS = {
    "wire": (
        "Wire format — encode plus decode of one message, one thread",
        "The core's codec alone (no ports): the W1 message encoded and decoded n times "
        "through serde (`Tick`) or through `Value`; and a message holding a 64 KiB "
        "buffer, which travels in the side table (the decoded buffer is checked to be "
        "the very same allocation: not copied). ns per encode+decode. Lower is better.",
    ),
    "W1": (
        "W1 — throughput, one sender thread to one receiver thread",
        "n messages `{\"seq\": i, \"name\": \"tick\"}` (Rust peers move the plain struct "
        "`Tick { seq: u64, name: String }`); the receiver decodes and counts them. "
        "Messages/s from the first send to the last receive. Higher is better.",
    ),
    "W2": (
        "W2 — round-trip latency between two threads",
        "n round trips of the W1 message (after n/100 untimed warm-up trips, at most "
        "1,000); one `Instant`/`perf_counter_ns`/`hrtime` pair per round trip, the same "
        "method for every mechanism. The figure is the p50 in µs; p99 and mean beside "
        "it. Lower is better. W2 depends on the host's load: compare within one run.",
    ),
    "W3a": (
        "W3a — 64 KiB buffers, copied",
        "n messages each carrying a copy of the sender's one 64 KiB buffer (stamped "
        "with its sequence number); the receiver checks length and stamp. MB/s "
        "(10^6 bytes). Higher is better.",
    ),
    "W3b": (
        "W3b — 64 KiB buffers, transferred",
        "n messages each moving a fresh 64 KiB buffer that the sender allocates, fills "
        "and stamps (the same producer work for every mechanism); the mechanism moves "
        "ownership without copying the payload. MB/s (10^6 bytes). Higher is better.",
    ),
    "W4": (
        "W4 — one sender, four receivers, each receives all n messages",
        "Delivered messages/s = 4·n / time (first send to the last receiver's last "
        "receive). Higher is better.",
    ),
    "W5": (
        "W5 — memory per queued message",
        "n W1 messages posted and not received, in a fresh process; resident memory "
        "growth (VmRSS / process.memoryUsage().rss before and after) per message, in "
        "bytes. `payload` is the message's own size (Rust peers: the struct and its "
        "name; the core: its own count of queued bytes per message, i.e. the encoded "
        "message; Node: the v8-serialized size); `overhead` = growth − payload. "
        "Lower is better.",
    ),
    "scale": (
        "Scaling — PortCollection broadcast vs N separate posts",
        "One sender, N receiver threads each receiving all n messages, through one "
        "`PortCollection::post` or N `MessagePort::post` calls; delivered messages/s "
        "= N·n / time. Higher is better.",
    ),
    "live": (
        "Live channels — W1 with 1 or 1,000 channels alive",
        "W1 with K channels created and kept alive; message i travels through "
        "channel i mod K (all K queues in use, round-robin) and the receiver receives "
        "from channel i mod K. Messages/s. Higher is better.",
    ),
}

HIGHER_IS_BETTER = {"msg/s": True, "MB/s": True, "us": False, "B/msg": False, "ns": False}
EXTRA_FIELDS = {
    "us": [("p99", "p99 µs"), ("mean", "mean µs")],
    "B/msg": [("payload", "payload B"), ("overhead", "overhead B")],
}


# ------------------------------------------------------------------ the registry


def parse_target(text: str) -> tuple[str, float]:
    m = re.fullmatch(r"\s*(>=|<=)\s*([0-9]*\.?[0-9]+)\s*", text)
    if not m:
        raise ValueError(f"bad target {text!r}: write '>= 0.5' or '<= 2'")
    return m.group(1), float(m.group(2))


def parse_limit(text: str) -> tuple[str, str, float]:
    m = re.fullmatch(r"\s*(\w+)\s*(>=|<=)\s*([0-9]*\.?[0-9]+)\s*", text)
    if not m:
        raise ValueError(f"bad limit {text!r}: write 'overhead <= 100'")
    return m.group(1), m.group(2), float(m.group(3))


def load_cases(path: Path) -> list[dict]:
    cases = tomllib.loads(path.read_text())["case"]
    ids = set()
    for c in cases:
        for key in ("id", "group", "mechanism", "face"):
            if key not in c:
                raise SystemExit(f"{path}: a case lacks {key!r}: {c}")
        if c["id"] in ids:
            raise SystemExit(f"{path}: duplicate id {c['id']!r}")
        ids.add(c["id"])
        if c["group"] not in GROUPS:
            raise SystemExit(f"{path}: {c['id']}: unknown group {c['group']!r}")
        if c.get("status") != "pending" and ("cmd" not in c or "n" not in c):
            raise SystemExit(f"{path}: {c['id']}: needs cmd and n (or status = \"pending\")")
        compare = list(c.get("compare", []))
        if "peer" in c:
            compare.insert(0, {"peer": c["peer"], "target": c.get("target")})
        c["compare"] = [
            {"peer": x["peer"], "target": x.get("target") or None} for x in compare
        ]
        for x in c["compare"]:
            if x["target"]:
                parse_target(x["target"])
        if c.get("limit"):
            parse_limit(c["limit"])
    by_id = {c["id"]: c for c in cases}
    for c in cases:
        for x in c["compare"]:
            p = by_id.get(x["peer"])
            if p is None:
                raise SystemExit(f"{path}: {c['id']}: unknown peer {x['peer']!r}")
            if p["group"] != c["group"]:
                raise SystemExit(f"{path}: {c['id']}: peer {x['peer']!r} is in another group")
    return cases


# ------------------------------------------------------------------- formatting


def fmt_num(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if unit == "msg/s":
        if v >= 1e6:
            return f"{v / 1e6:.2f} M"
        if v >= 1e3:
            return f"{v / 1e3:.0f} k"
        return f"{v:.0f}"
    if unit == "MB/s":
        return f"{v:,.0f}"
    if unit in ("us", "µs"):
        return f"{v:.3g}" if v < 1000 else f"{v:,.0f}"
    if unit in ("B/msg", "B"):
        return f"{v:.1f}"
    return f"{v:.4g}"


def unit_label(unit: str) -> str:
    return {"us": "µs", "B/msg": "B/msg"}.get(unit, unit)


def limit_unit(c: dict) -> str:
    """The unit a limit is written in: the case's own, bytes for memory rows."""
    unit = c.get("unit") or "B/msg"
    return "B" if unit == "B/msg" else unit_label(unit)


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "–"
    return f"{r:.3g}×"


def progress(i: int, total: int, text: str) -> None:
    print(f"[{i}/{total}] {text}", flush=True)


# --------------------------------------------------------------------- running


class Ctx:
    def __init__(self, args):
        self.bin = args.bin
        self.python = sys.executable
        self.node = shutil.which("node") or "node"
        self.timeout = args.timeout


def run_once(case: dict, ctx: Ctx) -> tuple[dict | None, str]:
    cmd = case["cmd"].format(bin=ctx.bin, python=ctx.python, node=ctx.node, n=case["n"])
    try:
        proc = subprocess.run(
            shlex.split(cmd), cwd=ROOT, capture_output=True, text=True, timeout=ctx.timeout
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {ctx.timeout} s"
    except OSError as e:
        return None, f"could not start: {e}"
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f"exit {proc.returncode}: " + " | ".join(tail)
    try:
        return json.loads(lines[-1][len("RESULT "):]), ""
    except json.JSONDecodeError as e:
        return None, f"bad RESULT line: {e}"


def summarize(values: list[float]) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_all(cases: list[dict], runs: int, ctx: Ctx) -> None:
    runnable = [c for c in cases if c["state"] == "run"]
    total = len(runnable) * runs
    i = 0
    t_start = time.monotonic()
    for group in GROUPS:
        members = [c for c in runnable if c["group"] == group]
        for r in range(runs):
            for c in members:
                i += 1
                label = f"{group} {c['mechanism']} run {r + 1}/{runs}"
                if any(e.startswith("timed out") for e in c["errors"]):
                    c["runs"].append(None)
                    progress(i, total, f"{label} ... skipped (an earlier run timed out)")
                    continue
                t0 = time.monotonic()
                result, err = run_once(c, ctx)
                secs = time.monotonic() - t0
                c["runs"].append(result)
                if result is None:
                    c["errors"].append(err)
                    progress(i, total, f"{label} ... FAILED ({err})")
                else:
                    v = result.get("value")
                    unit = result.get("unit", "")
                    progress(i, total, f"{label} ... {fmt_num(v, unit)} {unit_label(unit)} ({secs:.1f} s)")
    print(f"all runs done in {time.monotonic() - t_start:.0f} s", flush=True)


def finish(cases: list[dict]) -> None:
    """Medians, ranges, ratios pair by pair, targets."""
    by_id = {c["id"]: c for c in cases}
    for c in cases:
        ok = [r for r in c["runs"] if r is not None]
        c["unit"] = ok[0]["unit"] if ok else c.get("unit")
        c["summary"] = summarize([r["value"] for r in ok if r.get("value") is not None])
        extras = {}
        for key, _ in EXTRA_FIELDS.get(c["unit"], []):
            extras[key] = summarize([r[key] for r in ok if r.get(key) is not None])
        c["extras"] = extras
        if c["state"] == "run" and not ok:
            c["state"] = "failed"
        if c.get("limit"):
            field, op, bound = parse_limit(c["limit"])
            got = summarize([r[field] for r in ok if r.get(field) is not None])["median"]
            met = None if got is None else (got <= bound if op == "<=" else got >= bound)
            c["limit_result"] = {"field": field, "op": op, "bound": bound, "median": got, "met": met}
    for c in cases:
        for x in c["compare"]:
            peer = by_id[x["peer"]]
            ratios = []
            for a, b in zip(c["runs"], peer["runs"]):
                if a and b and a.get("value") is not None and b.get("value"):
                    ratios.append(a["value"] / b["value"])
            s = summarize(ratios)
            x.update(s)
            x["ratios"] = ratios
            x["better"] = "higher" if HIGHER_IS_BETTER.get(c["unit"] or peer.get("unit"), True) else "lower"
            x["met"] = None
            if x["target"] and s["median"] is not None:
                op, bound = parse_target(x["target"])
                x["met"] = s["median"] >= bound if op == ">=" else s["median"] <= bound


# --------------------------------------------------------------------- outputs


def machine_info() -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "load_average_at_end": " ".join(load),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
    }


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        return out.splitlines()[0] if out else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=normal", "--", "core", "bench"],
            cwd=ROOT, capture_output=True, text=True,
        ).stdout.strip()
        if rev and dirty:
            rev += " plus uncommitted changes in core/ or bench/ (the working tree was measured)"
        return rev or "unknown"
    except OSError:
        return "unknown"


def state_text(c: dict) -> str:
    return {
        "pending": "pending: this face does not exist yet",
        "not built": "not built: core rows skipped (bench-core was not built)",
        "failed": "FAILED: " + (c["errors"][-1] if c.get("errors") else "no result"),
    }.get(c["state"], "")


def write_markdown(path: Path, cases: list[dict], meta: dict) -> None:
    by_id = {c["id"]: c for c in cases}
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Generated by the harness (`make bench` → `ci/bench.sh` → `bench/run.py`, cases in "
      "`bench/cases.toml`); do not edit by hand. Machine-readable: "
      "`bench-results/results.json`; chart: `bench-results/chart.png`.")
    w("")
    m = meta["machine"]
    w(f"- **Date:** {meta['date']}")
    w(f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}"
      + (f"; load average (1/5/15 min) when the runs ended: {m['load_average_at_end']}"
         if m.get("load_average_at_end") else ""))
    v = meta["versions"]
    w(f"- **Toolchain:** {v['rustc']}; {v['python']}; Node {v['node']}")
    w(f"- **Command:** `{meta['command']}`: release build, every case in a fresh process, "
      f"{meta['runs']} run(s) per case, runs of a workload interleaved")
    w(f"- **Commit:** {meta['commit']}")
    w(f"- **Core rows:** {meta['core_rows']}")
    w(f"- **Total time of the runs:** {meta['seconds']:.0f} s")
    w("")
    w("Each figure is the median of the runs, with the range [min–max]. A ratio is this "
      "row's figure divided by the compared row's, computed run by run (run k against run k "
      "of the other row, measured back to back) and summarized by the median and range of "
      "those ratios. For rates a ratio above 1 means faster; for W2 latency and W5 memory "
      "a ratio below 1 means better. Targets are those of the project's benchmark brief.")
    w("")

    # summary of targets
    rows = []
    for c in cases:
        for x in c["compare"]:
            if x["target"]:
                rows.append((c, x))
    w("## Targets at a glance")
    w("")
    w("| workload | row | compared with | ratio | target | met |")
    w("|---|---|---|---:|---|---|")
    for c, x in rows:
        peer = by_id[x["peer"]]
        w(f"| {c['group']} | {c['mechanism']} | {peer['mechanism']} | "
          f"{fmt_ratio(x['median']) if x['median'] is not None else '–'} | {x['target']} | "
          f"{met_text(c, x['met'], peer)} |")
    for c in cases:
        lr = c.get("limit_result")
        if c.get("limit"):
            got = lr["median"] if lr else None
            w(f"| {c['group']} | {c['mechanism']} | (absolute) | "
              f"{fmt_num(got, 'B') + ' ' + limit_unit(c) if got is not None else '–'} | "
              f"{c['limit']} {limit_unit(c)} | "
              f"{met_text(c, lr['met'] if lr else None)} |")
    w("")

    for group, (title, desc) in GROUPS.items():
        members = [c for c in cases if c["group"] == group]
        if not members:
            continue
        unit = next((c["unit"] for c in members if c.get("unit")), None)
        extras = EXTRA_FIELDS.get(unit or "", [])
        w(f"## {title}")
        w("")
        w(desc)
        w("")
        head = ["mechanism", "n", f"median ({unit_label(unit) if unit else '–'})", "range"]
        head += [label for _, label in extras]
        head += ["compared with", "ratio [range]", "target", "met"]
        w("| " + " | ".join(head) + " |")
        w("|" + "|".join(["---", "---:", "---:", "---"] + ["---:"] * len(extras)
                         + ["---", "---", "---", "---"]) + "|")
        for c in members:
            s = c["summary"]
            cu = c.get("unit") or unit or ""
            n = f"{c['n']:,}" if "n" in c else "–"
            if c["state"] in ("pending", "not built", "failed"):
                base = [c["mechanism"], n, "–", state_text(c)] + ["–"] * len(extras)
            else:
                rng = f"{fmt_num(s['min'], cu)}–{fmt_num(s['max'], cu)}"
                base = [c["mechanism"], n, fmt_num(s["median"], cu), rng]
                base += [fmt_num(c["extras"].get(k, {}).get("median"), "us" if cu == "us" else "B")
                         for k, _ in extras]
            comps = c["compare"] or [None]
            for j, x in enumerate(comps):
                first = base if j == 0 else ["″"] + [""] * (len(base) - 1)
                if x is None:
                    tail = ["", "", c.get("limit", "") and f"{c['limit']} {limit_unit(c)}", ""]
                    if c.get("limit"):
                        lr = c.get("limit_result")
                        tail[3] = met_text(c, lr["met"] if lr else None)
                else:
                    peer = by_id[x["peer"]]
                    ratio = "–"
                    if x["median"] is not None:
                        ratio = f"{fmt_ratio(x['median'])} [{x['min']:.3g}–{x['max']:.3g}]"
                    target = x["target"] or ""
                    met = met_text(c, x["met"], peer) if x["target"] else ""
                    if j == 0 and c.get("limit"):
                        lr = c.get("limit_result")
                        target = (target + "; " if target else "") + f"{c['limit']} {limit_unit(c)}"
                        met = met_text(c, lr["met"] if lr else None)
                    tail = [peer["mechanism"], ratio, target, met]
                w("| " + " | ".join(first + tail) + " |")
        copied = [c for c in members if any(r and r.get("copied_on_receipt") for r in c["runs"])]
        for c in copied:
            k = [r.get("copied_on_receipt", 0) for r in c["runs"] if r]
            w("")
            w(f"Note: {c['mechanism']}: buffers still shared on arrival (into_vec() copied) "
              f"per run: {k}.")
        w("")
    path.write_text("\n".join(out))


def met_text(c: dict, met: bool | None, peer: dict | None = None) -> str:
    for row in (c, peer):
        if row is not None and row["state"] in ("pending", "not built", "failed"):
            return row["state"]
    if met is None:
        return "–"
    return "yes" if met else "**no**"


def write_chart(path: Path, cases: list[dict]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: chart skipped"
    by_id = {c["id"]: c for c in cases}
    ratio_rows = []
    # the ratios that have targets; when none was measured (no core rows), the others
    targeted = any(x["target"] and x["median"] is not None for c in cases for x in c["compare"])
    for c in cases:
        for x in c["compare"]:
            if x["median"] is not None and (bool(x["target"]) or not targeted):
                peer = by_id[x["peer"]]
                ratio_rows.append((f"{c['group']}: {short(c['mechanism'])}\n  vs {short(peer['mechanism'])}", x))
    limit_rows = [
        (f"{c['group']}: {short(c['mechanism'])}", c["limit_result"], limit_unit(c))
        for c in cases
        if c.get("limit_result") and c["limit_result"]["median"] is not None
    ]
    if not ratio_rows and not limit_rows:
        return "nothing to chart"
    heights = [max(1, len(ratio_rows)), max(1, len(limit_rows))]
    fig, axes = plt.subplots(
        2 if limit_rows else 1, 1,
        figsize=(11, 2.2 + 0.5 * (len(ratio_rows) + len(limit_rows))),
        gridspec_kw={"height_ratios": heights} if limit_rows else None,
        squeeze=False,
    )
    ax = axes[0][0]
    colors, ys = [], list(range(len(ratio_rows)))[::-1]
    for (label, x), y in zip(ratio_rows, ys):
        med = x["median"]
        color = "#9e9e9e" if x["met"] is None else ("#2e7d32" if x["met"] else "#c62828")
        colors.append(color)
        ax.barh(y, med, color=color, alpha=0.8)
        ax.errorbar(med, y, xerr=[[med - x["min"]], [x["max"] - med]], fmt="none", ecolor="black", capsize=3)
        ax.text(max(med, x["max"]) * 1.08, y, f"{med:.3g}×", va="center", fontsize=7)
        if x["target"]:
            op, bound = parse_target(x["target"])
            ax.plot([bound, bound], [y - 0.4, y + 0.4], color="black", linewidth=2)
            ax.text(bound, y + 0.42, f"target {op} {bound:g}", fontsize=6, ha="center")
    ax.set_xscale("log")
    ax.axvline(1.0, color="#555", linewidth=0.8, linestyle=":")
    ax.set_yticks(ys)
    ax.set_yticklabels([r[0] for r in ratio_rows], fontsize=7)
    ax.set_xlabel("ratio = this row / compared row (median of the run-by-run ratios; whisker = min–max)\n"
                  "green: target met, red: missed, grey: no target; black tick: the target")
    ax.set_title("channel-messaging benchmarks: ratios against their targets"
                 + ("" if targeted else " (no targeted row measured: peer ratios shown)"))
    if limit_rows:
        ax2 = axes[1][0]
        ys2 = list(range(len(limit_rows)))[::-1]
        for (label, lr, unit), y in zip(limit_rows, ys2):
            color = "#2e7d32" if lr["met"] else "#c62828"
            ax2.barh(y, lr["median"], color=color, alpha=0.8)
            ax2.text(max(lr["median"], 0) + 1, y, f"{lr['median']:.1f} {unit}", va="center", fontsize=7)
            ax2.plot([lr["bound"], lr["bound"]], [y - 0.4, y + 0.4], color="black", linewidth=2)
        ax2.set_yticks(ys2)
        ax2.set_yticklabels([r[0] for r in limit_rows], fontsize=7)
        ax2.set_xlabel("absolute figures against their limits, each in its row's unit: wire = ns per "
                       "encode+decode, W5 = resident bytes per queued message above the payload "
                       "(black tick: the limit)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {rel(path)}"


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------- quick check


def regressed(now: float, committed: dict, better: str) -> bool:
    """Whether a quick ratio `now` is a regression against a committed comparison
    (`median`, `min`, `max` of its run-by-run ratios): more than 2x worse than the
    committed median, and worse than every committed run as well. A ratio inside the
    committed range is what the committed runs themselves measured: the noise of a
    row whose peer swings by tens of times between runs (W2 latencies), not a change."""
    was = committed["median"]
    if better == "higher":
        return now < was / 2 and now < committed.get("min", was)
    return now > was * 2 and now > committed.get("max", was)


def quick_check(cases: list[dict], baseline_path: Path) -> int:
    if not baseline_path.exists():
        print(f"no committed results at {baseline_path}: nothing to compare with")
        return 0
    base = json.loads(baseline_path.read_text())
    base_ratios = {}
    for c in base.get("cases", []):
        for x in c.get("compare", []):
            if x.get("median") is not None:
                base_ratios[(c["id"], x["peer"])] = x
    failed = 0
    checked = 0
    print(
        "\nquick check against the committed results (fails when more than 2x worse than"
        " the committed median and outside the committed runs' range):"
    )
    for c in cases:
        if c["state"] != "run":
            continue
        for x in c["compare"]:
            key = (c["id"], x["peer"])
            now = x.get("median")
            was = base_ratios.get(key)
            label = f"  {c['id']} / {x['peer']}"
            if now is None:
                print(f"{label}: no ratio measured now")
                failed += 1
                continue
            if was is None:
                print(f"{label}: {now:.3g}× (no committed ratio to compare with)")
                continue
            checked += 1
            worse = regressed(now, was, x["better"])
            verdict = "REGRESSION" if worse else "ok"
            span = f" [{was['min']:.3g}–{was['max']:.3g}]" if "min" in was and "max" in was else ""
            print(f"{label}: {now:.3g}× now, {was['median']:.3g}×{span} committed: {verdict}")
            failed += worse
    for c in cases:
        if c["state"] == "failed":
            print(f"  {c['id']}: FAILED ({c['errors'][-1] if c['errors'] else 'no result'})")
            failed += 1
    print(f"quick check: {checked} ratio(s) compared, {failed} problem(s)")
    return 1 if failed else 0


# ------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="directory of the release bench binaries")
    ap.add_argument("--core-rows", choices=["built", "not-built"], default="not-built")
    ap.add_argument("--core-rows-note", default="", help="why the core rows were not built")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="regex on case ids (development aid)")
    ap.add_argument("--cases", type=Path, default=ROOT / "bench" / "cases.toml")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every n by this (development aid; results are not comparable)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per run")
    ap.add_argument("--command", default="make bench")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: repo)")
    args = ap.parse_args()

    cases = load_cases(args.cases)
    runs = 1 if args.quick else args.runs
    selected = {c["id"] for c in cases}
    if args.quick:
        selected = {c["id"] for c in cases if c.get("quick")}
    if args.only:
        selected = {i for i in selected if re.search(args.only, i)}
    # a selected row brings its peers; comparisons with unselected rows are dropped
    by_id = {c["id"]: c for c in cases}
    if not args.quick:
        for i in list(selected):
            selected |= {x["peer"] for x in by_id[i]["compare"]}
    cases = [c for c in cases if c["id"] in selected]
    for c in cases:
        c["compare"] = [x for x in c["compare"] if x["peer"] in selected]
        c["runs"], c["errors"] = [], []
        if "n" in c and args.scale != 1.0:
            c["n"] = max(100, int(c["n"] * args.scale))
        if c.get("status") == "pending":
            c["state"] = "pending"
        elif c.get("requires") == "core-rows" and args.core_rows != "built":
            c["state"] = "not built"
        else:
            c["state"] = "run"
    if args.core_rows != "built":
        note = args.core_rows_note or "bench-core was not built"
        print(f"core rows: not built ({note}); they are listed as 'not built'", flush=True)

    ctx = Ctx(args)
    t0 = time.monotonic()
    run_all(cases, runs, ctx)
    seconds = time.monotonic() - t0
    finish(cases)

    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command,
        "runs": runs,
        "quick": args.quick,
        "machine": machine_info(),
        "versions": {
            "rustc": tool_version(["rustc", "--version"]),
            "python": "Python " + platform.python_version(),
            "node": tool_version([ctx.node, "--version"]),
        },
        "commit": git_commit(),
        "core_rows": "built" if args.core_rows == "built" else
        f"**not built** ({args.core_rows_note or 'bench-core was not built'}): those rows are skipped",
        "seconds": seconds,
    }
    if args.quick:
        out_dir = args.out or ROOT / "bench-results" / "tmp"
        md_path = out_dir / "BENCHMARKS.md"
    else:
        out_dir = args.out or ROOT / "bench-results"
        md_path = (args.out / "BENCHMARKS.md") if args.out else ROOT / "BENCHMARKS.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    public = []
    for c in cases:
        public.append({
            k: c.get(k) for k in (
                "id", "group", "mechanism", "face", "n", "cmd", "unit", "state", "summary",
                "extras", "compare", "limit", "limit_result", "runs", "errors")
        })
    (out_dir / "results.json").write_text(json.dumps({"meta": meta, "cases": public}, indent=1) + "\n")
    write_markdown(md_path, cases, meta)
    print(f"wrote {rel(md_path)} and {rel(out_dir / 'results.json')}")
    if not args.quick:
        print(write_chart(out_dir / "chart.png", cases))
        failed = [c["id"] for c in cases if c["state"] == "failed"]
        if failed:
            print(f"FAILED cases: {', '.join(failed)}")
            return 1
        return 0
    return quick_check(cases, ROOT / "bench-results" / "results.json")


if __name__ == "__main__":
    sys.exit(main())
