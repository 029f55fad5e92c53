"""One entry point for every attack: a registry and :func:`run`.

Each attack is a function registered under a name::

    @register_attack("my_attack", needs_shadow=True)
    def my_attack(outputs, shadow_outputs=None, *, fpr_targets, keep_scores, **options):
        ...  # return an AttackResult or a list of them

:func:`run` looks the name up in :data:`ATTACKS` and calls its
:class:`AttackSpec`'s ``fn`` on a target's
:class:`~keras_mi.outputs.ModelOutputs`, gathering an
:class:`~keras_mi.attacks.results.AttackReport`. The built-in threshold
attacks are registered here, each with the function that scores its records
(``AttackSpec.score``, from :data:`keras_mi.attacks.scores.SCORES`); the
shadow-model and LiRA attacks register themselves in
:mod:`keras_mi.attacks.shadow` / :mod:`keras_mi.attacks.lira`, which
:func:`run` imports on first use. What an attack needs (``needs_shadow``)
comes from its :class:`~keras_mi.attacks.results.AttackType` when it has one.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from keras_mi._deprecation import deprecated_alias
from keras_mi.attacks import metrics as _metrics
from keras_mi.attacks import threshold as _threshold
from keras_mi.attacks.results import AttackReport, AttackResult, AttackType, attack_type_of
from keras_mi.attacks.scores import SCORE_NAMES, SCORES
from keras_mi.outputs import ModelOutputs

#: Modules whose import registers more attacks (loaded lazily, if present).
PLUGIN_MODULES = ("keras_mi.attacks.shadow", "keras_mi.attacks.lira")


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """A registered attack.

    Attributes:
      name: the name :func:`run` knows it by.
      fn: ``fn(outputs, shadow_outputs=None, *, fpr_targets, keep_scores,
        **options) -> AttackResult | list[AttackResult]``; for the built-in
        threshold attacks, one of :mod:`keras_mi.attacks.threshold`'s attacks,
        called as ``fn(outputs, score, [shadow_outputs,] positives=,
        negatives=, cache=, fpr_targets=, keep_scores=)``.
      needs_shadow: it needs ``shadow_outputs``; skipped by default without.
      default: run when :func:`run` gets ``attacks=None``.
      reference_check: it also runs on reference vs non-members.
      score: for a built-in threshold attack, the key of
        :data:`keras_mi.attacks.scores.SCORES` whose function scores each
        record; ``None`` for the others.

    Example:
      >>> ATTACKS["loss_class"].needs_shadow, ATTACKS["loss_class"].score
      (True, 'loss')
      >>> SCORES[ATTACKS["loss"].score].__name__
      'loss_score'
    """

    name: str
    fn: Callable[..., Union[AttackResult, Sequence[AttackResult]]]
    needs_shadow: bool = False
    default: bool = True
    reference_check: bool = False
    score: Optional[str] = None


#: name -> :class:`AttackSpec` of every known attack.
ATTACKS: Dict[str, AttackSpec] = {}


def register_attack(name: str, fn: Optional[Callable] = None, *,
                    needs_shadow: Optional[bool] = None, default: bool = True,
                    reference_check: bool = False, score: Optional[str] = None):
    """Registers ``fn`` under ``name`` (usable as a decorator).

    Args:
      name: the attack's name.
      fn: the attack (see :class:`AttackSpec`).
      needs_shadow: whether it needs shadow models' outputs; ``None`` takes
        :attr:`AttackType.needs_shadow <keras_mi.attacks.results.AttackType.needs_shadow>`
        for a name that is an ``AttackType`` value, else ``False``.
      default, reference_check, score: see :class:`AttackSpec`.

    Raises:
      ValueError: ``needs_shadow`` contradicts the name's ``AttackType``, or
        ``score`` is not a key of :data:`keras_mi.attacks.scores.SCORES`.

    Example:
      >>> from keras_mi.attacks.results import evaluate_scores
      >>> @register_attack("zero_score", default=False)
      ... def zero_score(outputs, shadow_outputs=None, **kw):
      ...     return evaluate_scores([0.0], [0.0], name="zero_score")
      >>> ATTACKS.pop("zero_score").needs_shadow
      False
    """
    kind = attack_type_of(name)
    if kind is not AttackType.CUSTOM:
        if needs_shadow is not None and needs_shadow != kind.needs_shadow:
            raise ValueError(f"'{name}' is {kind!r}, whose needs_shadow is "
                             f"{kind.needs_shadow}; leave needs_shadow unset.")
        needs_shadow = kind.needs_shadow
    if score is not None and score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {list(SCORES)}.")

    def _register(f):
        ATTACKS[name] = AttackSpec(name, f, bool(needs_shadow), default, reference_check, score)
        return f
    return _register(fn) if fn is not None else _register


def _load_plugins() -> None:
    for module in PLUGIN_MODULES:
        if module not in sys.modules and importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


# The built-in threshold attacks: a score of keras_mi.attacks.scores.SCORES,
# thresholded once (the gap attack, on "correct"), globally, or per class.
register_attack("gap", _threshold.gap_attack, score="correct", reference_check=True)
for _name in SCORE_NAMES:
    register_attack(_name, _threshold.threshold_attack, score=_name, reference_check=True)
for _name in SCORE_NAMES:
    register_attack(f"{_name}_class", _threshold.class_threshold_attack, score=_name)


def _call(spec: AttackSpec, outputs: ModelOutputs, shadow_outputs, positives: str,
          negatives: str, cache: _threshold.ScoreCache, fpr_targets, keep_scores: bool,
          options: Mapping[str, Any]):
    """Calls one attack the way its :class:`AttackSpec` says."""
    if spec.score is None:  # a plug-in: the registry's convention
        return spec.fn(outputs, shadow_outputs, fpr_targets=fpr_targets,
                       keep_scores=keep_scores, **options)
    kw = dict(positives=positives, negatives=negatives, fpr_targets=fpr_targets, cache=cache,
              keep_scores=keep_scores, **options)
    if spec.score == "correct":  # the gap attack has one score only
        return spec.fn(outputs, **kw)
    if spec.needs_shadow:
        return spec.fn(outputs, spec.score, shadow_outputs, **kw)
    return spec.fn(outputs, spec.score, **kw)


def available_attacks() -> List[str]:
    """Names :func:`run` accepts (built-ins plus registered plug-ins).

    Example:
      >>> "modified_entropy" in available_attacks()
      True
    """
    _load_plugins()
    return list(ATTACKS)


def run(outputs: ModelOutputs, attacks: Optional[Iterable[str]] = None,
        shadow_outputs=None, *, fpr_targets: Iterable[float] = _metrics.DEFAULT_FPR_TARGETS,
        check_reference: bool = True, keep_scores: bool = False, baseline: bool = False,
        baseline_options: Optional[Mapping[str, Any]] = None,
        options: Optional[Mapping[str, Mapping[str, Any]]] = None,
        metadata: Optional[Mapping[str, Any]] = None) -> AttackReport:
    """Runs membership-inference attacks on a target model's outputs.

    Args:
      outputs: the target's logits and labels; needs ``members`` and
        ``non_members``; a ``reference`` split adds the reference-leak check.
      attacks: names from :func:`available_attacks`; ``None`` = every default
        attack whose requirements are met (those needing shadows only when
        ``shadow_outputs`` is given).
      shadow_outputs: what shadow-based attacks need (for ``*_class``: one
        or a list of shadow models' ``ModelOutputs``).
      fpr_targets: FPRs for ``tpr_at_fpr``.
      check_reference: also attack ``reference`` vs ``non_members`` with the
        attacks that support it, when that split exists.
      keep_scores: keep per-record scores on the results (for histograms).
      baseline: also run TF-Privacy's harness on the same outputs
        (:func:`keras_mi.attacks.tfp_baseline.run_tf_privacy_baseline`,
        options in ``baseline_options``); its rows are named ``tfp_*``.
      options: per-attack keyword arguments, ``{name: {...}}`` (names must be
        registered; options of attacks not selected are ignored).
      metadata: copied into the report.

    Returns:
      An :class:`~keras_mi.attacks.results.AttackReport`.

    Example:
      >>> out = ModelOutputs.from_arrays(
      ...     members=(np.array([[3.0, 0.0], [0.0, 3.0]]), np.array([0, 1])),
      ...     non_members=(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1, 1])))
      >>> run(out, ["gap", "loss"]).strongest().name
      'loss'
    """
    if not isinstance(outputs, ModelOutputs):
        raise TypeError(f"outputs must be a ModelOutputs, got {type(outputs).__name__}; "
                        "build one with ModelOutputs.from_arrays or from_model.")
    _load_plugins()
    options = dict(options or {})
    if attacks is None:
        names = [n for n, s in ATTACKS.items()
                 if s.default and (shadow_outputs is not None or not s.needs_shadow)]
    else:
        names = [attacks] if isinstance(attacks, str) else list(attacks)
        unknown = [n for n in names if n not in ATTACKS]
        if unknown:
            raise ValueError(f"Unknown attack(s) {unknown}; available: {list(ATTACKS)}.")
        missing = [n for n in names if ATTACKS[n].needs_shadow and shadow_outputs is None]
        if missing:
            raise ValueError(f"Attack(s) {missing} need shadow_outputs; train shadow models "
                             "first or drop these attacks.")
    unknown_opts = [n for n in options if n not in ATTACKS]
    if unknown_opts:  # a typo; options of known attacks that do not run are ignored
        raise ValueError(f"options given for unknown attack(s) {unknown_opts}; "
                         f"available: {list(ATTACKS)}.")
    pairs = [("members", "non_members")]
    if check_reference and outputs.get("reference") is not None:
        pairs.append(("reference", "non_members"))
    cache = _threshold.ScoreCache(outputs)
    report = AttackReport(metadata=dict(metadata or {}))
    report.metadata.setdefault("splits", {k: int(len(v)) for k, v in outputs.labels.items()})
    report.metadata.setdefault("num_classes", int(outputs.num_classes))
    for positives, negatives in pairs:
        for name in names:
            spec = ATTACKS[name]
            if positives != "members" and not spec.reference_check:
                continue
            start = time.perf_counter()
            got = _call(spec, outputs, shadow_outputs, positives, negatives, cache,
                        tuple(fpr_targets), keep_scores, options.get(name, {}))
            elapsed = time.perf_counter() - start
            got = [got] if isinstance(got, AttackResult) else list(got)
            for r in got:
                if not isinstance(r, AttackResult):
                    raise TypeError(f"Attack '{name}' returned {type(r).__name__}, "
                                    "expected AttackResult.")
                if spec.score is None and not r.wall_time_s:
                    r.wall_time_s = elapsed / len(got)
            report.results.extend(got)
    if baseline:
        from keras_mi.attacks.tfp_baseline import run_tf_privacy_baseline
        report.results.extend(run_tf_privacy_baseline(
            outputs, fpr_targets=fpr_targets, **dict(baseline_options or {})).results)
    return report


def run_on_model(model, members, non_members, reference=None, attacks=None,
                 shadow_outputs=None, batch_size: int = 1024, from_logits: bool = True,
                 **kwargs) -> AttackReport:
    """:func:`run` on a Keras model and ``(x, y)`` pairs.

    Args:
      model: A Keras model ending in logits (or in softmax, with
        ``from_logits=False``).
      members, non_members, reference: ``(x, y)`` pairs (``reference`` optional).
      attacks, shadow_outputs, **kwargs: As for :func:`run`.
      batch_size: Batch size of ``model.predict``.
      from_logits: ``False`` when the model outputs probabilities; they are
        turned into logits ``log(p)`` (same softmax, so same attack scores).

    Returns:
      The :class:`AttackReport` of :func:`run`.

    Raises:
      ValueError: ``from_logits=True`` but every output row is non-negative
        and sums to 1 (a softmax model).

    Example:
      >>> report = run_on_model(model, (x_train, y_train), (x_test, y_test))  # doctest: +SKIP
      >>> print(report.summary())  # doctest: +SKIP
    """
    outputs = ModelOutputs.from_model(model, batch_size=batch_size, from_logits=from_logits,
                                      members=members, non_members=non_members,
                                      reference=reference)
    return run(outputs, attacks=attacks, shadow_outputs=shadow_outputs, **kwargs)


def _summarize(report: AttackReport, by: str = "advantage") -> str:
    return report.summary(by=by)


# Old name, kept for one release: use ``report.summary(by)``.
summarize = deprecated_alias(_summarize, "keras_mi.attacks.summarize",
                             use="report.summary(by)")
