"""AttackResult / AttackReport: JSON round trip, strongest, summary."""

import json

import numpy as np
import pytest

from keras_mi.attacks import metrics
from keras_mi.attacks.results import (
    AttackReport,
    AttackType,
    downsample_roc,
    evaluate_scores,
)


def _report():
    rng = np.random.default_rng(0)
    weak = evaluate_scores(rng.normal(0.1, 1, 500), rng.normal(0, 1, 500), name="entropy")
    strong = evaluate_scores(rng.normal(1.0, 1, 500), rng.normal(0, 1, 500), name="loss")
    ref = evaluate_scores(rng.normal(3.0, 1, 500), rng.normal(0, 1, 500), name="loss",
                          positives="reference")
    return AttackReport([weak, strong, ref], metadata={"model": "toy"})


def test_evaluate_scores_matches_metrics_and_names_type():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    r = evaluate_scores(pos, neg, name="modified_entropy", fpr_targets=(0.05,))
    fpr, tpr, _ = metrics.roc_curve(pos, neg)
    assert r.attack_type is AttackType.MODIFIED_ENTROPY
    assert r.auc == metrics.auc(fpr, tpr)
    assert r.advantage == metrics.advantage(fpr, tpr)
    assert r.tpr_at_fpr == {0.05: metrics.tpr_at_fpr(fpr, tpr, 0.05)}
    assert (r.n_members, r.n_non_members) == (300, 200)
    assert evaluate_scores(pos, neg, name="whatever").attack_type is AttackType.CUSTOM


def test_strongest_ignores_reference_rows_and_uses_requested_metric():
    rep = _report()
    assert rep.strongest().name == "loss" and rep.strongest().positives == "members"
    assert rep.strongest(by="auc").name == "loss"
    with pytest.raises(ValueError, match="advantage"):
        rep.strongest(by="ppv")
    text = rep.summary()
    assert "strongest (by advantage): loss" in text
    assert "[reference vs non_members]" in text


def test_json_round_trip_keeps_metrics_and_drops_scores():
    rep = _report()
    rep.results[0].member_scores = np.ones(3)
    text = rep.to_json(max_roc_points=64)
    back = AttackReport.from_json(text)
    assert back.metadata == {"model": "toy"}
    for a, b in zip(rep.results, back.results):
        assert (a.name, a.attack_type, a.auc, a.advantage, a.tpr_at_fpr, a.positives) == \
               (b.name, b.attack_type, b.auc, b.advantage, b.tpr_at_fpr, b.positives)
        assert len(b.fpr) <= 64
    assert "member_scores" not in json.loads(text)["results"][0]


def test_downsample_roc_keeps_low_fpr_exact():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(2, 1, 20000), rng.normal(0, 1, 20000)
    fpr, tpr, _ = metrics.roc_curve(pos, neg)
    f, t = downsample_roc(fpr, tpr, 200)
    assert len(f) <= 200
    assert (f[0], t[0], f[-1], t[-1]) == (0.0, 0.0, 1.0, 1.0)
    # The smallest positive FPR is on the grid, so TPR there is exact.
    lo = fpr[fpr > 0].min()
    assert metrics.tpr_at_fpr(f, t, lo) == metrics.tpr_at_fpr(fpr, tpr, lo)
    assert abs(metrics.auc(f, t) - metrics.auc(fpr, tpr)) < 0.01
