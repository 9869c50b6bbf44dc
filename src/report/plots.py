"""The report's figures, drawn with matplotlib's Agg backend from the document's plot data, as base64 PNG."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable
from typing import Any

from src.report.routing_plot import plot_routing

_PHASE_COLORS = {"baseline": "#8c959f", "optimized": "#d9731a"}
_EXTRA_COLORS = ["#4c72b0", "#55a868", "#8172b2", "#c44e52", "#64b5cd"]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _top_legend(fig: Any, handles: list[Any], labels: list[str] | None = None) -> None:
    """A one-row legend in a fixed 0.4-inch strip above the axes, whatever the figure's height."""
    height = fig.get_size_inches()[1]
    top = 1 - 0.4 / height
    kwargs = {"handles": handles} if labels is None else {"handles": handles, "labels": labels}
    fig.legend(**kwargs, loc="upper center", ncol=len(handles), frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, top))


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(n / cols), cols


def make_figures(data: dict[str, Any], keys: Iterable[str]) -> dict[str, str]:
    """Base64 PNGs for the requested plot keys that have data; a key without data is simply absent."""
    import matplotlib

    matplotlib.use("Agg")
    makers = {"scores": _plot_scores, "delta_heatmap": _plot_delta_heatmap, "cost_frontier": _plot_cost_frontier,
              "demo_curves": _plot_curves, "tipping_curves": _plot_curves, "routing": plot_routing}
    out = {}
    for key in keys:
        maker = makers.get(key)
        if maker and data.get(key):
            fig = maker(data[key])
            if fig is not None:
                out[key] = _png(fig)
    return out


def _plot_scores(data: dict[str, Any]) -> Any:
    """Per task: each model's arms as bars with their 95% intervals."""
    import matplotlib.pyplot as plt
    import numpy as np

    tasks, models, arms = data["tasks"], data["models"], data["arms"]  # arms: list of dicts
    phases = data["phases"]
    # Many models: one task per row, full width, so ten models' bars and labels stay readable
    rows, cols = _grid(len(tasks), 2 if len(models) <= 5 else 1)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols if cols > 1 else 12.4, 3.4 * rows), squeeze=False)
    width = 0.8 / max(1, len(phases))
    colors = {p: _PHASE_COLORS.get(p, _EXTRA_COLORS[i % len(_EXTRA_COLORS)]) for i, p in enumerate(phases)}
    for ax, task in zip(axes.flat, tasks):
        present = [m for m in models if any(a["task"] == task and a["model"] == m for a in arms)]
        x = np.arange(len(present))
        for j, phase in enumerate(phases):
            vals, lo, hi = [], [], []
            for m in present:
                a = next((a for a in arms if a["task"] == task and a["model"] == m and a["phase"] == phase), None)
                v = a["score"] * 100 if a else np.nan
                vals.append(v)
                lo.append(v - a["lo"] * 100 if a and not math.isnan(a["lo"]) else 0)
                hi.append(a["hi"] * 100 - v if a and not math.isnan(a["hi"]) else 0)
            ax.bar(x + (j - (len(phases) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=3,
                   color=colors[phase], label=phase, error_kw={"elinewidth": 1, "ecolor": "#333333"})
        ax.set_title(task, fontsize=11)
        ax.set_xticks(x)
        if len(present) > 4:  # many models: one rotated line each, so the labels never overlap
            ax.set_xticklabels([f"{m} ({data['kinds'].get(m, '?')})" for m in present], fontsize=8, rotation=35,
                               ha="right", rotation_mode="anchor")
        else:
            ax.set_xticklabels([f"{m}\n({data['kinds'].get(m, '?')})" for m in present], fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("score (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    _top_legend(fig, handles, labels)
    return fig


def _plot_delta_heatmap(data: dict[str, Any]) -> Any:
    """Models x tasks, colour = delta in points; * = CI excludes 0 and p < .05; † = also survives Holm."""
    import matplotlib.pyplot as plt
    import numpy as np

    models, tasks, cells = data["models"], data["tasks"], data["cells"]
    grid = np.full((len(models), len(tasks)), np.nan)
    marks = {}
    for c in cells:
        i, j = models.index(c["model"]), tasks.index(c["task"])
        grid[i, j] = c["delta"] * 100
        marks[(i, j)] = "*†" if c["holm"] else ("*" if c["significant"] else "")
    vmax = max(10.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 10.0)
    fig, ax = plt.subplots(figsize=(1.5 + 1.25 * len(tasks), 1.0 + 0.5 * len(models)))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    for (i, j), mark in marks.items():
        v = grid[i, j]
        ax.text(j, i, f"{v:+.1f}{mark}", ha="center", va="center", fontsize=9,
                color="white" if abs(v) > 0.6 * vmax else "#111111")
    for i in range(len(models)):
        for j in range(len(tasks)):
            if np.isnan(grid[i, j]):
                ax.text(j, i, "–", ha="center", va="center", fontsize=9, color="#888888")
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models)
    fig.colorbar(im, ax=ax, label="optimized − baseline (points)", shrink=0.8)
    fig.tight_layout()
    return fig


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The cost-accuracy frontier: points no other point beats on both (cheaper-or-equal and better)."""
    best, out = -1.0, []
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > best:
            out.append((cost, score))
            best = score
    return out


def _plot_cost_frontier(data: dict[str, Any]) -> Any:
    """Per task: score vs $ per 1,000 examples (symlog x: $0 local points stay visible), with the frontier."""
    import matplotlib.pyplot as plt

    points = [p for p in data["points"] if p["cost_per_1k"] is not None and not math.isnan(p["cost_per_1k"])]
    tasks = [t for t in data["tasks"] if any(p["task"] == t for p in points)]
    if not tasks:
        return None
    rows, cols = _grid(len(tasks), 2)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.8 * rows), squeeze=False)
    positive = [p["cost_per_1k"] for p in points if p["cost_per_1k"] > 0]
    linthresh = min(positive) / 2 if positive else 0.01
    for ax, task in zip(axes.flat, tasks):
        pts = [p for p in points if p["task"] == task]
        for p in pts:
            color = _PHASE_COLORS.get(p["phase"], _EXTRA_COLORS[0])
            marker = "o" if p["kind"] == "local" else "s"
            ax.scatter(p["cost_per_1k"], p["score"] * 100, c=color, marker=marker, s=46, edgecolors="#222222",
                       linewidths=0.6, zorder=3)
            ax.annotate(f"{p['model']}", (p["cost_per_1k"], p["score"] * 100), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        front = _pareto([(p["cost_per_1k"], p["score"] * 100) for p in pts])
        if len(front) > 1:
            ax.step([c for c, _ in front], [s for _, s in front], where="post", color="#0b5cad", lw=1, alpha=0.6,
                    zorder=2)
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_title(task, fontsize=11)
        ax.set_xlabel("$ per 1,000 examples (symlog)")
        ax.set_ylabel("score (%)")
        ax.set_ylim(-3, 105)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    legend = [Line2D([], [], marker="o", ls="", color="#cccccc", markeredgecolor="#222222", label="local"),
              Line2D([], [], marker="s", ls="", color="#cccccc", markeredgecolor="#222222", label="API"),
              Line2D([], [], marker="o", ls="", color=_PHASE_COLORS["baseline"], label="baseline"),
              Line2D([], [], marker="o", ls="", color=_PHASE_COLORS["optimized"], label="optimized"),
              Line2D([], [], color="#0b5cad", label="frontier")]
    _top_legend(fig, legend)
    return fig


def _plot_curves(data: dict[str, Any]) -> Any:
    """One small plot per (model, task): score vs a count (demos, optimization examples) per condition, with the
    CI band."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    pairs = data["pairs"]  # list of {model, task, conditions: {name: [(n, score, lo, hi)]}, percent: bool}
    if not pairs:
        return None
    rows, cols = _grid(len(pairs), 4)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs):
        scale = 100 if pair["percent"] else 1
        for k, (cond, pts) in enumerate(sorted(pair["conditions"].items())):
            pts = sorted(pts)
            xs = [p[0] for p in pts]
            color = _EXTRA_COLORS[k % len(_EXTRA_COLORS)]
            ax.plot(xs, [p[1] * scale for p in pts], marker="o", ms=3, lw=1.2, color=color, label=cond)
            lo = [p[2] * scale if p[2] is not None else p[1] * scale for p in pts]
            hi = [p[3] * scale if p[3] is not None else p[1] * scale for p in pts]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
        ax.set_title(f"{pair['model']} / {pair['task']}", fontsize=9)
        ax.set_xlabel(data.get("xlabel", "demos"), fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2-demo ticks
        ax.set_ylabel("score (%)" if pair["percent"] else "score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
