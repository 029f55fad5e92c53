"""Gap, global and class-dependent threshold attacks vs hand/NumPy references."""

import numpy as np
import pytest

from keras_mi.attacks import threshold
from keras_mi.attacks.results import AttackType
from keras_mi.outputs import ModelOutputs


def _pairwise_auc(pos, neg):
    diff = pos[:, None] - neg[None, :]
    return np.mean(diff > 0) + 0.5 * np.mean(diff == 0)


def test_gap_attack_accuracy_is_half_plus_half_gap(outputs):
    r = threshold.gap_attack(outputs)
    acc_m = np.mean(outputs.logits["members"].argmax(1) == outputs.labels["members"])
    acc_n = np.mean(outputs.logits["non_members"].argmax(1) == outputs.labels["non_members"])
    assert acc_m > acc_n
    assert r.best_accuracy == pytest.approx(0.5 + (acc_m - acc_n) / 2)
    assert r.auc == pytest.approx(0.5 + (acc_m - acc_n) / 2)
    assert r.advantage == pytest.approx(acc_m - acc_n)
    assert len(r.fpr) == 3 and r.fpr[1] == pytest.approx(acc_n) and r.tpr[1] == pytest.approx(acc_m)
    assert r.attack_type is AttackType.GAP


@pytest.mark.parametrize("score", ["loss", "confidence", "entropy", "modified_entropy"])
def test_global_threshold_auc_matches_pairwise_count(outputs, score):
    r = threshold.threshold_attack(outputs, score)
    em, en = np.exp(outputs.logits["members"]), np.exp(outputs.logits["non_members"])
    p = em / em.sum(1, keepdims=True)
    q = en / en.sum(1, keepdims=True)
    ym, yn = outputs.labels["members"], outputs.labels["non_members"]
    naive = {
        "loss": (np.log(p[np.arange(len(ym)), ym]), np.log(q[np.arange(len(yn)), yn])),
        "confidence": (p[np.arange(len(ym)), ym], q[np.arange(len(yn)), yn]),
        "entropy": ((p * np.log(p)).sum(1), (q * np.log(q)).sum(1)),
    }
    if score in naive:
        assert r.auc == pytest.approx(_pairwise_auc(*naive[score]), abs=1e-12)
    assert r.auc > 0.6  # members were boosted: every score must notice


def test_class_thresholds_beat_global_when_classes_differ_in_scale():
    # Class 0: members' confidence ~0.9, non-members ~0.8.
    # Class 1: members ~0.6, non-members ~0.5. One global threshold cannot
    # separate both; one threshold per class can.
    def logits_for(conf):  # 2 classes, label 0 or 1 with p_y = conf
        z = np.log(conf / (1 - conf))
        return z

    def split(confs, labels):
        z = np.array([logits_for(c) for c in confs])
        logits = np.zeros((len(confs), 2))
        logits[np.arange(len(confs)), labels] = z
        return logits, np.asarray(labels)

    rng = np.random.default_rng(0)
    def make():
        n = 200
        lab = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
        m_conf = np.where(lab == 0, 0.9, 0.6) + rng.uniform(-0.03, 0.03, n)
        n_conf = np.where(lab == 0, 0.8, 0.5) + rng.uniform(-0.03, 0.03, n)
        return ModelOutputs.from_arrays(members=split(m_conf, lab), non_members=split(n_conf, lab))

    shadow, target = make(), make()
    thr = threshold.learn_class_thresholds(shadow, "confidence")
    assert 0.82 < thr[0] <= 0.93 and 0.52 < thr[1] <= 0.63
    cls = threshold.class_threshold_attack(target, "confidence", shadow_outputs=[shadow])
    glob = threshold.threshold_attack(target, "confidence")
    assert cls.best_accuracy == 1.0 and cls.advantage == 1.0
    assert glob.best_accuracy < 0.9
    assert cls.attack_type is AttackType.CONFIDENCE_CLASS
    # The rule's numbers are those of "score >= thr[y]" on the target.
    pos = target.logits["members"], target.labels["members"]
    conf = np.exp(pos[0]) / np.exp(pos[0]).sum(1, keepdims=True)
    assert np.all(conf[np.arange(len(pos[1])), pos[1]] >= thr[pos[1]])


def test_class_thresholds_match_bruteforce_per_class(make_outputs):
    shadows = [make_outputs(seed=s, n=150, num_classes=3) for s in (1, 2)]
    thr = threshold.learn_class_thresholds(shadows, "loss")
    for c in range(3):
        pos = np.concatenate([threshold.ScoreCache(s).get("members", "loss")
                              [s.labels["members"] == c] for s in shadows])
        neg = np.concatenate([threshold.ScoreCache(s).get("non_members", "loss")
                              [s.labels["non_members"] == c] for s in shadows])

        def acc(t, pos=pos, neg=neg):
            return 0.5 * (np.mean(pos >= t) + np.mean(neg < t))
        assert acc(thr[c]) == pytest.approx(max(acc(t) for t in np.r_[pos, neg, np.inf]))


def test_missing_class_in_shadow_falls_back_to_global(make_outputs):
    sh = make_outputs(seed=3, n=200, num_classes=3)
    keep_m = sh.labels["members"] != 2
    partial = ModelOutputs.from_arrays(
        members=(sh.logits["members"][keep_m], sh.labels["members"][keep_m]),
        non_members=(sh.logits["non_members"], sh.labels["non_members"]))
    thr = threshold.learn_class_thresholds(partial, "loss")
    from keras_mi.attacks import metrics
    glob, _ = metrics.best_threshold(threshold.ScoreCache(partial).get("members", "loss"),
                                     threshold.ScoreCache(partial).get("non_members", "loss"))
    assert thr[2] == glob


def test_class_attack_errors(make_outputs):
    out = make_outputs(num_classes=5)
    with pytest.raises(ValueError, match="need shadow_outputs"):
        threshold.class_threshold_attack(out, "loss", shadow_outputs=None)
    with pytest.raises(ValueError, match="classes"):
        threshold.class_threshold_attack(out, "loss", shadow_outputs=make_outputs(num_classes=4))
    with pytest.raises(ValueError, match="no 'reference' split"):
        threshold.threshold_attack(out, "loss", positives="reference")
