"""The bank protocol: N models of one recipe, each the target in turn.

A *model bank* is ``N`` models (even, 4 to 256) trained with one recipe (and
one defense) on random halves of a pool of records, with the membership
matrix recorded (Carlini et al. 2022, "Membership inference attacks from
first principles", section on evaluation). Each model ``t`` is attacked in
turn with the other ``N - 1`` as its shadow (reference) models, and the
scores of every (model, record) pair are pooled into one ROC curve:
``N × pool`` pairs, half of them non-member pairs, so TPR at 0.1 % FPR rests
on ``N × pool / 2 × 0.001`` false positives instead of one.

* **adaptive** (default): the shadows are the other models of the same bank,
  trained with the same defense: the attacker knows the training algorithm
  (Aerni et al. 2024, "Evaluations of machine learning privacy defenses are
  misleading").
* **non-adaptive**: ``shadow_bank`` gives the shadows (e.g. a bank trained
  without the defense on the same pool); model ``t`` of it is left out too,
  so each target still has ``N - 1`` shadows.

Training is one job per model (:func:`train_bank`, resumable, one file per
model; ``indices`` picks the jobs of one cluster task), on the same files
as LiRA's shadows (:mod:`keras_mi.attacks.shadow_jobs`), so a bank is
also a set of shadows. :func:`attack_bank` needs only the files.

Scores (higher = more likely a member), one hop from :func:`attack_bank`:

========================  ==================================================
attack                    score
========================  ==================================================
``loss``                  ``-cross-entropy`` of the model on the record
``lira_*``                :func:`keras_mi.attacks.lira.lira_scores` on the
                          logit-scaled confidence, per query view
``rmia_online/offline``   :func:`keras_mi.attacks.rmia.rmia_scores` on the
                          true-class probability vs the population set
========================  ==================================================

Example:
  >>> paths = train_bank(train_fn, (x_pool, y_pool), "runs/bank", num_models=16,
  ...                    population=(x_z, y_z))  # doctest: +SKIP
  >>> report = attack_bank(load_bank("runs/bank"))  # doctest: +SKIP
  >>> print(report.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from keras_mi.attacks import lira as _lira
from keras_mi.attacks import metrics as _metrics
from keras_mi.attacks import rmia as _rmia
from keras_mi.attacks import shadow_jobs
from keras_mi.attacks.results import AttackReport, AttackType, evaluate_scores
from keras_mi.attacks.scores import loss_score

#: Smallest and largest bank (an even number in between).
MIN_MODELS, MAX_MODELS = 4, 256

#: The attacks of the bank protocol, in report order.
BANK_ATTACKS = ("loss", "lira_online", "lira_offline", "lira_online_fixed_var",
                "lira_offline_fixed_var", "rmia_online", "rmia_offline")

_LIRA = {kind.value: (online, fixed) for kind, online, fixed in _lira.LIRA_VARIANTS}


def check_bank_size(num_models: int) -> None:
    """Raises ``ValueError`` unless ``num_models`` is even and in [4, 256].

    Example:
      >>> check_bank_size(16)
      >>> check_bank_size(5)
      Traceback (most recent call last):
      ...
      ValueError: a bank needs an even number of models from 4 to 256 (complementary halves); got 5.
    """
    if (isinstance(num_models, bool) or not isinstance(num_models, (int, np.integer))
            or num_models % 2 or not MIN_MODELS <= num_models <= MAX_MODELS):
        raise ValueError(f"a bank needs an even number of models from {MIN_MODELS} to "
                         f"{MAX_MODELS} (complementary halves); got {num_models}.")


def _row_hashes(x) -> set:
    x = np.ascontiguousarray(x)
    flat = x.reshape(len(x), -1)
    return {hashlib.sha1(row.tobytes()).digest() for row in flat}


def check_pool(pool, num_models: int, population=None) -> None:
    """Checks a bank's inputs before anything trains; raises ``ValueError``.

    * ``num_models``: see :func:`check_bank_size`;
    * the pool: ``(x, y)``, large enough that each half (``len // 2``) holds
      at least two records per class seen in the pool;
    * the population: ``(x, y)`` of the same input shape and no record
      (input bytes) that is also in the pool: RMIA's population must be
      data that no model of the bank trained on.

    Example:
      >>> pool = (np.arange(24.0).reshape(12, 2), np.arange(12) % 3)
      >>> check_pool(pool, 4)
      >>> z = np.concatenate([pool[0][:2], pool[0][:2] + 100.0])  # two pool rows, two new
      >>> check_pool(pool, 4, population=(z, pool[1][:4]))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: 2 population records also appear in the pool; RMIA's population must be ...
    """
    check_bank_size(num_models)
    x, y = shadow_jobs.as_pool(pool)
    classes = int(np.unique(y).size)
    if len(y) // 2 < 2 * classes:
        raise ValueError(f"the pool has {len(y)} records for {classes} classes; each bank model "
                         f"trains on half of it, which needs at least {4 * classes} records "
                         "(two per class in each half).")
    if population is not None:
        z, _ = shadow_jobs.as_pool(population)
        if z.shape[1:] != x.shape[1:]:
            raise ValueError(f"population inputs are {z.shape[1:]}, the pool's {x.shape[1:]}.")
        shared = len(_row_hashes(x) & _row_hashes(z))
        if shared:
            raise ValueError(f"{shared} population records also appear in the pool; RMIA's "
                             "population must be data no bank model trained on (e.g. the test "
                             "split).")


def flip_shift_queries(shift: int = 2) -> Callable:
    """Query views for images: no flip / horizontal flip × pixel shifts.

    Returns ``queries(x) -> list`` of ``2 × 9`` arrays: for each of no flip
    and flip, the image shifted by ``dx, dy ∈ {-shift, 0, shift}`` (zero
    padding, as in keras-mi's crop augmentation); the first view is ``x``.
    The LiRA authors' code queries flips and shifts too (with reflection
    padding); zero padding here matches what the models saw in training.

    Args:
      shift: pixels, ``>= 1``.

    Example:
      >>> views = flip_shift_queries(1)(np.arange(16.0).reshape(1, 4, 4, 1))
      >>> len(views), views[1][0, :, :, 0].tolist()[0]
      (18, [0.0, 0.0, 0.0, 0.0])
    """
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 1:
        raise ValueError(f"shift must be a positive integer, got {shift!r}.")
    offsets = [(0, 0)] + [(dy, dx) for dy in (-shift, 0, shift) for dx in (-shift, 0, shift)
                          if (dy, dx) != (0, 0)]

    def queries(x):
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"flip/shift queries need images (n, H, W, C), got {x.shape}.")
        h, w = x.shape[1:3]
        pad = np.pad(x, [(0, 0), (shift, shift), (shift, shift), (0, 0)])
        views = []
        for image in (pad, pad[:, :, ::-1]):
            for dy, dx in offsets:
                views.append(image[:, shift + dy:shift + dy + h, shift + dx:shift + dx + w])
        return views

    return queries


def train_bank(train_fn: Callable, pool, out_dir, num_models: int = 16, population=None,
               queries: Optional[Callable] = None, recipe: str = "", seed: int = 0,
               indices: Optional[Iterable[int]] = None, verbose: int = 1) -> list:
    """Trains (or resumes) the models of a bank, one file per model.

    Args:
      train_fn: ``train_fn(x, y, seed) -> model`` with the recipe to audit
        (any Keras model, loss, defense); the model must output logits.
      pool: ``(x, y)``: every model trains on a random half (complementary
        pairs, see :func:`keras_mi.attacks.shadow_jobs.shadow_membership`).
      out_dir: the bank's folder (one ``shadow_NNNN.npz`` per model).
      num_models: ``N``, even, 4 to 256.
      population: ``(x, y)`` no model trains on (needed by RMIA).
      queries: query views (see :func:`flip_shift_queries`), or None.
      recipe: a label of the recipe; a folder holds one recipe only.
      seed: the bank's seed (the halves and the models' seeds).
      indices: the models to train here (one cluster task each); default
        all.
      verbose: 1 prints a line per model.

    Returns:
      The paths of the models' files.

    Example:
      >>> paths = train_bank(train_fn, pool, "runs/bank", num_models=16,
      ...                    indices=[int(os.environ["SLURM_ARRAY_TASK_ID"])])  # doctest: +SKIP
    """
    check_pool(pool, num_models, population)
    wanted = list(range(num_models)) if indices is None else [int(i) for i in indices]
    bad = [i for i in wanted if not 0 <= i < num_models]
    if bad:
        raise ValueError(f"model indices {bad} are out of range for a bank of {num_models}.")
    if queries is not None:
        shadow_jobs.query_views(queries, np.asarray(pool[0])[:2])
    return shadow_jobs.train_half_shadows(num_models, pool, train_fn, out_dir, seed=seed,
                                     indices=wanted, verbose=verbose, population=population,
                                     queries=queries, recipe=recipe)


def load_bank(out_dir, num_models: Optional[int] = None, pool=None,
              recipe: Optional[str] = None,
              only_first: Optional[int] = None) -> shadow_jobs.ShadowBank:
    """Loads a bank (every model must be done); checks pool and recipe.

    ``only_first = k`` (even, ≥ 4) loads models ``0 .. k-1`` only: an interim
    look at a bank still in training, the bank of ``k`` those models form
    (see :func:`keras_mi.attacks.shadow_jobs.load_shadows`).

    Example:
      >>> bank = load_bank("runs/bank", num_models=16)  # doctest: +SKIP
      >>> interim = load_bank("runs/bank", only_first=4)  # doctest: +SKIP
    """
    bank = shadow_jobs.load_shadows(out_dir, num_shadows=num_models, pool=pool, recipe=recipe,
                                    only_first=only_first)
    check_bank_size(bank.num_models)
    return bank


def _per_target(values: Sequence[float]) -> Dict[str, object]:
    arr = np.asarray(values, dtype=np.float64)
    return {"values": [float(v) for v in arr], "min": float(arr.min()),
            "median": float(np.median(arr)), "max": float(arr.max())}


def model_accuracies(bank: shadow_jobs.ShadowBank) -> Dict[str, Dict[str, object]]:
    """Per-model accuracy on its members, its non-members and the population.

    Returns:
      ``{"train": ..., "held_out": ..., "population": ...}``, each with the
      per-model values and their min/median/max (``population`` only when
      the bank has one).

    Example:
      >>> acc = model_accuracies(load_bank("runs/bank"))  # doctest: +SKIP
      >>> acc["population"]["median"]  # doctest: +SKIP
    """
    correct = bank.logits.argmax(-1) == bank.labels[None]
    out = {"train": _per_target([c[m].mean() for c, m in zip(correct, bank.in_mask)]),
           "held_out": _per_target([c[~m].mean() for c, m in zip(correct, bank.in_mask)])}
    if bank.population_logits is not None:
        pop = bank.population_logits[:, 0].argmax(-1) == bank.population_labels[None]
        out["population"] = _per_target(pop.mean(axis=1))
    return out


def attack_bank(bank: shadow_jobs.ShadowBank, shadow_bank: Optional[shadow_jobs.ShadowBank] = None,
                attacks: Optional[Sequence[str]] = None,
                fpr_targets: Sequence[float] = _metrics.DEFAULT_FPR_TARGETS,
                lira_center: str = "median", rmia_gamma: float = 1.0,
                rmia_offline_a: Optional[float] = None,
                keep_scores: bool = False) -> AttackReport:
    """Attacks every model of ``bank`` with the others (leave-one-out) and pools the pairs.

    Args:
      bank: the targets (see :func:`load_bank`).
      shadow_bank: the attacker's models for the non-adaptive protocol (same
        pool, same number of models); None: the bank itself (adaptive).
      attacks: names from :data:`BANK_ATTACKS` (default: all that the bank
        supports; RMIA needs a population, per-example-variance LiRA at
        least 6 models).
      fpr_targets: low FPRs to report.
      lira_center: ``"median"`` (the LiRA authors' code) or ``"mean"``.
      rmia_gamma: RMIA's ``γ``.
      rmia_offline_a: offline RMIA's ``a``; None tunes it per target on the
        paired model (:func:`keras_mi.attacks.rmia.tune_offline_a`).
      keep_scores: keep the pooled scores on the results.

    Returns:
      An :class:`AttackReport` of pooled results (``n_members`` and
      ``n_non_members`` count pairs); ``metadata`` holds the protocol, the
      bank size, the per-target AUC, TPR at each FPR and members above
      every non-member (values and min/median/max), the offline ``a`` per
      target and the attacks skipped with the reason.

    Example:
      >>> report = attack_bank(load_bank("runs/mmd_bank"),
      ...                      shadow_bank=load_bank("runs/none_bank"))  # doctest: +SKIP
      >>> report.strongest(by="low_fpr").low_fpr[0.001]  # doctest: +SKIP
    """
    check_bank_size(bank.num_models)
    n_models = bank.num_models
    adaptive = shadow_bank is None
    shadows = bank if adaptive else shadow_bank
    if not adaptive:
        if shadow_bank.fingerprint != bank.fingerprint:
            raise ValueError("the shadow bank was trained on another pool (fingerprint differs).")
        if shadow_bank.num_models != n_models:
            raise ValueError(f"the shadow bank has {shadow_bank.num_models} models, the bank "
                             f"{n_models}; use banks of the same size.")
    has_population = bank.population_logits is not None and shadows.population_logits is not None
    if has_population and not adaptive and (
            shadows.population_logits.shape[1:] != bank.population_logits.shape[1:]
            or not np.array_equal(shadows.population_labels, bank.population_labels)):
        raise ValueError("the shadow bank was queried on another population set; RMIA needs "
                         "the same population for the targets and their shadows.")
    skipped: Dict[str, str] = {}
    names = list(BANK_ATTACKS) if attacks is None else list(attacks)
    unknown = [a for a in names if a not in BANK_ATTACKS]
    if unknown:
        raise ValueError(f"unknown bank attacks {unknown}; choose from {list(BANK_ATTACKS)}.")
    if not has_population:
        for a in [a for a in names if a.startswith("rmia_")]:
            if attacks is not None:
                raise ValueError("RMIA needs a population set: train the bank with population=.")
            skipped[a] = "the bank has no population set"
    if n_models - 1 < 5:
        for a in [a for a in names if a in _LIRA and not _LIRA[a][1]]:
            skipped[a] = "per-example variance needs >= 6 models (2 in and 2 out shadows)"
    names = [a for a in names if a not in skipped]

    labels = bank.labels
    start = time.perf_counter()
    phi = np.moveaxis(_lira.logit_confidence(bank.pool_query_logits(), labels), 1, -1)
    phi_sh = phi if adaptive else np.moveaxis(
        _lira.logit_confidence(shadows.pool_query_logits(), labels), 1, -1)
    if has_population:
        sig_x, sig_z = (_rmia.rmia_signal(bank.pool_query_logits(), labels),
                        _rmia.rmia_signal(bank.population_logits, bank.population_labels))
        sh_x, sh_z = (sig_x, sig_z) if adaptive else (
            _rmia.rmia_signal(shadows.pool_query_logits(), labels),
            _rmia.rmia_signal(shadows.population_logits, bank.population_labels))
    prep_s = time.perf_counter() - start

    scores: Dict[str, List[np.ndarray]] = {a: [] for a in names}
    seconds = dict.fromkeys(names, prep_s / max(len(names), 1))
    offline_a: List[float] = []
    for t in range(n_models):
        others = np.array([k for k in range(n_models) if k != t])
        for name in names:
            t0 = time.perf_counter()
            if name == "loss":
                s = loss_score(bank.logits[t], labels)
            elif name in _LIRA:
                online, fixed = _LIRA[name]
                s = _lira.lira_scores(phi[t], phi_sh[others], shadows.in_mask[others],
                                      online=online, fixed_variance=fixed, center=lira_center)
            elif name == "rmia_online":
                s = _rmia.rmia_scores(sig_x[t], sh_x[others], shadows.in_mask[others], sig_z[t],
                                      sh_z[others], online=True, gamma=rmia_gamma)
            else:
                a = rmia_offline_a
                if a is None:
                    p = _rmia.paired_index(t)
                    rest = np.array([k for k in others if k != p])
                    a = _rmia.tune_offline_a(sh_x[p], sh_x[rest], shadows.in_mask[rest],
                                             shadows.in_mask[p], sh_z[p], sh_z[rest],
                                             gamma=rmia_gamma)
                offline_a.append(float(a))
                s = _rmia.rmia_scores(sig_x[t], sh_x[others], shadows.in_mask[others], sig_z[t],
                                      sh_z[others], online=False, offline_a=float(a),
                                      gamma=rmia_gamma)
            scores[name].append(np.asarray(s, dtype=np.float64))
            seconds[name] += time.perf_counter() - t0

    protocol = "adaptive" if adaptive else "non-adaptive"
    results, per_target = [], {}
    for name in names:
        member = np.concatenate([s[m] for s, m in zip(scores[name], bank.in_mask)])
        non_member = np.concatenate([s[~m] for s, m in zip(scores[name], bank.in_mask)])
        results.append(evaluate_scores(
            member, non_member, name=name,
            attack_type=AttackType(name), fpr_targets=fpr_targets, keep_scores=keep_scores,
            wall_time_s=seconds[name],
            notes=f"bank protocol ({protocol}): {n_models} targets, each with {n_models - 1} "
                  "shadows; pairs pooled"))
        singles = [_metrics.attack_metrics(s[m], s[~m], fpr_targets)
                   for s, m in zip(scores[name], bank.in_mask)]
        per_target[name] = {
            "auc": _per_target([r["auc"] for r in singles]),
            "members_above_all": _per_target([r["members_above_all"] for r in singles]),
            **{f"tpr_at_fpr@{t:g}": _per_target([r["tpr_at_fpr"][float(t)] for r in singles])
               for t in fpr_targets}}
    metadata = {"protocol": protocol, "num_models": n_models,
                "pairs": int(bank.in_mask.size), "lira_center": lira_center,
                "rmia_gamma": float(rmia_gamma), "per_target": per_target,
                "skipped": skipped, "recipe": bank.recipe,
                "shadow_recipe": shadows.recipe}
    if offline_a:
        metadata["rmia_offline_a"] = offline_a
    return AttackReport(results=results, metadata=metadata)
