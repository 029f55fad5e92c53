"""Shokri (per-class NN) and Salem (top-3) shadow-model attacks."""

import numpy as np
import pytest
from scipy import special

from keras_mi.attacks import shadow
from keras_mi.attacks.results import AttackType
from keras_mi.outputs import ModelOutputs

C = 5


def _split(rng, n, boost, noise=1.0):
    """Logits with the true class raised by ``boost`` (a per-class array or a float)."""
    labels = rng.integers(0, C, n)
    logits = noise * rng.normal(size=(n, C))
    logits[np.arange(n), labels] += np.broadcast_to(boost, (C,))[labels]
    return logits, labels


def _model(seed, member_boost, non_member_boost, n=300):
    rng = np.random.default_rng(seed)
    return ModelOutputs.from_arrays(members=_split(rng, n, member_boost),
                                    non_members=_split(rng, n, non_member_boost))


def test_top3_features_are_sorted_softmax_maxima():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(100, 7))
    feats = shadow.top3_features(logits)
    assert feats.shape == (100, 3)
    assert np.all(np.diff(feats, axis=1) <= 0)
    probs = special.softmax(logits, axis=1)
    np.testing.assert_allclose(feats, np.sort(probs, axis=1)[:, ::-1][:, :3], rtol=1e-12)
    np.testing.assert_allclose(shadow.top3_features(logits[:, :2]).sum(axis=1), 1.0)


@pytest.mark.parametrize("attack", [shadow.shadow_attack_nn, shadow.shadow_attack_top3])
def test_shadow_attacks_detect_overconfident_members(attack):
    shadows = [_model(s, 5.0, 1.5) for s in (1, 2)]
    result = attack(_model(3, 5.0, 1.5), shadows)
    assert result.auc > 0.85
    assert result.n_members == 300 and result.n_non_members == 300
    assert result.attack_type is {shadow.shadow_attack_nn: AttackType.SHADOW_NN,
                                  shadow.shadow_attack_top3: AttackType.SHADOW_TOP3}[attack]


@pytest.mark.parametrize("attack", [shadow.shadow_attack_nn, shadow.shadow_attack_top3])
def test_shadow_attacks_are_near_chance_without_a_gap(attack):
    shadows = [_model(s, 3.0, 3.0) for s in (1, 2)]
    assert abs(attack(_model(3, 3.0, 3.0), shadows).auc - 0.5) < 0.08


def test_per_class_attack_uses_the_class_where_top3_cannot():
    # Members of class 0 are less confident than non-members of class 4, so a
    # class-blind top-3 classifier mixes them up; per-class classifiers do not.
    members = np.array([2.0, 3.0, 4.0, 5.0, 6.0])
    non_members = members - 1.5
    shadows = [_model(s, members, non_members, n=600) for s in (1, 2, 3)]
    target = _model(4, members, non_members, n=600)
    nn = shadow.shadow_attack_nn(target, shadows, seed=0)
    top3 = shadow.shadow_attack_top3(target, shadows, seed=0)
    assert nn.auc > top3.auc + 0.03
    assert "fallback" not in nn.notes


def test_sparse_classes_use_the_fallback_classifier():
    shadows = [_model(1, 5.0, 1.5, n=300)]
    result = shadow.shadow_attack_nn(_model(3, 5.0, 1.5), shadows, min_per_class=1000)
    assert f"{C} classes used the all-class fallback" in result.notes
    assert result.auc > 0.85


def _stub_train_fn(seeds):
    class Model:
        def predict(self, x, batch_size=None, verbose=0):
            return np.repeat(x[:, :1], C, axis=1) * 0.0 + np.arange(C)

    def train_fn(x, y, seed):
        seeds.append((seed, x[:, 0].astype(int).tolist()))
        return Model()
    return train_fn


def test_train_disjoint_shadows_uses_disjoint_parts():
    x = np.arange(100, dtype=np.float32)[:, None]
    y = np.arange(100) % C
    seeds = []
    outs = shadow.train_disjoint_shadows(x, y, _stub_train_fn(seeds), num_shadows=3,
                                      train_size=20, seed=0, verbose=0)
    assert len(outs) == 3 and len({s for s, _ in seeds}) == 3
    trained = [set(idx) for _, idx in seeds]
    assert all(len(t) == 20 for t in trained)
    assert not (trained[0] & trained[1] or trained[0] & trained[2] or trained[1] & trained[2])
    # Members are what the shadow trained on; all parts together cover the pool.
    assert sum(len(o.labels["members"]) + len(o.labels["non_members"]) for o in outs) == 100
    for out, (_, idx) in zip(outs, seeds):
        np.testing.assert_array_equal(out.labels["members"], np.array(idx) % C)


def test_bad_inputs_raise():
    target = _model(0, 5.0, 1.5)
    with pytest.raises(ValueError, match="empty"):
        shadow.shadow_attack_top3(target, [])
    other = ModelOutputs.from_arrays(members=(np.zeros((4, 3)), np.zeros(4, int)),
                                     non_members=(np.zeros((4, 3)), np.zeros(4, int)))
    with pytest.raises(ValueError, match="3 classes, target 5"):
        shadow.shadow_attack_nn(target, [other])
    with pytest.raises(ValueError, match="ModelOutputs"):
        shadow.shadow_attack_nn(target, [(np.zeros((4, 5)), np.zeros(4, int))])
    x, y = np.zeros((30, 2), np.float32), np.zeros(30, int)
    with pytest.raises(ValueError, match="exactly one"):
        shadow.train_disjoint_shadows(x, y)
    with pytest.raises(ValueError, match="train_size must"):
        shadow.train_disjoint_shadows(x, y, _stub_train_fn([]), num_shadows=3, train_size=10)
    with pytest.raises(ValueError, match="one per input"):
        shadow.train_disjoint_shadows(x, y[:-1], _stub_train_fn([]))


def test_run_includes_shadow_attacks_when_given_shadows():
    from keras_mi.attacks import run

    shadows = [_model(s, 5.0, 1.5) for s in (1, 2)]
    report = run(_model(3, 5.0, 1.5), ["shadow_nn", "shadow_top3", "loss"],
                 shadow_outputs=shadows, fpr_targets=(0.05,))
    assert report.get("shadow_top3").auc > 0.85
    assert list(report.get("shadow_nn").tpr_at_fpr) == [0.05]
