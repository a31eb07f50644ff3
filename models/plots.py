"""Evaluation plots for binary classifiers, returned as matplotlib `Figure` objects.

Every function builds a fresh `matplotlib.figure.Figure` and never touches pyplot, so nothing
global changes at import or call time and figures can be built in threads or a server.
Saving to PNG renders through matplotlib's Agg canvas without selecting a backend. Pass a
figure to `mlflow.log_figure(fig, "roc.png", save_kwargs=SAVE_OPTIONS)` or to `save_figure`.

`scores` arguments are dicts from a display name to predicted probabilities, in the order
they should be drawn: put the model first and baselines after it. Labels and scores follow the
conventions of `models.metrics` (0/1 labels, probabilities in [0, 1], aligned by position).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from models import metrics

# Blue (low feature value) to red (high), as in the usual SHAP summary plots.
FEATURE_VALUE_CMAP = LinearSegmentedColormap.from_list("feature_value", ["#1E88E5", "#7C52C8", "#FF0052"])
MISSING_VALUE_COLOR = "#9E9E9E"
REFERENCE_STYLE = {"color": "#7F7F7F", "linestyle": "--", "linewidth": 1.0}
DPI = 150
# Options for `Figure.savefig`; also `mlflow.log_figure(fig, "roc.png", save_kwargs=SAVE_OPTIONS)`.
SAVE_OPTIONS = {"dpi": DPI, "bbox_inches": "tight", "facecolor": "white"}


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write `fig` to `path` (format from the suffix, e.g. .png), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **{**SAVE_OPTIONS, "dpi": dpi})
    return path


def plot_roc(y_true, scores: Mapping[str, object]) -> Figure:
    """ROC curves of every entry in `scores` on one chart, AUC in the legend, chance diagonal."""
    labels, checked = _check_scores(y_true, scores, need_both_classes=True)
    fig, ax = _single_axes(figsize=(6.0, 5.6))
    for name, score in checked.items():
        fpr, tpr, _ = roc_curve(labels, score)
        ax.plot(fpr, tpr, linewidth=2.0, label=f"{name} (AUC = {roc_auc_score(labels, score):.3f})")
    ax.plot([0, 1], [0, 1], label="Chance (AUC = 0.500)", **REFERENCE_STYLE)
    _unit_square(ax)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate (recall)")
    ax.set_title(f"ROC curve (n = {labels.size:,}, positives = {int(labels.sum()):,})")
    ax.legend(loc="lower right")
    return fig


def plot_precision_recall(y_true, scores: Mapping[str, object]) -> Figure:
    """Precision-recall curves with average precision in the legend and the base rate as the
    no-skill line."""
    labels, checked = _check_scores(y_true, scores, need_both_classes=True)
    fig, ax = _single_axes(figsize=(6.0, 5.6))
    for name, score in checked.items():
        precision, recall, _ = precision_recall_curve(labels, score)
        average_precision = average_precision_score(labels, score)
        ax.plot(
            recall,
            precision,
            drawstyle="steps-post",
            linewidth=2.0,
            label=f"{name} (AP = {average_precision:.3f})",
        )
    base_rate = labels.mean()
    ax.plot([0, 1], [base_rate, base_rate], label=f"No skill (AP = {base_rate:.3f})", **REFERENCE_STYLE)
    _unit_square(ax)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(f"Precision-recall curve (base rate = {base_rate:.1%})")
    ax.legend(loc="upper right")
    return fig


def plot_calibration(y_true, scores: Mapping[str, object], n_bins: int = metrics.DEFAULT_N_BINS) -> Figure:
    """Reliability diagram (observed rate against mean prediction per bin, ECE and Brier score in
    the legend) above a histogram of the scores; e.g. a model before and after calibration."""
    labels, checked = _check_scores(y_true, scores, need_both_classes=False)
    fig = Figure(figsize=(6.0, 7.0), layout="constrained")
    reliability, histogram = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    reliability.plot([0, 1], [0, 1], label="Perfectly calibrated", **REFERENCE_STYLE)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for name, score in checked.items():
        table = metrics.calibration_table(labels, score, n_bins=n_bins)
        filled = table[table[metrics.COUNT] > 0]
        ece = metrics.expected_calibration_error(labels, score, n_bins=n_bins)
        brier = float(np.mean((score - labels) ** 2))
        (line,) = reliability.plot(
            filled[metrics.MEAN_PREDICTED],
            filled[metrics.OBSERVED_RATE],
            marker="o",
            linewidth=1.8,
            label=f"{name} (ECE = {ece:.3f}, Brier = {brier:.3f})",
        )
        histogram.hist(score, bins=edges, histtype="step", linewidth=1.8, color=line.get_color())
    for ax in (reliability, histogram):
        _style(ax)
        ax.set_xlim(0, 1)
    reliability.set_ylim(0, 1)
    reliability.set_ylabel("Observed positive rate")
    reliability.set_title(f"Calibration ({n_bins} equal-width bins, n = {labels.size:,})")
    reliability.legend(loc="upper left")
    histogram.set_xlabel("Mean predicted probability")
    histogram.set_ylabel("Rows")
    return fig


def plot_gain_and_lift(y_true, scores: Mapping[str, object]) -> Figure:
    """Two panels over the share of customers targeted (highest scores first): cumulative gain
    (share of positives captured) and cumulative lift (positive rate over the base rate)."""
    labels, checked = _check_scores(y_true, scores, need_both_classes=True)
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    gain_ax, lift_ax = fig.subplots(1, 2)
    for name, score in checked.items():
        targeted, captured = metrics.cumulative_gain(labels, score)
        capture_10 = metrics.capture_at(labels, score, 10)
        lift_10 = metrics.lift_at(labels, score, 10)
        gain_ax.plot(targeted, captured, linewidth=2.0, label=f"{name} (top 10% captures {capture_10:.1%})")
        lift_ax.plot(
            targeted[1:],
            captured[1:] / targeted[1:],
            linewidth=2.0,
            label=f"{name} (lift at 10% = {lift_10:.2f})",
        )
    base_rate = labels.mean()
    gain_ax.plot(
        [0, base_rate, 1],
        [0, 1, 1],
        color="#2CA02C",
        linestyle=":",
        linewidth=1.2,
        label="Perfect ranking",
    )
    gain_ax.plot([0, 1], [0, 1], label="Random", **REFERENCE_STYLE)
    lift_ax.axhline(1.0, label="Random (lift = 1)", **REFERENCE_STYLE)
    _unit_square(gain_ax, square=False)
    gain_ax.set_xlabel("Share of customers targeted")
    gain_ax.set_ylabel("Share of positives captured")
    gain_ax.set_title("Cumulative gain")
    gain_ax.legend(loc="lower right")
    _style(lift_ax)
    lift_ax.set_xlim(0, 1)
    lift_ax.set_ylim(bottom=0)
    lift_ax.set_xlabel("Share of customers targeted")
    lift_ax.set_ylabel("Cumulative lift")
    lift_ax.set_title(f"Cumulative lift (base rate = {base_rate:.1%})")
    lift_ax.legend(loc="upper right")
    for ax in (gain_ax, lift_ax):
        ax.xaxis.set_major_formatter("{x:.0%}")
    gain_ax.yaxis.set_major_formatter("{x:.0%}")
    return fig


def plot_feature_importance(
    names: Sequence[str], importances, top: int = 20, xlabel: str = "Importance (total gain)"
) -> Figure:
    """Horizontal bars of the `top` largest importances, largest at the top."""
    names = [str(name) for name in names]
    values = np.asarray(importances, dtype=float)
    if values.ndim != 1 or values.size != len(names):
        raise ValueError(f"importances must be one-dimensional with {len(names)} values")
    order = _top_order(values, top)
    shown = order[::-1]  # barh draws from the bottom up
    fig, ax = _single_axes(figsize=(7.0, 1.2 + 0.32 * order.size))
    ax.barh(np.arange(shown.size), values[shown], color="#1F77B4", height=0.7)
    ax.set_yticks(np.arange(shown.size), [names[i] for i in shown])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(xlabel)
    ax.set_title(f"Feature importance (top {order.size} of {values.size})")
    return fig


def plot_grouped_bars(values: Mapping[str, Sequence[float]], groups: Sequence[str], ylabel: str, title: str) -> Figure:
    """Grouped vertical bars: one group per entry of `groups` (e.g. "k = 10"), one bar per entry
    of `values` (a display name -> one value per group; put the model first), value on top."""
    groups = [str(group) for group in groups]
    series = {name: np.asarray(v, dtype=float) for name, v in values.items()}
    if not series or any(v.shape != (len(groups),) for v in series.values()):
        raise ValueError(f"values must map names to {len(groups)} numbers each")
    fig, ax = _single_axes(figsize=(1.6 + 1.4 * len(groups) * max(1, len(series)) / 3, 4.2))
    width = 0.8 / len(series)
    positions = np.arange(len(groups))
    for i, (name, heights) in enumerate(series.items()):
        bars = ax.bar(positions + (i - (len(series) - 1) / 2) * width, heights, width * 0.95, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(positions, groups)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_value_deciles(deciles: Mapping[str, object], title: str) -> Figure:
    """Predicted against actual value by decile of prediction (`models.value_metrics.decile_table`
    frames, one per candidate: decile, mean_predicted, mean_actual; put the model first). Bars: what
    each decile of the first candidate actually spent; lines: each candidate's mean prediction by
    its own deciles, with its actual spend dashed. A good model's lines fall from left to right with
    their dashed twins close."""
    tables = dict(deciles)
    if not tables:
        raise ValueError("no decile tables to plot")
    fig, ax = _single_axes(figsize=(7.0, 4.2))
    first = next(iter(tables.values()))
    ax.bar(first["decile"], first["mean_actual"], color="#D0D0D0", label=f"actual ({next(iter(tables))})")
    for i, (name, table) in enumerate(tables.items()):
        color = f"C{i}"
        ax.plot(table["decile"], table["mean_predicted"], "o-", color=color, label=f"{name}: predicted")
        ax.plot(table["decile"], table["mean_actual"], "x--", color=color, linewidth=1.0, label=f"{name}: actual")
    ax.set_xticks(first["decile"])
    ax.set_xlabel("decile of predicted value (1 = highest)")
    ax.set_ylabel("mean value per customer")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig


def plot_intervals(
    intervals: Mapping[str, Sequence[float]],
    metric: str,
    title: str,
    highlight: str | None = None,
    confidence: float = 0.95,
) -> Figure:
    """One row per candidate: the metric (dot) and its interval (line), best at the top; the
    `highlight`ed candidate (the one served) in bold. `intervals` maps a name to (estimate, low, high)."""
    rows = sorted(((name, *map(float, values)) for name, values in intervals.items()), key=lambda row: row[1])
    if not rows:
        raise ValueError("no intervals to plot")
    fig, ax = _single_axes(figsize=(6.4, 0.9 + 0.45 * len(rows)))
    positions = np.arange(len(rows))
    for position, (name, estimate, low, high) in zip(positions, rows, strict=True):
        served = name == highlight
        ax.plot(
            [low, high],
            [position, position],
            color="#1E88E5" if served else "#7F7F7F",
            linewidth=2.4 if served else 1.4,
        )
        ax.plot([estimate], [position], "o", color="#1E88E5" if served else "#3F3F3F", markersize=6)
        ax.annotate(
            f"{estimate:.3f}", (estimate, position), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7
        )
    labels = [f"{row[0]} (served)" if row[0] == highlight else row[0] for row in rows]
    ax.set_yticks(positions, labels)
    for label in ax.get_yticklabels():
        label.set_fontweight("bold" if label.get_text().endswith("(served)") else "normal")
    ax.set_xlabel(f"{metric} with its {confidence:.0%} interval (bootstrap over customers)")
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    return fig


def plot_shap_summary(
    contributions,
    feature_values,
    names: Sequence[str],
    top: int = 20,
    max_points: int = 2000,
    seed: int = 0,
) -> Figure:
    """Beeswarm-style summary of per-row SHAP contributions, one row of dots per feature.

    Features are ranked by mean |contribution|, most important at the top. Each dot is one
    customer: x is the feature's contribution to the model's raw score (log-odds for a LightGBM
    binary model), colour is the feature's value ranked within the feature (blue low, red high,
    grey missing). Rows are subsampled to `max_points` with a fixed `seed`.

    `contributions` and `feature_values` are (n_rows, n_features) with columns in `names` order.
    LightGBM's `booster.predict(X, pred_contrib=True)` returns one extra last column, the bias
    (expected value); callers drop it: `contributions = pred_contrib[:, :-1]`.
    """
    names = [str(name) for name in names]
    contributions = np.asarray(contributions, dtype=float)
    values = np.asarray(feature_values, dtype=float)
    if contributions.ndim != 2:
        raise ValueError(f"contributions must be 2-D (n_rows, n_features), got shape {contributions.shape}")
    if contributions.shape[1] == len(names) + 1:
        raise ValueError(
            "contributions has one column more than names: drop LightGBM's bias column, pred_contrib[:, :-1]"
        )
    if contributions.shape[1] != len(names) or values.shape != contributions.shape:
        raise ValueError(
            f"contributions {contributions.shape} and feature_values {values.shape} must both be (n_rows, {len(names)})"
        )
    if contributions.shape[0] == 0:
        raise ValueError("no rows to summarise")
    if contributions.shape[0] > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(contributions.shape[0], max_points, replace=False))
        contributions, values = contributions[keep], values[keep]

    order = _top_order(np.abs(contributions).mean(axis=0), top)
    fig, ax = _single_axes(figsize=(8.0, 1.4 + 0.42 * order.size))
    norm = Normalize(0.0, 1.0)
    for row, feature in enumerate(order[::-1]):
        x = contributions[:, feature]
        y = row + _swarm_offsets(x, width=0.38)
        colour = _value_ranks(values[:, feature])
        missing = np.isnan(colour)
        ax.scatter(
            x[missing],
            y[missing],
            s=9,
            color=MISSING_VALUE_COLOR,
            alpha=0.8,
            linewidths=0,
            rasterized=True,
        )
        ax.scatter(
            x[~missing],
            y[~missing],
            s=9,
            c=colour[~missing],
            cmap=FEATURE_VALUE_CMAP,
            norm=norm,
            alpha=0.9,
            linewidths=0,
            rasterized=True,
        )
    ax.axvline(0.0, color="#7F7F7F", linewidth=1.0, zorder=0)
    ax.set_yticks(np.arange(order.size), [names[i] for i in order[::-1]])
    ax.set_ylim(-0.6, order.size - 0.4)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("SHAP value (contribution to the raw score, log-odds)")
    ax.set_title(f"Feature contributions (top {order.size} of {len(names)}, {contributions.shape[0]:,} rows)")
    colorbar = fig.colorbar(
        ScalarMappable(norm=norm, cmap=FEATURE_VALUE_CMAP), ax=ax, ticks=[0, 1], aspect=40, pad=0.02
    )
    colorbar.ax.set_yticklabels(["Low", "High"])
    colorbar.set_label("Feature value (rank within feature)")
    colorbar.outline.set_visible(False)
    return fig


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------
def _check_scores(y_true, scores: Mapping[str, object], need_both_classes: bool):
    if not scores:
        raise ValueError("scores is empty: pass at least one {name: probabilities}")
    checked = {}
    labels = None
    for name, score in scores.items():
        labels, checked[str(name)] = metrics.check_binary_inputs(y_true, score)
    if need_both_classes and labels.min() == labels.max():
        raise ValueError("this curve needs both classes in y_true")
    return labels, checked


def _single_axes(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    _style(ax)
    return fig, ax


def _style(ax: Axes) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _unit_square(ax: Axes, square: bool = True) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    if square:
        ax.set_aspect("equal")


def _top_order(values: np.ndarray, top: int) -> np.ndarray:
    """Positions of the `top` largest values, largest first; ties keep input order."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    return np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[:top]


def _value_ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank among the feature's non-missing values, scaled to [0, 1]; NaN stays NaN.

    Ranks rather than raw values keep one outlier from washing out the colours."""
    ranks = np.full(values.shape, np.nan)
    present = ~np.isnan(values)
    if present.sum() == 1:
        ranks[present] = 0.5
    elif present.any():
        order = np.argsort(np.argsort(values[present], kind="stable"), kind="stable")
        ranks[present] = order / (present.sum() - 1)
    return ranks


def _swarm_offsets(x: np.ndarray, width: float, n_bins: int = 100) -> np.ndarray:
    """Vertical offsets that spread dots with similar x, like a beeswarm: within each x bin the
    dots alternate above and below the centre line, scaled so the densest bin fills `width`."""
    span = x.max() - x.min()
    if span == 0:
        bins = np.zeros(x.size, dtype=np.int64)
    else:
        bins = np.minimum(((x - x.min()) / span * n_bins).astype(np.int64), n_bins - 1)
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    starts = np.searchsorted(sorted_bins, sorted_bins, side="left")
    position = np.arange(x.size) - starts  # 0, 1, 2, ... within each bin
    layer = (position + 1) // 2 * np.where(position % 2 == 1, 1, -1)  # 0, +1, -1, +2, -2, ...
    offsets = np.empty(x.size)
    offsets[order] = layer
    deepest = np.abs(layer).max()
    return offsets * (width / deepest) if deepest > 0 else offsets
