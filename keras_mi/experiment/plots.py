"""Report figures with matplotlib's object API (no pyplot, no display).

* :func:`roc_figure`: log-log ROC of the strongest attack per defense, with
  the chance diagonal; the low-FPR corner is where a privacy attack matters.
* :func:`privacy_utility_figure`: test accuracy against the strongest
  attack's advantage, one labelled point per defense (up-left is better).

Both return a ``matplotlib.figure.Figure``; save it with ``fig.savefig``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from keras_mi.attacks.plots import log_roc_axes


def _figure(size=(5.5, 4.5)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

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


def privacy_utility_figure(report: Dict[str, Any]):
    """Test accuracy vs strongest-attack advantage, one point per defense.

    Example:
      >>> privacy_utility_figure(report).savefig("pu.png")  # doctest: +SKIP
    """
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for defense, row in report["defenses"].items():
        best = row.get("strongest_attack")
        acc = row["test_accuracy"] if row["test_accuracy"] is not None else row["non_member_accuracy"]
        if best is None or acc is None:
            continue
        ax.scatter([best["advantage"]], [acc], s=40)
        label = defense if row.get("epsilon") is None else f"{defense} (ε={row['epsilon']:.1f})"
        ax.annotate(label, (best["advantage"], acc), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.set_xlabel("strongest attack advantage (TPR − FPR)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Privacy vs utility (up and left is better)")
    ax.set_xlim(left=0.0)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
