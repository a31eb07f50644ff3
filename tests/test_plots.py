"""Evaluation plots: each returns a Figure with the expected axes and lines, and saves a PNG."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from models import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LOW_DPI = 40  # saving dominates the run time; the layout is the same at any dpi


@pytest.fixture
def labelled_scores():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    model = np.clip(0.35 * labels + 0.65 * rng.random(300), 0, 1)
    baseline = rng.random(300)
    return labels, {"LightGBM": model, "Baseline": baseline}


def _legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_roc_has_one_line_per_model_plus_the_diagonal(labelled_scores):
    labels, scores = labelled_scores
    fig = plots.plot_roc(labels, scores)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == len(scores) + 1
    texts = _legend_texts(ax)
    assert texts[0].startswith("LightGBM (AUC = ") and texts[1].startswith("Baseline (AUC = ")
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_roc_legend_shows_perfect_auc():
    fig = plots.plot_roc([0, 0, 1, 1], {"perfect": [0.1, 0.2, 0.8, 0.9]})
    assert _legend_texts(fig.axes[0])[0] == "perfect (AUC = 1.000)"


def test_precision_recall_has_the_no_skill_line_at_the_base_rate(labelled_scores):
    labels, scores = labelled_scores
    (ax,) = plots.plot_precision_recall(labels, scores).axes
    lines = ax.get_lines()
    assert len(lines) == len(scores) + 1
    assert lines[-1].get_ydata()[0] == pytest.approx(np.mean(labels))
    assert all("AP = " in text for text in _legend_texts(ax))


def test_calibration_has_reliability_and_histogram_panels(labelled_scores):
    labels, scores = labelled_scores
    fig = plots.plot_calibration(labels, scores)
    reliability, histogram = fig.axes
    assert len(reliability.get_lines()) == len(scores) + 1  # diagonal + one per model
    assert len(histogram.patches) == len(scores)  # one step outline per model
    assert all("ECE = " in text for text in _legend_texts(reliability)[1:])


def test_calibration_points_sit_on_the_diagonal_for_calibrated_bins():
    labels = [1, 0, 0, 0, 1, 1, 1, 0]
    scores = [0.25] * 4 + [0.75] * 4
    reliability = plots.plot_calibration(labels, {"model": scores}).axes[0]
    line = reliability.get_lines()[1]
    assert list(line.get_xdata()) == pytest.approx([0.25, 0.75])
    assert list(line.get_ydata()) == pytest.approx([0.25, 0.75])


def test_gain_and_lift_has_two_panels(labelled_scores):
    labels, scores = labelled_scores
    gain, lift = plots.plot_gain_and_lift(labels, scores).axes
    assert len(gain.get_lines()) == len(scores) + 2  # perfect ranking and random
    assert len(lift.get_lines()) == len(scores) + 1  # lift = 1
    gain_curve = gain.get_lines()[0]
    assert gain_curve.get_ydata()[0] == 0 and gain_curve.get_ydata()[-1] == pytest.approx(1.0)
    assert lift.get_lines()[0].get_ydata()[-1] == pytest.approx(1.0)  # targeting everyone: lift 1


def test_curves_need_both_classes():
    with pytest.raises(ValueError):
        plots.plot_roc([0, 0, 0], {"model": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError):
        plots.plot_gain_and_lift([0, 0, 0], {"model": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError):
        plots.plot_roc([0, 1], {})


def test_feature_importance_shows_the_top_features_largest_first():
    names = [f"feature_{i}" for i in range(30)]
    importances = np.arange(30.0)
    (ax,) = plots.plot_feature_importance(names, importances, top=5).axes
    assert len(ax.patches) == 5
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert labels[-1] == "feature_29"  # the top of a horizontal bar chart is the last tick
    assert set(labels) == {f"feature_{i}" for i in range(25, 30)}


def test_shap_summary_ranks_features_by_mean_absolute_contribution():
    rng = np.random.default_rng(3)
    contributions = rng.normal(size=(400, 4)) * np.array([0.1, 2.0, 0.5, 1.0])
    values = rng.normal(size=(400, 4))
    values[:10, 0] = np.nan  # missing values are drawn grey, not dropped
    fig = plots.plot_shap_summary(contributions, values, ["a", "b", "c", "d"], top=3, max_points=300)
    ax, colorbar = fig.axes
    assert [label.get_text() for label in ax.get_yticklabels()] == ["c", "d", "b"]  # bottom to top
    assert len(ax.collections) == 2 * 3  # missing and present dots per feature
    assert sum(len(c.get_offsets()) for c in ax.collections) == 3 * 300
    assert colorbar.get_ylabel()


def test_shap_summary_asks_callers_to_drop_the_bias_column():
    with pytest.raises(ValueError, match="bias"):
        plots.plot_shap_summary(np.zeros((5, 3)), np.zeros((5, 2)), ["a", "b"])
    with pytest.raises(ValueError):
        plots.plot_shap_summary(np.zeros((5, 2)), np.zeros((4, 2)), ["a", "b"])


def test_save_figure_writes_a_png(tmp_path, labelled_scores):
    labels, scores = labelled_scores
    path = plots.save_figure(plots.plot_gain_and_lift(labels, scores), tmp_path / "nested" / "gain.png", dpi=LOW_DPI)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_figures_build_and_save_in_threads(tmp_path, labelled_scores):
    labels, scores = labelled_scores

    def render(i: int) -> int:
        path = plots.save_figure(plots.plot_roc(labels, scores), tmp_path / f"roc_{i}.png", dpi=LOW_DPI)
        return path.stat().st_size

    with ThreadPoolExecutor(max_workers=3) as pool:
        sizes = list(pool.map(render, range(3)))
    assert all(size > 1000 for size in sizes)


def test_import_leaves_pyplot_alone():
    code = "import sys, models.plots; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).parents[1])
