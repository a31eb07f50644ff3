"""Real public data for benchmarks, fetched with pip into a cache folder git ignores.

Two files travel inside registry wheels (README, "Public data"):
- CDNOW_sample.txt, in the wheel of lifetimes 0.11.3 (2,357 customers, 6,919 purchases);
- ml-100k.inter, in the wheel of recbole 1.2.1 (MovieLens-100k, 100,000 ratings).

Each fetch downloads the wheel with `python -m pip download --no-deps` (nothing is
installed), extracts that one file and checks its SHA-256. Only the named file is ever read
out of a wheel: the other CDNOW files in the lifetimes wheel are reserved for independent
evaluation. The data files are never committed: the cache folder gets a `.gitignore` of `*`.

    python bench/public_data.py [CACHE_DIR]    # fetch both, print their paths
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / "data" / "public"
WHEELS_FOLDER = "wheels"


@dataclass(frozen=True)
class WheelFile:
    """One data file inside one pinned wheel."""

    requirement: str  # what pip downloads
    wheel_prefix: str  # the wheel's file name starts with this (case-insensitive)
    member: str  # the only path read out of the wheel
    sha256: str


CDNOW_SAMPLE = WheelFile(
    requirement="lifetimes==0.11.3",
    wheel_prefix="lifetimes-0.11.3-",
    member="lifetimes/datasets/CDNOW_sample.txt",
    sha256="6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a",
)
MOVIELENS_100K = WheelFile(
    requirement="recbole==1.2.1",
    wheel_prefix="recbole-1.2.1-",
    member="recbole/dataset_example/ml-100k/ml-100k.inter",
    sha256="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
)


def fetch_cdnow_sample(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Path of CDNOW_sample.txt in cache_dir, downloading the lifetimes wheel if needed."""
    return fetch_wheel_file(CDNOW_SAMPLE, cache_dir)


def fetch_movielens_100k(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Path of ml-100k.inter in cache_dir, downloading the recbole wheel if needed."""
    return fetch_wheel_file(MOVIELENS_100K, cache_dir)


def fetch_wheel_file(wanted: WheelFile, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Extract `wanted.member` from its wheel into cache_dir once; return the file's path.

    Raises RuntimeError if pip fails or the file's checksum differs from the pinned one.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    ignore = cache_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# downloaded public data: never commit\n*\n")
    target = cache_dir / Path(wanted.member).name
    if target.exists() and _sha256(target.read_bytes()) == wanted.sha256:
        return target
    wheel = _find_wheel(cache_dir / WHEELS_FOLDER, wanted) or _download_wheel(cache_dir, wanted)
    with zipfile.ZipFile(wheel) as archive:
        content = archive.read(wanted.member)
    if _sha256(content) != wanted.sha256:
        raise RuntimeError(f"{wheel.name}: {wanted.member} does not match the pinned SHA-256")
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(content)
    partial.replace(target)
    return target


def _find_wheel(wheel_dir: Path, wanted: WheelFile) -> Path | None:
    if not wheel_dir.is_dir():
        return None
    for path in sorted(wheel_dir.glob("*.whl")):
        if path.name.lower().startswith(wanted.wheel_prefix):
            return path
    return None


def _download_wheel(cache_dir: Path, wanted: WheelFile) -> Path:
    wheel_dir = cache_dir / WHEELS_FOLDER
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", wanted.requirement, "-d", str(wheel_dir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wheel = _find_wheel(wheel_dir, wanted)
    if result.returncode != 0 or wheel is None:
        last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise RuntimeError(f"pip download {wanted.requirement} failed: {last}")
    return wheel


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE_DIR
    print(fetch_cdnow_sample(folder))
    print(fetch_movielens_100k(folder))
