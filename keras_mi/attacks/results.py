"""Attack results: an enum naming each attack, one result, and a report.

Everything serializes to JSON (``to_dict``/``to_json``/``from_json``); no
pickle. ROC arrays are kept in memory for plotting and, in JSON, down-sampled
to a few hundred points that keep the low-FPR corner exact (see
:func:`downsample_roc`). Per-record scores are never written to JSON.

Sign convention: every attack turns the model's outputs into a score where
**higher means "more likely a member"** (the loss attack scores ``-loss``,
the entropy attacks ``-entropy``), and predicts "member" iff
``score >= threshold``.

Example:
  >>> r = evaluate_scores([0.9, 0.8, 0.4], [0.5, 0.1, 0.2], name="loss")
  >>> r.attack_type is AttackType.LOSS, round(r.auc, 3)
  (True, 0.889)
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from keras_mi.attacks import metrics as _metrics


class AttackType(enum.Enum):
    """Names every attack keras-mi runs (the value is the short name).

    ``*_CLASS`` variants use one threshold per true class, learned on shadow
    models' outputs; ``TFP_*`` rows are TF-Privacy's harness on the same
    outputs (the baseline); ``CUSTOM`` is any user-supplied score.
    """

    GAP = "gap"  # member iff correctly classified (Yeom et al.)
    LOSS = "loss"  # score = -cross-entropy(y, softmax(logits))
    CONFIDENCE = "confidence"  # score = p_y, the probability of the true class
    MAX_CONFIDENCE = "max_confidence"  # score = max_i p_i
    ENTROPY = "entropy"  # score = -H(p), Shannon entropy of the prediction
    MODIFIED_ENTROPY = "modified_entropy"  # score = -Mentr(p, y) (Song & Mittal)
    LOSS_CLASS = "loss_class"
    CONFIDENCE_CLASS = "confidence_class"
    MAX_CONFIDENCE_CLASS = "max_confidence_class"
    ENTROPY_CLASS = "entropy_class"
    MODIFIED_ENTROPY_CLASS = "modified_entropy_class"
    SHADOW_NN = "shadow_nn"  # Shokri et al. attack classifier on full posteriors
    SHADOW_TOP3 = "shadow_top3"  # Salem et al. attack classifier on the top-3
    LIRA_ONLINE = "lira_online"
    LIRA_OFFLINE = "lira_offline"
    LIRA_ONLINE_FIXED_VAR = "lira_online_fixed_var"
    LIRA_OFFLINE_FIXED_VAR = "lira_offline_fixed_var"
    RMIA_ONLINE = "rmia_online"  # Zarifzadeh et al. 2024, in + out reference models
    RMIA_OFFLINE = "rmia_offline"  # out reference models only
    TFP_THRESHOLD = "tfp_threshold"  # TF-Privacy THRESHOLD_ATTACK (on loss)
    TFP_THRESHOLD_ENTROPY = "tfp_threshold_entropy"  # on modified entropy
    TFP_LOGISTIC_REGRESSION = "tfp_logistic_regression"
    TFP_MLP = "tfp_mlp"
    TFP_RANDOM_FOREST = "tfp_random_forest"
    TFP_KNN = "tfp_knn"
    CUSTOM = "custom"

    @property
    def is_baseline(self) -> bool:
        """True for TF-Privacy's rows."""
        return self.value.startswith("tfp_")

    @property
    def needs_shadow(self) -> bool:
        """True when the attack needs shadow (reference) models' outputs.

        The one source of this fact: the registry
        (:func:`keras_mi.attacks.runner.register_attack`) takes it from here
        for every attack named by an ``AttackType``.

        Example:
          >>> AttackType.LOSS_CLASS.needs_shadow, AttackType.LOSS.needs_shadow
          (True, False)
        """
        return self in _NEEDS_SHADOW

    def __str__(self) -> str:
        return self.value


#: The attacks that learn from shadow (reference) models' outputs.
_NEEDS_SHADOW = frozenset({
    AttackType.LOSS_CLASS, AttackType.CONFIDENCE_CLASS, AttackType.MAX_CONFIDENCE_CLASS,
    AttackType.ENTROPY_CLASS, AttackType.MODIFIED_ENTROPY_CLASS,
    AttackType.SHADOW_NN, AttackType.SHADOW_TOP3,
    AttackType.LIRA_ONLINE, AttackType.LIRA_OFFLINE, AttackType.LIRA_ONLINE_FIXED_VAR,
    AttackType.LIRA_OFFLINE_FIXED_VAR, AttackType.RMIA_ONLINE, AttackType.RMIA_OFFLINE,
})


def attack_type_of(name: str) -> AttackType:
    """The :class:`AttackType` whose value is ``name``, else ``CUSTOM``.

    Example:
      >>> attack_type_of("loss"), attack_type_of("my_attack")
      (<AttackType.LOSS: 'loss'>, <AttackType.CUSTOM: 'custom'>)
    """
    try:
        return AttackType(name)
    except ValueError:
        return AttackType.CUSTOM


def downsample_roc(fpr, tpr, max_points: int = 256):
    """Keeps at most ``max_points`` ROC points, log-spaced in FPR.

    For each FPR on a grid (log-spaced from the smallest positive FPR to 1,
    plus a linear grid), keeps the curve's highest point with FPR at most that
    value, so TPR at any grid FPR, the endpoints and the low-FPR staircase
    are exact; AUC can drop by at most the width of a grid cell.

    Example:
      >>> f, t = downsample_roc(np.linspace(0, 1, 1001), np.linspace(0, 1, 1001), 50)
      >>> len(f) <= 50, float(f[0]), float(f[-1])
      (True, 0.0, 1.0)
    """
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    if fpr.size <= max_points:
        return fpr, tpr
    positive = fpr[fpr > 0]
    lo = positive.min() if positive.size else 1.0
    half = max(max_points // 2 - 1, 1)
    grid = np.unique(np.concatenate([
        np.geomspace(lo, 1.0, half), np.linspace(0.0, 1.0, half), [0.0, 1.0]]))
    # Last index with fpr <= g (fpr is non-decreasing along the curve).
    idx = np.searchsorted(fpr, grid, side="right") - 1
    idx = np.unique(np.concatenate([[0], idx[idx >= 0], [fpr.size - 1]]))
    return fpr[idx], tpr[idx]


@dataclasses.dataclass
class AttackResult:
    """Metrics of one attack on one pair of record sets.

    Attributes:
      name: short name (an :class:`AttackType` value or a custom label).
      attack_type: the :class:`AttackType`.
      auc: area under the ROC curve (0.5 = chance).
      best_accuracy: balanced accuracy at the best threshold
        (``0.5 + advantage / 2``; plain accuracy on equal-size sets).
      advantage: ``max(TPR - FPR)`` over thresholds.
      tpr_at_fpr: ``{fpr_target: tpr}``, largest TPR with FPR <= target.
      low_fpr: ``{fpr_target: dict}`` from
        :func:`keras_mi.attacks.metrics.low_fpr_point`: both boundary rules,
        the number of negatives, whether the figure is resolved and a 95 %
        Clopper-Pearson interval.
      members_above_all: members scoring above every non-member (identified
        with no false positive); ``None`` when unknown.
      n_members, n_non_members: sizes of the positive and negative sets.
      positives, negatives: which splits were compared (``"members"`` vs
        ``"non_members"``, or ``"reference"`` vs ``"non_members"`` for the
        check that the MMD reference set does not leak).
      threshold: the best threshold (score units), when there is one.
      wall_time_s: seconds spent on this attack.
      notes: anything a reader must know (e.g. "single ROC point").
      fpr, tpr: ROC arrays (memory; down-sampled in JSON).
      member_scores, non_member_scores: per-record scores (memory only).

    Example:
      >>> r = evaluate_scores([2.0, 1.0], [0.0, -1.0], name="loss")
      >>> r.advantage
      1.0
    """

    name: str
    attack_type: AttackType
    auc: float
    best_accuracy: float
    advantage: float
    tpr_at_fpr: Dict[float, float]
    low_fpr: Dict[float, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    members_above_all: Optional[int] = None
    n_members: int = 0
    n_non_members: int = 0
    positives: str = "members"
    negatives: str = "non_members"
    threshold: Optional[float] = None
    wall_time_s: float = 0.0
    notes: str = ""
    fpr: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)
    tpr: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)
    member_scores: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)
    non_member_scores: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)

    @property
    def is_membership(self) -> bool:
        """True when the positives are the target's training members."""
        return self.positives == "members"

    def to_dict(self, include_roc: bool = True, max_roc_points: int = 256) -> Dict[str, Any]:
        """JSON-ready dict; ROC down-sampled, scores left out."""
        d = {
            "name": self.name, "attack_type": self.attack_type.value,
            "auc": float(self.auc), "best_accuracy": float(self.best_accuracy),
            "advantage": float(self.advantage),
            "tpr_at_fpr": {repr(float(k)): float(v) for k, v in self.tpr_at_fpr.items()},
            "low_fpr": {repr(float(k)): dict(v) for k, v in self.low_fpr.items()},
            "members_above_all": self.members_above_all,
            "n_members": int(self.n_members), "n_non_members": int(self.n_non_members),
            "positives": self.positives, "negatives": self.negatives,
            "threshold": None if self.threshold is None or not np.isfinite(self.threshold)
            else float(self.threshold),
            "wall_time_s": float(self.wall_time_s), "notes": self.notes,
        }
        if include_roc and self.fpr is not None and self.tpr is not None:
            f, t = downsample_roc(self.fpr, self.tpr, max_roc_points)
            d["roc"] = {"fpr": f.tolist(), "tpr": t.tolist()}
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "AttackResult":
        """Inverse of :meth:`to_dict` (ROC comes back down-sampled)."""
        d = dict(d)
        roc = d.pop("roc", None)
        d["attack_type"] = AttackType(d["attack_type"])
        d["tpr_at_fpr"] = {float(k): float(v) for k, v in d["tpr_at_fpr"].items()}
        d["low_fpr"] = {float(k): dict(v) for k, v in d.get("low_fpr", {}).items()}
        if roc is not None:
            d["fpr"], d["tpr"] = np.asarray(roc["fpr"]), np.asarray(roc["tpr"])
        return cls(**d)

    def line(self) -> str:
        """One-line text summary (low-FPR figures with their interval, or n/a)."""
        def low(k, v):
            return format_low_fpr(self.low_fpr[k]) if k in self.low_fpr else f"{v:.4f}"

        lows = ", ".join(f"TPR@{k:g}={low(k, v)}"
                         for k, v in sorted(self.tpr_at_fpr.items(), reverse=True))
        what = "" if self.is_membership else f" [{self.positives} vs {self.negatives}]"
        return (f"{self.name}{what}: AUC={self.auc:.4f} acc={self.best_accuracy:.4f} "
                f"adv={self.advantage:.4f}" + (f" {lows}" if lows else ""))


def format_low_fpr(point: Dict[str, Any], digits: int = 3) -> str:
    """``"0.121 [0.100, 0.145]"``, or ``"n/a (needs 10000 negatives)"`` when unresolved.

    Args:
      point: a dict from :func:`keras_mi.attacks.metrics.low_fpr_point`.
      digits: decimals.

    Example:
      >>> format_low_fpr({"tpr": 0.5, "resolved": False, "negatives_needed": 1000,
      ...                 "n_negatives": 100, "ci": [0.2, 0.8]})
      'n/a (needs 1000 negatives, has 100)'
    """
    if not point.get("resolved", False):
        return f"n/a (needs {point['negatives_needed']} negatives, has {point['n_negatives']})"
    lo, hi = point["ci"]
    return f"{point['tpr']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def evaluate_scores(member_scores, non_member_scores, name: str = "custom",
                    attack_type: Optional[AttackType] = None,
                    fpr_targets: Iterable[float] = _metrics.DEFAULT_FPR_TARGETS,
                    keep_scores: bool = False, notes: str = "",
                    positives: str = "members", negatives: str = "non_members",
                    wall_time_s: Optional[float] = None) -> AttackResult:
    """Turns per-record membership scores into an :class:`AttackResult`.

    Args:
      member_scores: scores of the members; higher = more likely a member.
      non_member_scores: scores of the non-members.
      name: the attack's name; ``attack_type`` defaults to the
        :class:`AttackType` whose value is ``name``, else ``CUSTOM``.
      fpr_targets: FPRs at which to report TPR.
      keep_scores: keep the score arrays on the result (for histograms).
      notes, positives, negatives: copied to the result.
      wall_time_s: time to report; defaults to the time of this call.

    Example:
      >>> r = evaluate_scores([0.9, 0.7], [0.8, 0.1], name="my_score")
      >>> r.attack_type.name, r.auc
      ('CUSTOM', 0.75)
    """
    start = time.perf_counter()
    m = _metrics.attack_metrics(member_scores, non_member_scores, fpr_targets)
    return AttackResult(
        name=name, attack_type=attack_type or attack_type_of(name),
        auc=m["auc"], best_accuracy=m["best_accuracy"], advantage=m["advantage"],
        tpr_at_fpr=m["tpr_at_fpr"], low_fpr=m["low_fpr"],
        members_above_all=m["members_above_all"],
        n_members=int(np.size(member_scores)), n_non_members=int(np.size(non_member_scores)),
        positives=positives, negatives=negatives, threshold=m["best_threshold"],
        wall_time_s=(time.perf_counter() - start) if wall_time_s is None else wall_time_s,
        notes=notes, fpr=m["fpr"], tpr=m["tpr"],
        member_scores=np.asarray(member_scores) if keep_scores else None,
        non_member_scores=np.asarray(non_member_scores) if keep_scores else None)


@dataclasses.dataclass
class AttackReport:
    """The results of several attacks on one model.

    Attributes:
      results: list of :class:`AttackResult`.
      metadata: free-form JSON-safe facts (model name, split sizes, seeds...).

    Example:
      >>> rep = AttackReport([evaluate_scores([1.0], [0.0], name="loss")])
      >>> rep.strongest().name
      'loss'
    """

    results: List[AttackResult] = dataclasses.field(default_factory=list)
    metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def get(self, name: str, positives: str = "members") -> AttackResult:
        """The result named ``name`` (members vs non-members by default)."""
        for r in self.results:
            if r.name == name and r.positives == positives:
                return r
        raise KeyError(f"No result named '{name}' (positives={positives}); have "
                       f"{[r.name for r in self.results]}.")

    def strongest(self, by: str = "advantage", include_baseline: bool = True) -> AttackResult:
        """The strongest membership attack by ``"advantage"``, ``"auc"`` or ``"low_fpr"``.

        Advantage is the default for a single target because the paper
        reports attack accuracy (``0.5 + advantage / 2``); ties are broken by
        the other metric. ``"low_fpr"`` (the bank protocol's choice) ranks by
        TPR at the smallest FPR target that is resolved for every row, then
        by AUC. Only members-vs-non-members rows count (not the
        reference-set check); ``include_baseline=False`` also skips
        TF-Privacy's rows.
        """
        if by not in ("advantage", "auc", "low_fpr"):
            raise ValueError(f"by must be 'advantage', 'auc' or 'low_fpr', got '{by}'.")
        pool = [r for r in self.results if r.is_membership
                and (include_baseline or not r.attack_type.is_baseline)]
        if not pool:
            raise ValueError("The report has no members-vs-non-members results.")
        if by == "low_fpr":
            target = self.resolved_fpr(pool)
            if target is not None:
                return max(pool, key=lambda r: (r.tpr_at_fpr[target], r.auc))
            by = "auc"
        other = "auc" if by == "advantage" else "advantage"
        return max(pool, key=lambda r: (getattr(r, by), getattr(r, other)))

    @staticmethod
    def resolved_fpr(results: Iterable[AttackResult]) -> Optional[float]:
        """The smallest FPR target resolved (enough negatives) in every result, or None.

        Example:
          >>> r = evaluate_scores(np.arange(2000.0), np.arange(2000.0) - 0.5)
          >>> AttackReport.resolved_fpr([r])  # 2,000 negatives: 1 % but not 0.1 %
          0.01
        """
        common = None
        for r in results:
            ok = {t for t, p in r.low_fpr.items() if p.get("resolved")}
            common = ok if common is None else common & ok
        return min(common) if common else None

    def summary(self, by: str = "advantage") -> str:
        """Short text: one line per attack, then the strongest attack."""
        lines = [r.line() for r in self.results]
        if any(r.is_membership for r in self.results):
            best = self.strongest(by=by)
            lines.append(f"strongest (by {by}): {best.name} "
                         f"(AUC={best.auc:.4f}, adv={best.advantage:.4f})")
        return "\n".join(lines)

    def to_dict(self, include_roc: bool = True, max_roc_points: int = 256) -> Dict[str, Any]:
        return {"results": [r.to_dict(include_roc, max_roc_points) for r in self.results],
                "metadata": self.metadata}

    def to_json(self, include_roc: bool = True, max_roc_points: int = 256, **kwargs) -> str:
        """JSON text (``kwargs`` go to ``json.dumps``, e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(include_roc, max_roc_points), **kwargs)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "AttackReport":
        return cls(results=[AttackResult.from_dict(r) for r in d.get("results", [])],
                   metadata=dict(d.get("metadata", {})))

    @classmethod
    def from_json(cls, text: str) -> "AttackReport":
        """Inverse of :meth:`to_json`.

        Example:
          >>> rep = AttackReport([evaluate_scores([1.0], [0.0], name="loss")])
          >>> AttackReport.from_json(rep.to_json()).results[0].auc
          1.0
        """
        return cls.from_dict(json.loads(text))
