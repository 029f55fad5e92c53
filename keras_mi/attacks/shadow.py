"""Shadow-model attacks: Shokri et al. (2017) and Salem et al. (ML-Leaks, 2019).

Both attacks imitate the target: ``k`` shadow models are trained with the
target's architecture and recipe on disjoint parts of a shadow pool (data
from the target's distribution that the target never saw). Each shadow's
outputs on its own training half ("in", label 1) and on held-out records
("out", label 0) form a labelled data set, on which an attack classifier
learns to tell members from non-members; it is then applied to the target's
outputs on its members and non-members. Its predicted member probability is
the membership score (higher = more likely a member).

* :func:`shadow_attack_nn` (Shokri et al., "Membership Inference Attacks
  Against Machine Learning Models"): one attack classifier **per true
  class** on the full softmax vector. Each is a small
  ``sklearn.neural_network.MLPClassifier`` (one hidden layer of 64 ReLU units,
  Adam); classes with too few shadow records fall back to one classifier
  trained on all classes.
* :func:`shadow_attack_top3` (Salem et al., "ML-Leaks"): one classifier on the
  three largest probabilities, sorted in decreasing order, so it ignores the
  class and transfers across data sets.

Attack training sets are balanced (the larger side is subsampled) so the
classifier does not learn the in/out ratio of the shadow pool.

Example:
  >>> shadows = train_disjoint_shadows(x_pool, y_pool, train_fn, num_shadows=2)  # doctest: +SKIP
  >>> shadow_attack_top3(target_outputs, shadows).auc  # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from keras_mi._deprecation import deprecated_alias
from keras_mi.attacks import shadow_jobs
from keras_mi.attacks.metrics import DEFAULT_FPR_TARGETS
from keras_mi.attacks.results import AttackResult, AttackType, evaluate_scores
from keras_mi.attacks.runner import register_attack
from keras_mi.attacks.scores import softmax  # the one NumPy softmax (also re-exported here)
from keras_mi.outputs import ModelOutputs

ShadowOutputs = Union[ModelOutputs, Sequence[ModelOutputs]]


def top3_features(logits, k: int = 3) -> np.ndarray:
    """The ``k`` largest softmax probabilities per row, in decreasing order.

    Models with fewer than ``k`` classes give all their probabilities.

    Example:
      >>> top3_features(np.log(np.array([[0.1, 0.6, 0.05, 0.25]]))).round(2).tolist()
      [[0.6, 0.25, 0.1]]
    """
    p = softmax(logits)
    if p.ndim != 2:
        raise ValueError(f"logits must be (n, classes); got {p.shape}.")
    k = min(k, p.shape[1])
    return -np.sort(-p, axis=1)[:, :k]


def train_disjoint_shadows(x, y, train_fn: Optional[Callable] = None, *,
                        make_model: Optional[Callable] = None,
                        fit_kwargs: Optional[dict] = None, num_shadows: int = 2,
                        train_size: Optional[int] = None, seed: int = 0,
                        verbose: int = 1) -> List[ModelOutputs]:
    """Trains ``num_shadows`` shadow models on disjoint parts of a shadow pool.

    Shokri et al.'s scheme, for :func:`shadow_attack_nn` and
    :func:`shadow_attack_top3`; compare
    :func:`keras_mi.attacks.shadow_jobs.train_half_shadow` (LiRA's random
    halves of the target's own pool).

    The pool is shuffled (``seed``) and cut into ``num_shadows`` disjoint
    parts; shadow ``i`` trains on the first ``train_size`` records of part
    ``i`` (its members) and the rest of the part are its non-members.

    Args:
      x, y: the shadow pool (same distribution as the target's data, disjoint
        from the target's members and non-members).
      train_fn: ``train_fn(x, y, seed) -> model`` whose ``predict`` gives logits;
        or give ``make_model`` (returns a compiled Keras model with logits
        outputs) and ``fit_kwargs`` -- the target's recipe.
      num_shadows: ``k``, the number of shadow models.
      train_size: members per shadow (match the target's training-set size
        when the pool allows); default half of each part.
      seed: shuffling and training seed.
      verbose: 1 prints one line per shadow.

    Returns:
      One ``ModelOutputs`` (``members``/``non_members``) per shadow, ready for
      :func:`shadow_attack_nn` and :func:`shadow_attack_top3`.

    Example:
      >>> shadows = train_disjoint_shadows(x_pool, y_pool, make_model=build,  # doctest: +SKIP
      ...                               fit_kwargs={"epochs": 30}, num_shadows=2)
    """
    if (train_fn is None) == (make_model is None):
        raise ValueError("give exactly one of train_fn or make_model (+ fit_kwargs).")
    if train_fn is None:
        train_fn = shadow_jobs.make_train_fn(make_model, fit_kwargs)
    x, y = shadow_jobs.as_pool((x, y))
    if num_shadows < 1:
        raise ValueError(f"num_shadows must be >= 1, got {num_shadows}.")
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), num_shadows)
    size = len(parts[-1])
    n_in = size // 2 if train_size is None else int(train_size)
    if not 1 <= n_in < size:
        raise ValueError(
            f"each of the {num_shadows} shadow parts has {size} records, so train_size must "
            f"lie in [1, {size}); got {n_in}. Use fewer shadows or a smaller train_size.")
    shadows = []
    for i, part in enumerate(parts):
        start = time.perf_counter()
        inside, outside = part[:n_in], part[n_in:]
        model = train_fn(x[inside], y[inside], seed=shadow_jobs.shadow_seed(i, seed))
        out = ModelOutputs.from_arrays(
            members=(shadow_jobs.predict_logits(model, x[inside]), y[inside]),
            non_members=(shadow_jobs.predict_logits(model, x[outside]), y[outside]))
        shadows.append(out)
        if verbose:
            acc = [float(np.mean(out.logits[s].argmax(1) == out.labels[s]))
                   for s in ("members", "non_members")]
            print(f"shadow model {i + 1}/{num_shadows}: {len(inside)} in / {len(outside)} out, "
                  f"accuracy {acc[0]:.3f} / {acc[1]:.3f}, {time.perf_counter() - start:.1f}s")
    return shadows


def _shadow_data(shadow_outputs: ShadowOutputs, num_classes: int):
    if isinstance(shadow_outputs, ModelOutputs):
        shadow_outputs = [shadow_outputs]
    if not shadow_outputs:
        raise ValueError("shadow_outputs is empty; train shadow models first "
                         "(keras_mi.attacks.train_disjoint_shadows).")
    logits, labels, member = [], [], []
    for out in shadow_outputs:
        if not isinstance(out, ModelOutputs):
            raise ValueError(f"shadow_outputs must hold ModelOutputs, got {type(out).__name__}.")
        if out.num_classes != num_classes:
            raise ValueError(f"shadow model has {out.num_classes} classes, target {num_classes}.")
        for split, flag in (("members", 1), ("non_members", 0)):
            logits.append(out.logits[split])
            labels.append(out.labels[split])
            member.append(np.full(len(out.labels[split]), flag, dtype=np.int64))
    return np.concatenate(logits), np.concatenate(labels), np.concatenate(member)


def _balanced(idx_in, idx_out, rng):
    n = min(len(idx_in), len(idx_out))
    return np.concatenate([rng.choice(idx_in, n, replace=False),
                           rng.choice(idx_out, n, replace=False)])


def _fit(features, member, hidden, max_iter, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(features, member)
    return clf


def _member_proba(clf, features) -> np.ndarray:
    return clf.predict_proba(features)[:, list(clf.classes_).index(1)]


def _check_target(target: ModelOutputs):
    if not isinstance(target, ModelOutputs):
        raise ValueError(f"target must be a ModelOutputs, got {type(target).__name__}.")
    for split in ("members", "non_members"):
        if len(target.labels[split]) == 0:
            raise ValueError(f"the target's '{split}' split is empty.")


def _result(kind, target, scores, start, keep_scores, notes, fpr_targets):
    n = len(target.labels["members"])
    return evaluate_scores(scores[:n], scores[n:], name=kind.value, attack_type=kind,
                           fpr_targets=fpr_targets, keep_scores=keep_scores, notes=notes,
                           wall_time_s=time.perf_counter() - start)


def shadow_attack_nn(target: ModelOutputs, shadow_outputs: ShadowOutputs, *,
                     hidden_layer_sizes: Tuple[int, ...] = (64,), max_iter: int = 500,
                     min_per_class: int = 5, seed: int = 0,
                     fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS,
                     keep_scores: bool = False) -> AttackResult:
    """Shokri et al.'s attack: a per-class classifier on the full softmax vector.

    Args:
      target: the target's outputs (``members`` and ``non_members``).
      shadow_outputs: one ``ModelOutputs`` per shadow model (its ``members``
        are its training records), e.g. from :func:`train_disjoint_shadows`.
      hidden_layer_sizes, max_iter: of each ``MLPClassifier``.
      min_per_class: a class needs at least this many shadow "in" and "out"
        records for its own classifier; otherwise the all-class fallback
        classifier scores it (the count is in ``result.notes``).
      seed: subsampling and classifier seed.
      fpr_targets: low FPRs to report TPR at.
      keep_scores: keep per-record scores on the result.

    Returns:
      An ``AttackResult`` of type ``SHADOW_NN``.

    Example:
      >>> shadow_attack_nn(target_outputs, shadows).auc  # doctest: +SKIP
    """
    start = time.perf_counter()
    _check_target(target)
    s_logits, s_labels, s_member = _shadow_data(shadow_outputs, target.num_classes)
    s_feat = softmax(s_logits)
    t_logits = np.concatenate([target.logits["members"], target.logits["non_members"]])
    t_labels = np.concatenate([target.labels["members"], target.labels["non_members"]])
    t_feat = softmax(t_logits)
    rng = np.random.default_rng(seed)
    ins, outs = np.flatnonzero(s_member == 1), np.flatnonzero(s_member == 0)
    if min(len(ins), len(outs)) < 2:
        raise ValueError("shadow outputs need at least 2 member and 2 non-member records.")
    fallback = None
    scores = np.zeros(len(t_labels))
    n_fallback = 0
    for c in np.unique(t_labels):
        c_in, c_out = ins[s_labels[ins] == c], outs[s_labels[outs] == c]
        rows = t_labels == c
        if min(len(c_in), len(c_out)) >= min_per_class:
            idx = _balanced(c_in, c_out, rng)
            clf = _fit(s_feat[idx], s_member[idx], hidden_layer_sizes, max_iter, seed)
        else:
            if fallback is None:
                idx = _balanced(ins, outs, rng)
                fallback = _fit(s_feat[idx], s_member[idx], hidden_layer_sizes, max_iter, seed)
            clf = fallback
            n_fallback += 1
        scores[rows] = _member_proba(clf, t_feat[rows])
    notes = (f"{len(np.unique(t_labels))} per-class MLPs from "
             f"{len(ins)} in / {len(outs)} out shadow records")
    if n_fallback:
        notes += f"; {n_fallback} classes used the all-class fallback"
    return _result(AttackType.SHADOW_NN, target, scores, start, keep_scores, notes, fpr_targets)


def shadow_attack_top3(target: ModelOutputs, shadow_outputs: ShadowOutputs, *,
                       hidden_layer_sizes: Tuple[int, ...] = (64,), max_iter: int = 500,
                       seed: int = 0, fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS,
                       keep_scores: bool = False) -> AttackResult:
    """Salem et al.'s attack: one classifier on the sorted top-3 probabilities.

    Args:
      target: the target's outputs (``members`` and ``non_members``).
      shadow_outputs: one ``ModelOutputs`` per shadow model.
      hidden_layer_sizes, max_iter: of the ``MLPClassifier``.
      seed: subsampling and classifier seed.
      fpr_targets: low FPRs to report TPR at.
      keep_scores: keep per-record scores on the result.

    Returns:
      An ``AttackResult`` of type ``SHADOW_TOP3``.

    Example:
      >>> shadow_attack_top3(target_outputs, shadows).tpr_at_fpr[0.001]  # doctest: +SKIP
    """
    start = time.perf_counter()
    _check_target(target)
    s_logits, _, s_member = _shadow_data(shadow_outputs, target.num_classes)
    ins, outs = np.flatnonzero(s_member == 1), np.flatnonzero(s_member == 0)
    if min(len(ins), len(outs)) < 2:
        raise ValueError("shadow outputs need at least 2 member and 2 non-member records.")
    idx = _balanced(ins, outs, np.random.default_rng(seed))
    clf = _fit(top3_features(s_logits)[idx], s_member[idx], hidden_layer_sizes, max_iter, seed)
    t_logits = np.concatenate([target.logits["members"], target.logits["non_members"]])
    scores = _member_proba(clf, top3_features(t_logits))
    return _result(AttackType.SHADOW_TOP3, target, scores, start, keep_scores,
                   f"MLP on sorted top-3 from {len(idx)} balanced shadow records", fpr_targets)


# Registration with keras_mi.attacks.run (which imports this module lazily):
# run(outputs, shadow_outputs=[...]) then includes both attacks by default.
register_attack("shadow_nn", shadow_attack_nn)
register_attack("shadow_top3", shadow_attack_top3)

# Old name, kept for one release.
train_shadow_models = deprecated_alias(train_disjoint_shadows, "train_shadow_models")
