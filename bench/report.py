"""Shared by the benches: running the product's commands, formatting intervals and a training run's
decisions, and writing results into docs/BENCHMARKS.md between named markers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def run_command(module: str, *args) -> float:
    """Run `python -m module args` like a user would; its seconds. A failure stops the bench with its output."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python -m {module} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def interval_text(estimate: float, low: float, high: float, signed: bool = False) -> str:
    """`0.2694 [0.2547, 0.2827]`, or with signs for a difference: `+0.0445 [+0.0332, +0.0559]`."""
    number = "{:+.4f}" if signed else "{:.4f}"
    return f"{number.format(estimate)} [{number.format(low)}, {number.format(high)}]"


def logged_interval(run: pd.Series, name: str, signed: bool = False) -> str:
    """A metric logged with its interval (`name`, `name_low`, `name_high`) on an MLflow run row, as text."""
    low, estimate, high = (run.get(f"{name}{end}") for end in ("_low", "", "_high"))
    return interval_text(estimate, low, high, signed)


def served_label(run: pd.Series, candidate: str) -> str:
    """ "champion" or "challenger" when the run serves this candidate, else empty."""
    if run["tags.gate.served"] != candidate:
        return ""
    return "champion" if run["tags.gate.decision"] == "champion" else "challenger"


def replace_section(path: Path, name: str, body: str) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
