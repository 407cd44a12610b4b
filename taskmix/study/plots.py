"""Figures of a study report, each returned as PNG bytes.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot), so drawing a
report never touches global backend state or opens a window.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.figure import Figure

from taskmix.study.analysis import CurvePoint, RestartRun

DPI = 100


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def correlation_heatmap(names: list[str], matrix: np.ndarray, title: str) -> bytes:
    """Target-task correlations on a diverging scale fixed to [-1, 1]."""
    size = 1.0 + 0.6 * len(names)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), value in np.ndenumerate(matrix):
        if not math.isnan(value):
            colour = "white" if abs(value) > 0.6 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    return _png(fig)


def learning_curves(curves: dict[str, dict[str, list[CurvePoint]]], axis: str = "target training examples") -> bytes:
    """One panel per task: score vs the training examples of one stage (log scale), one line per pipeline.

    Full-data points have no example count; they are drawn one step right of the largest
    limit and labelled 'full'.
    """
    sizes = sorted({p.size for rows in curves.values() for pts in rows.values() for p in pts if p.size})
    full_x = (sizes[-1] if sizes else 1) * 4
    columns = min(3, len(curves))
    rows = math.ceil(len(curves) / columns)
    fig = Figure(figsize=(4.5 * columns, 3.4 * rows + 0.6), layout="constrained")
    for index, (task, pipelines) in enumerate(curves.items()):
        ax = fig.add_subplot(rows, columns, index + 1)
        for label, points in pipelines.items():
            points = sorted(points, key=lambda p: p.size or full_x)
            x = [p.size or full_x for p in points]
            std = [0.0 if math.isnan(p.std) else p.std for p in points]
            ax.errorbar(x, [p.mean for p in points], yerr=std, marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ticks = sizes + [full_x]
        ax.set_xticks(ticks, [str(s) for s in sizes] + ["full"])
        ax.minorticks_off()
        ax.set_title(task)
        ax.set_xlabel(axis)
        ax.set_ylabel("score")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)))
    return _png(fig)


def restart_strips(task: str, groups: dict[str, list[RestartRun]]) -> bytes:
    """Every restart as a cross per pipeline, degenerate runs as red circles.

    As seed 002 Figure 1: an error line shows mean ± 1 std over all runs, and the
    selected (best-on-dev) run of each seed is outlined.
    """
    fig = Figure(figsize=(max(4.0, 1.3 * len(groups) + 1.5), 3.8))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for x, (label, runs) in enumerate(groups.items()):
        jitter = rng.uniform(-0.12, 0.12, len(runs))
        normal = [(x + j, r.score) for j, r in zip(jitter, runs) if not r.degenerate]
        degenerate = [(x + j, r.score) for j, r in zip(jitter, runs) if r.degenerate]
        selected = [(x + j, r.score) for j, r in zip(jitter, runs) if r.selected]
        if normal:
            ax.scatter(*zip(*normal), marker="x", color="tab:blue", label="run")
        if degenerate:
            ax.scatter(*zip(*degenerate), marker="o", facecolors="none", edgecolors="tab:red", label="degenerate")
        if selected:
            ax.scatter(*zip(*selected), marker="s", facecolors="none", edgecolors="black", s=60, label="selected")
        scores = [r.score for r in runs]
        std = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
        ax.errorbar(x + 0.3, np.mean(scores), yerr=std, color="gray", capsize=4)
    ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right")
    ax.set_ylabel("score")
    ax.set_title(f"{task}: all restarts")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    return _png(fig)


def gain_heatmap(rows: list[str], columns: list[str], gains: np.ndarray, labels: list[list[str]], title: str) -> bytes:
    """A transfer matrix: mean gain per (candidate, target) on a diverging scale centred on zero, each cell
    annotated with its label (gain and significance mark); NaN cells stay blank."""
    bound = float(np.nanmax(np.abs(gains))) if np.isfinite(gains).any() else 1.0
    fig = Figure(figsize=(1.6 + 0.9 * len(columns), 1.0 + 0.45 * len(rows)))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(gains), cmap="RdBu", vmin=-(bound or 1.0), vmax=bound or 1.0,
                      aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(gains):
        if not math.isnan(value):
            colour = "white" if abs(value) > 0.6 * bound else "black"
            ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="gain (points)")
    ax.set_title(title)
    return _png(fig)
