"""The routing figure: per task, each routing policy's quality against its $ per 1,000 requests (test half), with
the cost–quality frontier and the recommended policy marked."""

from __future__ import annotations

import math
from typing import Any


def plot_routing(data: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    points = [p for p in data["points"] if p["usd_per_1k"] is not None and not math.isnan(p["usd_per_1k"])]
    tasks = [t for t in data["tasks"] if any(p["task"] == t for p in points)]
    if not tasks:
        return None
    cols = min(2, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.8 * rows), squeeze=False)
    positive = [p["usd_per_1k"] for p in points if p["usd_per_1k"] > 0]
    linthresh = min(positive) / 2 if positive else 0.01
    for ax, task in zip(axes.flat, tasks):
        pts = [p for p in points if p["task"] == task]
        for pair in dict.fromkeys(p["pair"] for p in pts):
            mine = [p for p in pts if p["pair"] == pair]
            line = ax.scatter([p["usd_per_1k"] for p in mine], [100 * p["quality"] for p in mine], s=36,
                              edgecolors="#222222", linewidths=0.5, zorder=3, label=pair)
            front = sorted((p["usd_per_1k"], 100 * p["quality"]) for p in mine if p["frontier"])
            if len(front) > 1:
                ax.step([c for c, _ in front], [q for _, q in front], where="post", lw=1, alpha=0.6,
                        color=line.get_facecolor()[0], zorder=2)
            for p in mine:
                ax.annotate(p["policy"].replace("cascade on ", "→"), (p["usd_per_1k"], 100 * p["quality"]),
                            fontsize=6, xytext=(3, 3), textcoords="offset points")
                if p["recommended"]:
                    ax.scatter([p["usd_per_1k"]], [100 * p["quality"]], marker="*", s=180, c="#f2b705",
                               edgecolors="#222222", linewidths=0.6, zorder=4)
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_title(task, fontsize=11)
        ax.set_xlabel("$ per 1,000 requests (symlog)")
        ax.set_ylabel("quality (%)")
        ax.set_ylim(-3, 105)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
