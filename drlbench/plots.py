"""Report figures with matplotlib: sample-efficiency curves, aggregate intervals, performance
profiles and the probability-of-improvement matrix.

Every function takes plain arrays or `drlbench.stats` results and writes one PNG; nothing here
reads run records. Colours are the Okabe-Ito palette (distinguishable with every common form of
colour blindness), each agent keeps its colour across figures, and lines also differ in style so
a grey-scale print stays readable.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
PALETTE = [*OKABE_ITO, "#999999"]      # Okabe-Ito's eight and grey: nine agents with distinct colours
LINESTYLES = ["-", "--", "-.", ":"]
METRIC_TITLES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}

plt.rcParams.update({
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "savefig.dpi": 150, "savefig.bbox": "tight", "figure.dpi": 100,
})


def style(agents: list[str]) -> dict[str, dict]:
    """One colour and line style per agent, fixed by the agents' order; distinct pairs for up to 36 agents
    (past the 9 colours, each round of colours shifts the line styles by one)."""
    n = len(PALETTE)
    return {a: {"color": PALETTE[i % n], "linestyle": LINESTYLES[(i % n + i // n) % len(LINESTYLES)]}
            for i, a in enumerate(agents)}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, metadata={"Software": None})   # no version stamp: regenerating gives the same bytes
    plt.close(fig)
    os.replace(tmp, path)
    return path


def sample_efficiency(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                      styles: dict[str, dict], title: str, ylabel: str,
                      xlabel: str = "environment steps") -> Path:
    """curves: {agent: (steps, point, lower, upper)}; a line per agent with its interval band."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for agent, (steps, point, lower, upper) in curves.items():
        s = styles[agent]
        ax.plot(steps, point, label=agent, color=s["color"], linestyle=s["linestyle"], linewidth=1.8)
        ax.fill_between(steps, lower, upper, color=s["color"], alpha=0.2, linewidth=0)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xlabel == "environment steps":
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    ax.legend(frameon=False)
    return _save(fig, path)


def aggregate_intervals(path: Path, estimates: dict[str, dict], styles: dict[str, dict],
                        metrics=("iqm", "mean", "median", "optimality_gap")) -> Path:
    """rliable-style panels: one per metric, a horizontal interval bar per agent."""
    agents = list(estimates)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 0.45 * len(agents) + 1.2),
                             sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for row, agent in enumerate(agents):
            e = estimates[agent][metric]
            color = styles[agent]["color"]
            ax.barh(row, e.upper - e.lower, left=e.lower, height=0.6, color=color, alpha=0.75)
            ax.vlines(e.point, row - 0.3, row + 0.3, color="black", linewidth=1.5)
        ax.set_title(METRIC_TITLES.get(metric, metric))
        ax.set_xlabel("normalized score")
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(range(len(agents)), agents)
    axes[0][0].invert_yaxis()
    return _save(fig, path)


def performance_profiles(path: Path, profiles: dict, styles: dict[str, dict]) -> Path:
    """profiles: {agent: Profile(taus, point, lower, upper)} (fraction of runs with score > tau)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for agent, p in profiles.items():
        s = styles[agent]
        ax.plot(p.taus, p.point, label=agent, color=s["color"], linestyle=s["linestyle"], linewidth=1.8)
        ax.fill_between(p.taus, p.lower, p.upper, color=s["color"], alpha=0.2, linewidth=0)
    ax.set_xlabel(r"normalized score $\tau$")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(frameon=False)
    return _save(fig, path)


def improvement_matrix(path: Path, agents: list[str], matrix: np.ndarray) -> Path:
    """matrix[i, j] = P(agent i > agent j) (NaN on the diagonal), annotated, diverging around 0.5."""
    size = 1.0 + 0.9 * len(agents)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="PuOr", vmin=0.0, vmax=1.0)
    for i in range(len(agents)):
        for j in range(len(agents)):
            if i != j:
                value = matrix[i, j]
                ax.text(j, i, f"{value:.2f}", ha="center", va="center",
                        color="white" if abs(value - 0.5) > 0.3 else "black")
    ax.set_xticks(range(len(agents)), agents, rotation=30, ha="right")
    ax.set_yticks(range(len(agents)), agents)
    ax.set_xlabel("agent Y")
    ax.set_ylabel("agent X")
    ax.set_title("P(X > Y)")
    ax.grid(False)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)
