"""Soak: the scoring service under a steady, realistic request mix for minutes, against the issue's targets.

    python -m bench.soak [--minutes 10] [--rate 200] [--profiles data/profiles.sqlite --mlflow-store mlruns]
                         [--json data/bench/soak.json]

Starts a real server (one worker by default) on a private copy of the profile store, or on a small
generated workspace without --profiles, exactly as `bench.load_test` does (`bench.serving`). After
a short warm-up, requests go out paced at --rate for --minutes; each latency counts from its
scheduled send time. By default each request leaves when due, on an idle connection or a new one
(`--client open-loop`, `bench.serving.run_open_loop`); `--client threads` sends from 4 threads of
one connection each, where a few slow calls in flight hold every thread and the calls due
meanwhile wait in the load generator. Each request is drawn at random: 35% /churn and 35%
/propensity for one known customer, 20% /recommend (k = 10), 10% /events with one new purchase
line (a unique order id, a reference product, timestamped now) for a known customer. Every 5 s
the server's processes (the `bentoml serve` parent and everything it started: its workers) are
sampled: resident memory (VmRSS) and open file descriptors, summed (without the socket the
worker holds for each client connection, found in /proc/net/tcp: the open-loop client opens one more
whenever every open one is busy and the server closes one left idle, so that count moves with the
load) and CPU time by process (the worker, its `scoring-reads` and `scoring-writes` processes, the
load generator), with the share of the cores that were busy and the size of the profile store's
write-ahead log; and the machine's speed is probed (`SpeedProbe`: the CPU time of a fixed loop in a
process of its own). Each is reported per minute beside the p99 (CPU as milliseconds per request
sent), so a p99 that climbs can be told apart from a process that costs more per request or a
machine that runs slower.

Targets (issue): 0 errors (a non-2xx answer or a failed connection); p99 under 15 ms for the scoring
calls (churn, propensity, recommend); resident memory growing less than 5% and open files not at all
from the baseline to the end. The baseline is the sample at 1 minute (half-way for runs under two
minutes); the end is the last sample taken under load. With --json the result is written there,
with a plot of memory and p99 over time next to it (same name, .png). A benchmark, not a test: the
exit status is 0 whether or not the targets hold.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bench.serving import (
    OPEN_LOOP,
    THREADS,
    THREADS_CLIENT,
    Client,
    add_client_argument,
    add_workspace_arguments,
    client_name,
    prepare_store,
    purchase_row,
    read_targets,
    run_open_loop,
    run_paced,
    server_environment,
)
from models.plots import save_figure
from tests.server_process import ServerProcess

ENDPOINTS = ("/churn", "/propensity", "/recommend", "/events")
MIX = (0.35, 0.35, 0.20, 0.10)
SCORING = (0, 1, 2)  # positions in ENDPOINTS
EVENTS = 3
LABELS = ("/churn, 1 customer", "/propensity, 1 customer", "/recommend, k = 10", "/events, 1 purchase")
RECOMMEND_K = 10
SAMPLE_EVERY_S = 5.0
SAMPLE_SLACK_S = 0.5  # a sample lands a few ms after its tick: the one due at 60 s counts as "at 60 s"
BASELINE_S = 60.0
P99_TARGET_MS = 15.0
RSS_GROWTH_TARGET_PCT = 5.0
TCP_LISTEN = "0A"  # a listening socket's state in /proc/net/tcp
WARM_UP_REQUESTS = 20  # per endpoint, sequential, not counted


def find_process_tree(root: int) -> list[int]:
    """`root` and every process descended from it. (BentoML starts each worker in a session of its
    own, so the server's process group holds the parent only.)"""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                # the command name in parentheses may hold spaces: the fields after it are state, ppid
                parent = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def read_process_tree(root: int) -> dict:
    """Processes, resident kB (VmRSS) and open file descriptors, summed over `root` and its descendants,
    the inodes of the sockets among those descriptors, and their CPU seconds (user + system) by role:
    "parent" for `root`, "worker" for its children (BentoML's workers), else the process's name
    (`/proc/PID/comm`: a worker's helper processes, `scoring-reads` and `scoring-writes`)."""
    total = {"processes": 0, "rss_kb": 0, "fds": 0, "sockets": [], "cpu_s": {}}
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    for pid in find_process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            links = [_link(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            # after the name in parentheses: state, ppid (fields 3, 4), ..., utime and stime (14, 15)
            after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            name = process_role(pid, int(after_name[1]), root)
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue  # exited while read, or a zombie (no VmRSS)
        total["processes"] += 1
        total["rss_kb"] += rss_kb
        total["fds"] += len(links)
        total["sockets"] += [link[len("socket:[") : -1] for link in links if link.startswith("socket:[")]
        cpu_s = (int(after_name[11]) + int(after_name[12])) / ticks_per_s
        total["cpu_s"][name] = round(total["cpu_s"].get(name, 0.0) + cpu_s, 2)
    return total


def process_role(pid: int, parent: int, root: int) -> str:
    """ "parent" (`bentoml serve` itself), "worker" (its children), else the process's own name."""
    if pid == root:
        return "parent"
    if parent == root:
        return "worker"
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _link(path: str) -> str:
    """What a /proc/PID/fd entry points at ("" when it was closed meanwhile)."""
    try:
        return os.readlink(path)
    except OSError:
        return ""


def machine_busy_s() -> tuple[float, float]:
    """Seconds every core was busy and seconds they were idle, summed, since boot (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / ticks_per_s, idle / ticks_per_s


# The machine's own speed, beside the latencies: a fixed loop of Python timed in CPU seconds, in a
# process of its own, once per sample. CPU time leaves out the time the probe waits for a core (the
# soak's own load), so the probe moves when the cores themselves run slower: on this VM the same
# loop takes up to twice as long from one minute to the next with nothing else running, and the
# service's p99 moves with it (docs/BENCHMARKS.md).
PROBE_LOOPS = 500_000
PROBE_SOURCE = """
import sys, time
while sys.stdin.readline():
    started = time.process_time()
    total = 0
    for i in range({loops}):
        total += i
    print(round((time.process_time() - started) * 1000, 3), flush=True)
"""


class SpeedProbe:
    """`with SpeedProbe() as probe: probe.measure()` -> ms of CPU for PROBE_LOOPS additions."""

    def __enter__(self) -> SpeedProbe:
        source = PROBE_SOURCE.format(loops=PROBE_LOOPS)
        self.process = subprocess.Popen(
            [sys.executable, "-c", source], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        return self

    def measure(self) -> float:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def __exit__(self, *exc_info: object) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def connection_sockets(port: int) -> set[str]:
    """The socket inodes of TCP connections on `port` at this host (both ends of each: the client's
    and the one the server holds), from /proc/net/tcp and tcp6; the listening socket is not one."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local_port, remote_port = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if port in (local_port, remote_port) and fields[3] != TCP_LISTEN:
                inodes.add(fields[9])
    return inodes


def server_sample(root: int, port: int) -> dict:
    """`read_process_tree`, with "fds" counting the server's own descriptors: those of its clients'
    connections (one each in the worker, which come and go with the load: the open-loop client opens
    one more whenever every open one is busy, and the server closes one left idle) are counted apart,
    as "client_connections". A connection open before or after the scan is left out."""
    before = connection_sockets(port)
    sample = read_process_tree(root)
    connections = before | connection_sockets(port)
    held = sum(inode in connections for inode in sample.pop("sockets"))
    return sample | {"fds": sample["fds"] - held, "client_connections": held}


def sample_process_tree(
    root: int,
    start: float,
    stop: threading.Event,
    samples: list[dict],
    port: int,
    store_path: Path,
) -> None:
    """Append a sample every SAMPLE_EVERY_S, on the clock of `start` (`time.perf_counter()`), until `stop`:
    the server's memory, open files and CPU by process, the load generator's CPU, the size of the
    profile store's write-ahead log, the cores' busy and idle time, and the machine's speed
    (`SpeedProbe`); a progress line every minute."""
    wal = Path(f"{store_path}-wal")
    tick = 0
    with SpeedProbe() as probe:
        while True:
            seconds = time.perf_counter() - start
            busy_s, idle_s = machine_busy_s()
            sample = server_sample(root, port)
            own = os.times()  # this process: the load generator, beside the server's processes
            sample["cpu_s"]["load generator"] = round(own.user + own.system, 2)
            samples.append(
                {
                    "seconds": round(seconds, 2),
                    **sample,
                    "machine_busy_s": busy_s,
                    "machine_idle_s": idle_s,
                    "wal_mb": round(wal.stat().st_size / 2**20, 2) if wal.exists() else 0.0,
                    "probe_ms": probe.measure(),
                }
            )
            if tick and tick * SAMPLE_EVERY_S % 60 == 0:
                sample = samples[-1]
                print(
                    f"  {seconds / 60:.0f} min: {sample['rss_kb'] / 1024:.0f} MB resident, {sample['fds']} open files",
                    flush=True,
                )
            tick += 1
            if stop.wait(max(0.0, start + tick * SAMPLE_EVERY_S - time.perf_counter())):
                return


def latency_summary(latencies: np.ndarray) -> dict[str, float | None]:
    if latencies.size == 0:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "max_ms": round(float(latencies.max()), 3),
    }


def clock(seconds: float) -> str:
    """`1:05` for 65 seconds."""
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def summarise_over_time(
    scheduled: np.ndarray,
    kinds: np.ndarray,
    latencies: np.ndarray,
    failed: np.ndarray,
    samples: list[dict],
    duration_s: float,
) -> list[dict]:
    """Per minute (per 10 s for runs under three minutes): requests, errors, scoring and events p99
    (by scheduled time), the server's memory and open files at the last sample in it, and the
    median speed probe of the samples in it."""
    width = 60.0 if duration_s >= 180 else 10.0
    bins = (scheduled // width).astype(int)
    scoring = np.isin(kinds, SCORING)
    rows = []
    for index in range(int(bins.max()) + 1):
        here = bins == index
        to_s = min((index + 1) * width, duration_s)
        last = [sample for sample in samples if sample["seconds"] <= to_s + SAMPLE_SLACK_S][-1]
        probes = [sample["probe_ms"] for sample in samples if index * width <= sample["seconds"] < to_s]
        first = next((sample for sample in samples if sample["seconds"] >= index * width - SAMPLE_SLACK_S), last)
        rows.append(
            {
                "from_s": index * width,
                "to_s": to_s,
                "requests": int(here.sum()),
                "errors": int(failed[here].sum()),
                "scoring_p99_ms": latency_summary(latencies[here & scoring])["p99_ms"],
                "events_p99_ms": latency_summary(latencies[here & (kinds == EVENTS)])["p99_ms"],
                "rss_mb": round(last["rss_kb"] / 1024, 1),
                "fds": last["fds"],
                "wal_mb": last.get("wal_mb"),
                "probe_ms": round(float(np.median(probes)), 2) if probes else None,
                **cpu_between(first, last, int(here.sum())),
            }
        )
    return rows


def cpu_between(first: dict, last: dict, requests: int) -> dict:
    """From one sample to a later one: each server process's CPU in ms per request sent meanwhile
    (by role, as `read_process_tree` names them), and the share of the machine's cores that were busy
    (server, load generator and anything else)."""
    busy = last["machine_busy_s"] - first["machine_busy_s"]
    idle = last["machine_idle_s"] - first["machine_idle_s"]
    per_request = {
        role: round((seconds - first["cpu_s"].get(role, 0.0)) * 1000 / max(requests, 1), 3)
        for role, seconds in last["cpu_s"].items()
    }
    return {"cpu_ms_per_request": per_request, "machine_busy_pct": round(100 * busy / max(busy + idle, 1e-9), 1)}


def summarise_memory(samples: list[dict], duration_s: float) -> dict:
    """Resident memory and open files at the baseline (1 minute, or half-way for a run under two
    minutes) and at the end (the last sample under load)."""
    baseline_s = min(BASELINE_S, duration_s / 2)
    under_load = [sample for sample in samples if sample["seconds"] <= duration_s + SAMPLE_SLACK_S]
    baseline = next(sample for sample in under_load if sample["seconds"] >= baseline_s - SAMPLE_SLACK_S)
    end = under_load[-1]
    return {
        "baseline_label": clock(baseline_s),
        "baseline_s": baseline["seconds"],
        "end_s": end["seconds"],
        "processes": end["processes"],
        "rss_mb_baseline": round(baseline["rss_kb"] / 1024, 1),
        "rss_mb_end": round(end["rss_kb"] / 1024, 1),
        "rss_growth_pct": round((end["rss_kb"] - baseline["rss_kb"]) / baseline["rss_kb"] * 100, 2),
        "rss_mb_max": round(max(sample["rss_kb"] for sample in under_load) / 1024, 1),
        "fds_baseline": baseline["fds"],
        "fds_end": end["fds"],
        "fds_max": max(sample["fds"] for sample in under_load),
    }


def decide_checks(errors: int, scoring_p99: float, memory: dict) -> list[dict]:
    """One row per target: what it asks, what was measured, whether it holds."""
    at = memory["baseline_label"]
    return [
        {"target": "0 errors", "measured": f"{errors:,}", "passed": errors == 0},
        {
            "target": f"scoring p99 < {P99_TARGET_MS:g} ms",
            "measured": f"{scoring_p99:.2f} ms",
            "passed": scoring_p99 < P99_TARGET_MS,
        },
        {
            "target": f"resident memory growth < {RSS_GROWTH_TARGET_PCT:g}% after {at}",
            "measured": f"{memory['rss_growth_pct']:+.2f}% ({memory['rss_mb_baseline']:.0f} -> "
            f"{memory['rss_mb_end']:.0f} MB)",
            "passed": memory["rss_growth_pct"] < RSS_GROWTH_TARGET_PCT,
        },
        {
            "target": f"no open-file growth after {at}",
            "measured": f"{memory['fds_baseline']} -> {memory['fds_end']}",
            "passed": memory["fds_end"] <= memory["fds_baseline"],
        },
    ]


def print_report(result: dict) -> None:
    run, latency, memory = result["run"], result["latency_ms"], result["memory"]

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    print()
    print(
        f"Soak: {run['minutes']:g} min at {run['rate']:g} req/s paced ({run['profiles']:,} profiles, "
        f"{run['workers']} BentoML worker(s), {client_name(run.get('client', THREADS_CLIENT))}, same host)"
    )
    print()
    print("| calls | requests | errors | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = [(label, path) for label, path in zip(LABELS, ENDPOINTS, strict=True)]
    rows += [("scoring calls (churn, propensity, recommend)", "scoring"), ("all", "all")]
    for label, key in rows:
        numbers = latency[key]
        print(
            f"| {label} | {result['requests'][key]:,} | {result['errors'][key]:,} | {ms(numbers['p50_ms'])} | "
            f"{ms(numbers['p99_ms'])} | {ms(numbers['max_ms'])} |"
        )
    print()
    print(
        f"Achieved rate: {result['achieved_rate']:.1f} requests/s (asked {run['rate']:g}). Purchases sent to "
        f"/events and not stored (rejected or duplicate): {result['events_not_stored']:,}. Errors by status "
        f"(0: no answer): {result['error_statuses'] or 'none'}."
    )
    print()
    at = memory["baseline_label"]
    print(f"| server processes ({memory['processes']}: parent and workers) | at {at} | at end | change | max |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(
        f"| resident memory (MB) | {memory['rss_mb_baseline']:.1f} | {memory['rss_mb_end']:.1f} | "
        f"{memory['rss_growth_pct']:+.2f}% | {memory['rss_mb_max']:.1f} |"
    )
    print(
        f"| open file descriptors | {memory['fds_baseline']} | {memory['fds_end']} | "
        f"{memory['fds_end'] - memory['fds_baseline']:+d} | {memory['fds_max']} |"
    )
    print()
    # the processes that used any CPU meanwhile (not, say, multiprocessing's idle resource tracker)
    cpu_rows = [row.get("cpu_ms_per_request", {}) for row in result["over_time"]]
    roles = sorted({role for cpu in cpu_rows for role, ms in cpu.items() if ms})
    print(
        "| from | to | requests | errors | scoring p99 ms | /events p99 ms | resident MB | open files "
        f"| speed probe ms ({PROBE_LOOPS:,} additions, CPU) | cores busy % | store log MB | "
        + " | ".join(f"{role} CPU ms/request" for role in roles)
        + " |"
    )
    print("| ---: " * (11 + len(roles)) + "|")
    for row in result["over_time"]:
        cpu = row.get("cpu_ms_per_request", {})
        print(
            f"| {clock(row['from_s'])} | {clock(row['to_s'])} | {row['requests']:,} | {row['errors']:,} | "
            f"{ms(row['scoring_p99_ms'])} | {ms(row['events_p99_ms'])} | {row['rss_mb']:.1f} | {row['fds']} | "
            f"{ms(row.get('probe_ms'))} | {row.get('machine_busy_pct', '')} | {ms(row.get('wal_mb'))} | "
            + " | ".join(ms(cpu.get(role)) for role in roles)
            + " |"
        )
    print()
    print("| target | measured | result |")
    print("| --- | --- | --- |")
    for check in result["checks"]:
        print(f"| {check['target']} | {check['measured']} | {'PASS' if check['passed'] else 'FAIL'} |")
    print()
    print(
        f"Machine load average (1 min) before / after: {run['load_average_before']:.2f} / "
        f"{run['load_average_after']:.2f} on {run['cores']} cores (server and load generator share them)."
    )


def plot_run(result: dict, path: Path) -> Path:
    """Resident memory and p99 latency over the run, one panel each."""
    figure = Figure(figsize=(8.0, 6.0))
    memory_axes, latency_axes = figure.subplots(2, 1, sharex=True)
    minutes = [sample["seconds"] / 60 for sample in result["samples"]]
    memory_axes.plot(minutes, [sample["rss_kb"] / 1024 for sample in result["samples"]], marker=".")
    memory_axes.axvline(result["memory"]["baseline_s"] / 60, color="#7F7F7F", linestyle="--", linewidth=1.0)
    memory_axes.axhline(
        result["memory"]["rss_mb_baseline"] * (1 + RSS_GROWTH_TARGET_PCT / 100),
        color="#C62828",
        linestyle=":",
        linewidth=1.0,
        label=f"baseline + {RSS_GROWTH_TARGET_PCT:g}%",
    )
    memory_axes.set_ylabel("server resident memory (MB)")
    memory_axes.legend(loc="lower right")
    middles = [(row["from_s"] + row["to_s"]) / 120 for row in result["over_time"]]
    for key, label in (("scoring_p99_ms", "scoring calls"), ("events_p99_ms", "/events")):
        latency_axes.plot(middles, [row[key] for row in result["over_time"]], marker="o", label=label)
    latency_axes.axhline(P99_TARGET_MS, color="#C62828", linestyle=":", linewidth=1.0, label="scoring target")
    latency_axes.set_ylabel("p99 latency (ms)")
    latency_axes.set_xlabel("minutes into the run")
    latency_axes.legend(loc="upper right")
    run = result["run"]
    memory_axes.set_title(f"Soak: {run['rate']:g} req/s for {run['minutes']:g} min, {run['workers']} worker(s)")
    return save_figure(figure, path)


def git_commit() -> str | None:
    """The checkout's commit (`-dirty` with local changes), None outside a git checkout."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() or None


@dataclass(frozen=True)
class Measured:
    """What one soak measured, by request (in scheduled order) and by 5-second sample."""

    profiles: int
    kinds: np.ndarray  # positions in ENDPOINTS
    latencies: np.ndarray  # ms from the scheduled send time
    statuses: np.ndarray  # HTTP status, 0 for no answer
    stored: np.ndarray  # /events: the purchase was stored (accepted, not a duplicate)
    samples: list[dict]


def run_soak(args: argparse.Namespace, work: Path) -> Measured:
    """Serve a private copy of the store from `work`, warm up, then send the paced mix while sampling."""
    store_path, mlflow_store = prepare_store(work, args.profiles, args.mlflow_store, args.customers)
    ids, products, _ = read_targets(store_path)
    count = int(args.rate * args.minutes * 60)
    rng = np.random.default_rng(args.seed)
    kinds = rng.choice(len(ENDPOINTS), size=count, p=MIX)
    customers = [ids[index] for index in rng.integers(len(ids), size=count)]
    bought = [products[index] for index in rng.integers(len(products), size=count)]
    stored = np.zeros(count, dtype=bool)

    def body(i: int, order_id: str) -> dict:
        if kinds[i] == EVENTS:
            when = datetime.now(UTC).isoformat(timespec="milliseconds")
            return {"transactions": [purchase_row(order_id, customers[i], bought[i], when)]}
        if ENDPOINTS[kinds[i]] == "/recommend":
            return {"customer_id": customers[i], "k": RECOMMEND_K}
        return {"customer_ids": [customers[i]]}

    def note_answer(i: int, status: int, answer: dict) -> None:
        if kinds[i] == EVENTS and status == 200:
            stored[i] = answer.get("accepted") == 1

    def send(i: int) -> int:
        try:
            status, answer = client.post(ENDPOINTS[kinds[i]], body(i, f"soak-{i}"))
        except (OSError, http.client.HTTPException, ValueError):
            return 0  # no answer, or not JSON
        note_answer(i, status, answer)
        return status

    environment = server_environment(work, store_path, mlflow_store, args.workers)
    with ServerProcess(environment, log_path=work / "server.log") as server:
        client = Client(server.port)
        # connections, caches, lazy imports: the first requests of the plan, each endpoint's a few times
        warm_up = [i for kind in range(len(ENDPOINTS)) for i in np.flatnonzero(kinds == kind)[:WARM_UP_REQUESTS]]
        for i in warm_up:
            client.post(ENDPOINTS[kinds[i]], body(i, f"soak-warm-up-{i}"))
        client.close()  # the run's threads open their own: this one would idle through the run
        print(f"soak: {count:,} requests at {args.rate:g}/s for {count / args.rate / 60:g} min ...", flush=True)
        start = time.perf_counter() + 0.2
        samples: list[dict] = []
        stop = threading.Event()
        sampler = threading.Thread(
            target=sample_process_tree, args=(server.process.pid, start, stop, samples, server.port, store_path)
        )
        sampler.start()
        try:
            if args.client == OPEN_LOOP:
                request = lambda i: (ENDPOINTS[kinds[i]], body(i, f"soak-{i}"))  # noqa: E731
                latencies, statuses = run_open_loop(server.port, count, args.rate, request, note_answer, start)
            else:
                latencies, statuses = run_paced(count, args.rate, send, start)
        finally:
            stop.set()
            sampler.join()
    return Measured(len(ids), kinds, latencies, statuses, stored, samples)


def summarise_run(args: argparse.Namespace, measured: Measured, load_before: float) -> dict:
    """The result: counts, errors, latencies, memory, checks, and the numbers over time."""
    kinds, latencies, statuses = measured.kinds, measured.latencies, measured.statuses
    count = len(kinds)
    duration_s = count / args.rate
    scheduled = np.arange(count) / args.rate
    failed = (statuses < 200) | (statuses >= 300)
    groups = {path: kinds == kind for kind, path in enumerate(ENDPOINTS)}
    groups |= {"scoring": np.isin(kinds, SCORING), "events": kinds == EVENTS, "all": np.ones(count, dtype=bool)}
    memory = summarise_memory(measured.samples, duration_s)
    error_statuses, error_counts = np.unique(statuses[failed], return_counts=True)
    return {
        "run": {
            "minutes": args.minutes,
            "rate": args.rate,
            "workers": args.workers,
            "client": args.client,
            "client_threads": THREADS if args.client == THREADS_CLIENT else 1,
            "profiles": measured.profiles,
            "profile_store": str(args.profiles) if args.profiles else f"generated, {args.customers} customers",
            "seed": args.seed,
            "commit": git_commit(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
            "cores": os.cpu_count(),
        },
        "requests": {name: int(chosen.sum()) for name, chosen in groups.items()},
        "errors": {name: int(failed[chosen].sum()) for name, chosen in groups.items()},
        "error_statuses": {int(status): int(n) for status, n in zip(error_statuses, error_counts, strict=True)},
        "events_not_stored": int((groups["events"] & ~failed & ~measured.stored).sum()),
        "latency_ms": {name: latency_summary(latencies[chosen]) for name, chosen in groups.items()},
        # requests over the time from the first scheduled send to the last answer
        "achieved_rate": round(count / float((scheduled + latencies / 1000).max()), 2),
        "memory": memory,
        "checks": decide_checks(int(failed.sum()), latency_summary(latencies[groups["scoring"]])["p99_ms"], memory),
        "samples": measured.samples,
        "over_time": summarise_over_time(scheduled, kinds, latencies, failed, measured.samples, duration_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    add_workspace_arguments(parser)
    parser.add_argument("--minutes", type=float, default=10.0, help="duration of the paced run (fractions allowed)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s, all endpoints together")
    parser.add_argument("--workers", type=int, default=1, help="BentoML worker processes (SCORING_WORKERS)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the request mix")
    add_client_argument(parser)
    parser.add_argument("--json", type=Path, default=None, help="write the result here, and a plot next to it")
    args = parser.parse_args(argv)
    if args.minutes < 0.5 or args.rate <= 0:
        parser.error("--minutes must be at least 0.5 (the memory baseline needs samples) and --rate positive")

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="soak_"))
    try:
        measured = run_soak(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = summarise_run(args, measured, load_before)
    print_report(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        plot = plot_run(result, args.json.with_suffix(".png"))
        print(f"Result: {args.json}; plot: {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
