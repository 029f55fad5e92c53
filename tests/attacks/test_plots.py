"""Plots return Figures with log-log ROC axes and per-attack histograms."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure

from keras_mi import attacks


def test_roc_figure_has_log_axes_one_curve_per_attack_and_diagonal(make_outputs, tmp_path):
    report = attacks.run(make_outputs(reference=True), ["gap", "loss", "entropy"])
    fig = attacks.plot_roc(report)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 4 and labels[-1] == "chance"
    assert labels[1].startswith("loss AUC=")
    # Reference rows only on request.
    assert len(attacks.plot_roc(report, include_reference=True).axes[0].get_lines()) == 7
    fig.savefig(tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 1000


def test_histograms_need_scores(make_outputs):
    out = make_outputs()
    report = attacks.run(out, ["loss", "entropy"], keep_scores=True)
    fig = attacks.plot_score_histograms(report)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["loss", "entropy"]
    # Densities of both sets are drawn: two bar containers per panel.
    assert len(visible[0].containers) == 2
    with pytest.raises(ValueError, match="keep_scores"):
        attacks.plot_score_histograms(attacks.run(out, ["loss"]))
    fig = attacks.plot_score_histograms({"x": (np.r_[1.0, 2.0], np.r_[0.0, -np.inf])})
    assert fig.axes[0].get_title() == "x"
