"""The layer contract (`[tool.importlinter]` in pyproject.toml) holds, and it would catch an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "models", "pipelines", "service", "tests", "bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )


def test_every_contract_is_kept():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract_naming_both_modules(tmp_path):
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "features" / "upward.py").write_text(
        "from service import scorer  # features must not see the service\n"
    )
    (tmp_path / "models" / "tracked.py").write_text("import mlflow  # only pipelines.registry may\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "features.upward -> service.scorer" in result.stdout
    assert "models.tracked -> mlflow" in result.stdout
    assert "2 broken" in result.stdout
