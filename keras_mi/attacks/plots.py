"""Figures of attack results: log-log ROC curves and score histograms.

Both functions build a :class:`matplotlib.figure.Figure` with the object API
(no ``pyplot``, no global state, safe on headless machines) and return it;
save it with ``fig.savefig(path)``. They never call ``plt.show()``.

ROC curves are drawn on log-log axes, where the low-FPR regime that matters
for membership inference is visible (Carlini et al. 2022); points with zero
FPR or TPR are drawn at a floor of ``1 / (2 n)`` so they stay on the plot.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from keras_mi.attacks.results import AttackReport, AttackResult

Results = Union[AttackReport, Sequence[AttackResult], AttackResult]


def _results(results: Results) -> Sequence[AttackResult]:
    if isinstance(results, AttackResult):
        return [results]
    return list(results.results if isinstance(results, AttackReport) else results)


def _figure(figsize):
    from matplotlib.figure import Figure  # lazy: matplotlib is only needed for plots
    return Figure(figsize=figsize, layout="constrained")


def log_roc_axes(ax, floor: float, title: Optional[str] = None, legend_size="small") -> None:
    """Log-log ROC axes from ``floor`` to 1 with the chance diagonal and a legend.

    Shared by every ROC figure of the package, so they read alike.

    Example:
      >>> log_roc_axes(fig.add_subplot(), 1e-3, "ROC")  # doctest: +SKIP
    """
    ax.plot([floor, 1.0], [floor, 1.0], linestyle="--", color="gray", linewidth=1,
            label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(floor, 1.0)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=legend_size, loc="lower right")


def plot_roc(results: Results, include_reference: bool = False, ax=None,
             title: Optional[str] = "Membership inference ROC (log-log)",
             figsize: Tuple[float, float] = (5.5, 5.0)):
    """Log-log ROC curves of several attacks on one figure, with the diagonal.

    Args:
      results: an :class:`AttackReport`, a list of results, or one result;
        results without ROC arrays are skipped.
      include_reference: also draw the reference-vs-non-members rows.
      ax: draw into this Axes instead of a new figure.

    Returns:
      The :class:`matplotlib.figure.Figure`.

    Example:
      >>> fig = plot_roc(report)  # doctest: +SKIP
      >>> fig.savefig("roc.png")  # doctest: +SKIP
    """
    rows = [r for r in _results(results) if r.fpr is not None and r.tpr is not None
            and (include_reference or r.is_membership)]
    if not rows:
        raise ValueError("No result has ROC arrays to plot (results loaded from JSON keep a "
                         "down-sampled ROC; pass AttackResults from run()).")
    if ax is None:
        fig = _figure(figsize)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    n = max(max(r.n_members, r.n_non_members, 1) for r in rows)
    floor = 1.0 / (2 * n)
    for r in rows:
        fpr = np.maximum(np.asarray(r.fpr, np.float64), floor)
        tpr = np.maximum(np.asarray(r.tpr, np.float64), floor)
        low = min(r.tpr_at_fpr) if r.tpr_at_fpr else None
        label = f"{r.name}" + ("" if r.is_membership else f" [{r.positives}]")
        label += f" AUC={r.auc:.3f}"
        if low is not None:
            label += f", TPR@{low:g}={r.tpr_at_fpr[low]:.3f}"
        ax.plot(fpr, tpr, label=label, drawstyle="steps-post" if len(fpr) > 3 else "default")
    log_roc_axes(ax, floor, title, legend_size="small")
    ax.grid(True, which="major", alpha=0.3)
    return fig


def plot_score_histograms(results: Union[Results, Mapping[str, Tuple[np.ndarray, np.ndarray]]],
                          bins: int = 50, log_y: bool = False, ncols: int = 3,
                          figsize_per_plot: Tuple[float, float] = (4.0, 3.0)):
    """Histograms of member vs non-member scores, one panel per attack.

    Args:
      results: results that kept their scores (``run(..., keep_scores=True)``),
        or ``{name: (member_scores, non_member_scores)}``.
      bins: histogram bins (shared by both sets in a panel).
      log_y: logarithmic counts.

    Returns:
      The :class:`matplotlib.figure.Figure`.

    Example:
      >>> fig = plot_score_histograms({"loss": (m_scores, n_scores)})  # doctest: +SKIP
    """
    if isinstance(results, Mapping):
        panels = [(name, np.asarray(m), np.asarray(n), "members", "non_members")
                  for name, (m, n) in results.items()]
    else:
        panels = [(r.name, r.member_scores, r.non_member_scores, r.positives, r.negatives)
                  for r in _results(results) if r.member_scores is not None
                  and r.non_member_scores is not None]
    if not panels:
        raise ValueError("No scores to plot: run the attacks with keep_scores=True, or pass "
                         "{name: (member_scores, non_member_scores)}.")
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure((figsize_per_plot[0] * ncols, figsize_per_plot[1] * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, m, n, pos_name, neg_name) in zip(axes, panels):
        m, n = np.asarray(m, np.float64), np.asarray(n, np.float64)
        m, n = m[np.isfinite(m)], n[np.isfinite(n)]
        both = np.concatenate([m, n])
        edges = np.histogram_bin_edges(both, bins=bins) if both.size else bins
        ax.hist(m, bins=edges, alpha=0.55, label=pos_name, density=True)
        ax.hist(n, bins=edges, alpha=0.55, label=neg_name, density=True)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("score (higher = more likely member)")
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig
