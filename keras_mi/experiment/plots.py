"""Report figures with matplotlib's object API (no pyplot, no display).

* :func:`roc_figure`: log-log ROC of the strongest attack per defense, with
  the chance diagonal; the low-FPR corner is where a privacy attack matters.
* :func:`privacy_utility_figure`: test accuracy against the strongest
  attack's TPR at 0.1 % FPR (log axis, with intervals), one labelled point
  per defense (up-left is better).

Both return a ``matplotlib.figure.Figure``; save it with ``fig.savefig``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from keras_mi.attacks.plots import log_roc_axes


def _figure(size=(5.5, 4.5)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib only when plotting
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def roc_figure(curves: Dict[str, Any], floor: Optional[float] = None):
    """Log-log ROC curves, one per defense.

    Args:
      curves: defense -> an :class:`keras_mi.attacks.AttackResult` with
        ``fpr``/``tpr`` arrays (its strongest attack).
      floor: smallest rate shown (zeros are clipped to it on log axes);
        default half the FPR resolution, ``0.5 / non-members``.

    Example:
      >>> fig = roc_figure({"none": report.strongest()})  # doctest: +SKIP
      >>> fig.savefig("roc.png")  # doctest: +SKIP
    """
    if floor is None:
        sizes = [r.n_non_members for r in curves.values() if r is not None and r.n_non_members]
        floor = 0.5 / max(sizes) if sizes else 1e-4
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for defense, result in curves.items():
        if result is None or result.fpr is None:
            continue
        fpr = np.clip(np.asarray(result.fpr, float), floor, 1.0)
        tpr = np.clip(np.asarray(result.tpr, float), floor, 1.0)
        ax.step(fpr, tpr, where="post",
                label=f"{defense}: {result.name} (AUC {result.auc:.3f})")
    log_roc_axes(ax, floor, "Strongest attack per defense (log-log ROC)", legend_size=7)
    fig.tight_layout()
    return fig


def _privacy_point(row: Dict[str, Any], fpr: str):
    """(test accuracy, TPR, CI) of a defense: its bank (adaptive) when it has one."""
    bank = row.get("bank", {})
    if "adaptive" in bank:
        best = bank["adaptive"]["strongest_attack"]
        acc = bank.get("accuracy", {}).get("population", {}).get("median")
    else:
        best = row.get("strongest_attack")
        acc = row["test_accuracy"]
        if acc is None:
            acc = row["non_member_accuracy"]
    if best is None or acc is None:
        return None
    point = (best.get("low_fpr") or {}).get(fpr)
    return acc, best, point


def privacy_utility_figure(report: Dict[str, Any]):
    """Test accuracy vs the strongest attack's TPR at 0.1 % FPR (log axis), one point per defense.

    Uses each defense's bank (adaptive) when the run has one, else its
    single target; error bars are the 95 % intervals. When 0.1 % FPR is not
    resolved for every defense (too few non-members), the figure uses 1 %
    and says so on the axis. Up and left is better.

    Example:
      >>> privacy_utility_figure(report).savefig("pu.png")  # doctest: +SKIP
    """
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    rows = report["defenses"]
    fpr = "0.001"
    for candidate in ("0.001", "0.01"):
        fpr = candidate
        points = [_privacy_point(r, candidate) for r in rows.values()]
        if all(p is None or p[2] is None or p[2]["resolved"] for p in points):
            break
    floor = 1e-4
    for defense, row in rows.items():
        got = _privacy_point(row, fpr)
        if got is None:
            continue
        acc, best, point = got
        tpr = best["tpr_at_fpr"].get(fpr) if point is None else point["tpr"]
        if tpr is None:
            continue
        x = max(tpr, floor)
        if point is not None:
            lo, hi = point["ci"]
            ax.errorbar([x], [acc], xerr=[[x - max(lo, floor)], [max(hi, floor) - x]], fmt="o",
                        capsize=3, markersize=5)
        else:
            ax.scatter([x], [acc], s=30)
        label = defense if row.get("epsilon") is None else f"{defense} (ε={row['epsilon']:.1f})"
        ax.annotate(label, (x, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, 1.0)
    protocol = "bank, adaptive" if any("bank" in r for r in rows.values()) else "single target"
    ax.set_xlabel(f"strongest attack TPR at {float(fpr) * 100:g} % FPR ({protocol}; log)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Privacy vs utility (up and left is better)")
    ax.grid(True, alpha=0.3, which="both")
    fig.tight_layout()
    return fig
