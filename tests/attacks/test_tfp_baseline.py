"""Our attacks agree with TF-Privacy's harness where both compute the same thing."""

import pytest

from keras_mi import attacks
from keras_mi.attacks import tfp_baseline

pytest.importorskip("tensorflow")


def test_threshold_rows_agree_with_ours_to_1e6(make_outputs):
    out = make_outputs(seed=7, n=600, num_classes=10)
    ours = attacks.run(out, ["loss", "modified_entropy", "entropy"])
    tfp = tfp_baseline.run_tf_privacy_baseline(out, ["threshold", "threshold_entropy"])
    t_loss, t_ent = tfp.results
    assert t_loss.name == "tfp_threshold" and t_ent.name == "tfp_threshold_entropy"
    assert abs(t_loss.auc - ours.get("loss").auc) < 1e-6
    assert abs(t_loss.advantage - ours.get("loss").advantage) < 1e-6
    assert abs(t_ent.auc - ours.get("modified_entropy").auc) < 1e-6
    assert abs(t_ent.advantage - ours.get("modified_entropy").advantage) < 1e-6
    assert t_loss.tpr_at_fpr == pytest.approx(ours.get("loss").tpr_at_fpr, abs=1e-6)
    # The harness's "entropy" is the modified entropy, not Shannon's.
    assert abs(t_ent.auc - ours.get("entropy").auc) > 1e-3


def test_rows_that_look_like_probabilities_are_still_logits(make_outputs):
    out = make_outputs(seed=8, n=200, num_classes=3)
    logits = out.logits["members"].copy()
    logits[:20] = logits[:20] - logits[:20].sum(1, keepdims=True) / 3 + 1 / 3  # rows sum to 1
    shifted = type(out).from_arrays(members=(logits, out.labels["members"]),
                                    non_members=out.get("non_members"))
    ours = attacks.run(shifted, ["modified_entropy"])
    tfp = tfp_baseline.run_tf_privacy_baseline(shifted, ["threshold_entropy"])
    assert abs(tfp.results[0].auc - ours.get("modified_entropy").auc) < 1e-6


@pytest.mark.slow
def test_trained_attacks_and_run_integration(make_outputs):
    out = make_outputs(seed=9, n=150, num_classes=4)
    report = attacks.run(out, ["loss"], baseline=True,
                         baseline_options={"attack_types": ("threshold", "lr"), "seed": 1})
    names = [r.name for r in report]
    assert names == ["loss", "tfp_threshold", "tfp_logistic_regression"]
    lr = report.get("tfp_logistic_regression")
    assert lr.attack_type.is_baseline and 0.5 < lr.auc <= 1.0
    again = tfp_baseline.run_tf_privacy_baseline(out, ["lr"], seed=1)
    assert again.results[0].auc == lr.auc  # seeded: reproducible
    assert report.strongest(include_baseline=False).name == "loss"


def test_unknown_tfp_attack():
    with pytest.raises(ValueError, match="choose from"):
        tfp_baseline.run_tf_privacy_baseline(None, ["svm"])
