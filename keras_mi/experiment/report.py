"""The privacy/utility report: ``report.json``, ``report.md`` and plots.

``report.json`` holds every number and nothing that changes between two
runs of the same config (no wall times, no absolute paths, no data
location): re-running, or resuming after an interruption, rewrites it byte
for byte. Wall times live in ``timings.json`` and appear in ``report.md``.

Accuracy conventions (balanced members/non-members):

* ``train_accuracy`` on the members, ``test_accuracy`` on the test split,
  ``non_member_accuracy`` on the attacked non-members;
* ``generalization_gap = train_accuracy - test_accuracy``;
* ``member_gap = train_accuracy - non_member_accuracy``: the gap attack
  ("member iff correctly classified") has accuracy ``0.5 + member_gap / 2``.
"""

from __future__ import annotations

import pathlib
from typing import Any, Dict, List, Optional

import numpy as np

from keras_mi.experiment import store

FORMAT_VERSION = 1
LOW_FPRS = (0.01, 0.001)


def _accuracy(outputs, split: str) -> Optional[float]:
    got = outputs.get(split)
    if got is None or len(got[1]) == 0:
        return None
    logits, labels = got
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def _attack_row(result) -> Dict[str, Any]:
    tpr = {float(k): float(v) for k, v in result.tpr_at_fpr.items()}
    return {
        "auc": float(result.auc), "best_accuracy": float(result.best_accuracy),
        "advantage": float(result.advantage),
        "tpr_at_fpr": {repr(f): tpr.get(f) for f in LOW_FPRS},
        "low_fpr": {repr(f): result.low_fpr.get(f) for f in LOW_FPRS if f in result.low_fpr},
        "members_above_all": result.members_above_all,
        "n_members": int(result.n_members), "n_non_members": int(result.n_non_members),
        "positives": result.positives, "negatives": result.negatives,
    }


def bank_summary(reports: Dict[str, Any]) -> Dict[str, Any]:
    """The bank protocol's numbers of one defense (strongest attack by low-FPR TPR).

    Args:
      reports: ``{"adaptive": AttackReport, "non_adaptive": AttackReport or
        None}`` from :func:`keras_mi.experiment.steps.bank_attack_step`.

    Returns:
      ``{protocol: {num_models, pairs, strongest_attack, attacks, skipped},
      "accuracy": ...}`` (JSON-ready).

    Example:
      >>> summary = bank_summary({"adaptive": report})  # doctest: +SKIP
      >>> summary["adaptive"]["strongest_attack"]["name"]  # doctest: +SKIP
      'lira_online_fixed_var'
    """
    row: Dict[str, Any] = {}
    for protocol, report in reports.items():
        if report is None:
            continue
        best = report.strongest(by="low_fpr")
        meta = report.metadata
        row[protocol] = {
            "num_models": meta["num_models"], "pairs": meta["pairs"],
            "strongest_attack": {"name": best.name, **_attack_row(best),
                                 "per_target": meta["per_target"][best.name]},
            "attacks": {r.name: _attack_row(r) for r in report.results},
            "skipped": meta.get("skipped", {}),
        }
        if "empirical_epsilon" in meta:  # DP-SGD banks: the audit's lower bound on ε
            row[protocol]["empirical_epsilon"] = meta["empirical_epsilon"]
        if "accuracy" in meta:
            row["accuracy"] = meta["accuracy"]
    return row


def build_report(config, facts, targets: Dict[str, Dict[str, Any]],
                 split_fingerprint: Optional[str] = None) -> Dict[str, Any]:
    """Collects the numbers of every defense into one JSON-ready dict.

    Args:
      config: the :class:`~keras_mi.experiment.config.ExperimentConfig`.
      facts: the runner's dataset facts (name, shapes, pool size).
      targets: defense -> ``{"outputs": ModelOutputs, "meta": dict,
        "attacks": AttackReport}``.
      split_fingerprint: the split's fingerprint, when it has one.

    Example:
      >>> rep = build_report(cfg, facts, targets)  # doctest: +SKIP
      >>> rep["defenses"]["none"]["strongest_attack"]["name"]  # doctest: +SKIP
    """
    cfg = config.to_dict()
    cfg.pop("data_dir", None)
    cfg.pop("cache_dir", None)
    defenses = {}
    for defense, t in targets.items():
        out = t["outputs"]
        train, test = _accuracy(out, "members"), _accuracy(out, "test")
        non_member = _accuracy(out, "non_members")
        row: Dict[str, Any] = {
            "train_accuracy": train, "test_accuracy": test,
            "non_member_accuracy": non_member, "reference_accuracy": _accuracy(out, "reference"),
            "generalization_gap": None if test is None else train - test,
            "member_gap": train - non_member,
        }
        meta = {k: v for k, v in t.get("meta", {}).items() if k != "defense"}
        row["epsilon"] = meta.pop("epsilon", None)
        row["training"] = meta
        attacks, others = {}, {}
        report = t.get("attacks")
        for r in (report.results if report is not None else []):
            if r.is_membership:
                attacks[r.name] = _attack_row(r)
            else:
                others[f"{r.name}[{r.positives}]"] = _attack_row(r)
        row["attacks"] = attacks
        if others:
            row["other_checks"] = others
        if report is not None and attacks:
            best = report.strongest()
            row["strongest_attack"] = {"name": best.name, **_attack_row(best)}
        if t.get("bank"):
            row["bank"] = bank_summary(t["bank"])
        defenses[defense] = row
    return {
        "format": FORMAT_VERSION,
        "config": cfg,
        "config_sha256": config.fingerprint(),
        "split_fingerprint": split_fingerprint,
        "dataset": {"name": facts.name, "pool_size": int(facts.pool_size),
                    "input_shape": list(facts.input_shape), "num_classes": int(facts.num_classes),
                    "architecture": facts.architecture},
        "defenses": defenses,
    }


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def _fmt_eps(value) -> str:
    return "∞" if value is None else f"{value:.2f}"


def _fmt_tpr(attack: Dict[str, Any], fpr: str) -> str:
    """TPR at ``fpr`` with its interval, or n/a when the negatives cannot resolve it."""
    point = (attack.get("low_fpr") or {}).get(fpr)
    if point is None:
        return _fmt((attack.get("tpr_at_fpr") or {}).get(fpr))
    if not point["resolved"]:
        return f"n/a (needs {point['negatives_needed']:,} non-members)"
    lo, hi = point["ci"]
    return f"{point['tpr']:.3f} [{lo:.3f}, {hi:.3f}]"


def format_table(report: Dict[str, Any], timings: Optional[Dict[str, float]] = None) -> str:
    """The summary table (Markdown), one row per defense.

    Example:
      >>> print(format_table(report))  # doctest: +SKIP
    """
    timings = timings or {}
    head = ("| defense | train acc | test acc | gap | strongest attack | AUC | attack acc | "
            "advantage | TPR@1%FPR [95% CI] | TPR@0.1%FPR [95% CI] | members above all "
            "non-members | ε | train time |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for defense, row in report["defenses"].items():
        best = row.get("strongest_attack", {})
        secs = timings.get(f"train/{store.safe_tag(defense)}_s")
        above = best.get("members_above_all")
        lines.append("| " + " | ".join([
            defense, _fmt(row["train_accuracy"]), _fmt(row["test_accuracy"]),
            _fmt(row["generalization_gap"]), best.get("name", "–"), _fmt(best.get("auc")),
            _fmt(best.get("best_accuracy")), _fmt(best.get("advantage")),
            _fmt_tpr(best, "0.01"), _fmt_tpr(best, "0.001"),
            "–" if above is None else f"{above} of {best.get('n_members')}",
            _fmt_eps(row["epsilon"]), "–" if secs is None else f"{secs:.1f} s"]) + " |")
    return "\n".join(lines)


def format_bank_table(report: Dict[str, Any], timings: Optional[Dict[str, float]] = None) -> str:
    """The bank protocol's table (Markdown), or ``""`` when the run had no bank.

    One row per defense and protocol: the strongest attack by TPR at the
    lowest resolved FPR over the pooled (model, record) pairs, its AUC and
    TPR with intervals, members above every non-member (pooled, and per
    target model median and max), the min-max of the per-target TPR@1 %,
    and the bank models' median test accuracy.

    Example:
      >>> print(format_bank_table(json.load(open("runs/audit/report.json"))))  # doctest: +SKIP
    """
    timings = timings or {}
    rows = [(d, r["bank"]) for d, r in report["defenses"].items() if r.get("bank")]
    if not rows:
        return ""
    head = ("| defense | protocol | models | test acc (median) | strongest attack | AUC | "
            "TPR@1%FPR [95% CI] | TPR@0.1%FPR [95% CI] | members above all non-members "
            "(pooled; per model median / max) | per-model TPR@1% (min–max) | bank time |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for defense, bank in rows:
        acc = bank.get("accuracy", {}).get("population", {}).get("median")
        secs = timings.get(f"banks/{store.safe_tag(defense)}_s")
        for protocol in ("adaptive", "non_adaptive"):
            if protocol not in bank:
                continue
            b = bank[protocol]
            best = b["strongest_attack"]
            per = best["per_target"]
            above = per["members_above_all"]
            tpr1 = per.get("tpr_at_fpr@0.01", {})
            lines.append("| " + " | ".join([
                defense, protocol.replace("_", "-"), str(b["num_models"]), _fmt(acc),
                best["name"], _fmt(best["auc"]), _fmt_tpr(best, "0.01"), _fmt_tpr(best, "0.001"),
                f"{best['members_above_all']} of {best['n_members']}; "
                f"{above['median']:g} / {above['max']:g}",
                f"{_fmt(tpr1.get('min'), 3)}–{_fmt(tpr1.get('max'), 3)}",
                "–" if secs is None or protocol != "adaptive" else f"{secs:.0f} s"]) + " |")
    return "\n".join(lines)


def format_bank_audit(report: Dict[str, Any]) -> str:
    """One line per DP-SGD bank and protocol: the empirical ε lower bound next to
    the accountant's ε (``""`` when no bank has one).

    Example:
      >>> format_bank_audit({"defenses": {}})
      ''
    """
    lines = []
    for defense, row in report["defenses"].items():
        for protocol, b in (row.get("bank") or {}).items():
            audit = b.get("empirical_epsilon") if isinstance(b, dict) else None
            if not audit:
                continue
            lines.append(
                f"- {defense}, {protocol.replace('_', '-')}: empirical ε ≥ {audit['epsilon']:.2f} "
                f"({audit['attack'] or 'no attack'}, δ = {audit['delta']:.0e}, "
                f"{audit['confidence']:.0%} confidence) vs the accountant's ε ≤ "
                f"{audit['accountant_epsilon']:g}")
    if not lines:
        return ""
    return ("Empirical ε lower bounds of the DP-SGD banks (Clopper–Pearson on the pooled "
            "pairs, threshold chosen on half of them, Bonferroni over attacks; pooled pairs "
            "are not independent, and a fixed-size half makes in/out a replacement):\n\n"
            + "\n".join(lines))


def format_attacks(report: Dict[str, Any]) -> str:
    """One table per defense with every attack's numbers (Markdown)."""
    parts: List[str] = []
    for defense, row in report["defenses"].items():
        parts.append(f"### {defense}\n")
        parts.append("| attack | AUC | attack acc | advantage | TPR@1%FPR | TPR@0.1%FPR |")
        parts.append("|---|---|---|---|---|---|")
        rows = dict(row["attacks"])
        rows.update(row.get("other_checks", {}))
        for name, a in rows.items():
            parts.append(f"| {name} | {_fmt(a['auc'])} | {_fmt(a['best_accuracy'])} | "
                         f"{_fmt(a['advantage'])} | {_fmt_tpr(a, '0.01')} | "
                         f"{_fmt_tpr(a, '0.001')} |")
        parts.append("")
        for protocol, b in ((p, row.get("bank", {}).get(p)) for p in ("adaptive", "non_adaptive")):
            if not b:
                continue
            parts.append(f"Bank protocol, {protocol.replace('_', '-')} ({b['num_models']} "
                         f"models, {b['pairs']:,} pairs):\n")
            parts.append("| attack | AUC | TPR@1%FPR | TPR@0.1%FPR | members above all |")
            parts.append("|---|---|---|---|---|")
            for name, a in b["attacks"].items():
                parts.append(f"| {name} | {_fmt(a['auc'])} | {_fmt_tpr(a, '0.01')} | "
                             f"{_fmt_tpr(a, '0.001')} | {a['members_above_all']} |")
            for name, why in b.get("skipped", {}).items():
                parts.append(f"| {name} | skipped: {why} | | | |")
            parts.append("")
    return "\n".join(parts)


def _per_defense_lines(cfg: Dict[str, Any]) -> List[str]:
    """One line for the defenses that train with their own values (``per_defense``)."""
    own = {name: values for name, values in cfg.get("per_defense", {}).items()
           if values and name in cfg["defenses"]}
    if not own:
        return []
    return ["- own settings: " + "; ".join(
        f"{name}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
        for name, values in own.items())]


def format_markdown(report: Dict[str, Any], timings: Optional[Dict[str, float]] = None) -> str:
    """The whole ``report.md``: setup, summary table, per-attack tables, plots."""
    cfg, ds = report["config"], report["dataset"]
    t = cfg["training"]
    s = cfg["split"]
    total = sum(v for k, v in (timings or {}).items()
                if k.startswith(("train/", "attacks/", "shadows/")))
    return "\n".join([
        f"# keras-mi privacy/utility report: {ds['name']}",
        "",
        f"- model: `{ds['architecture']}`, {ds['num_classes']} classes, "
        f"input {tuple(ds['input_shape'])}",
        f"- split: {s['members']} members / {s['non_members']} non-members / {s['reference']} "
        f"reference / {s['test']} test / {s['shadow']} shadow pool (of {ds['pool_size']}), "
        f"seed {cfg['seed']}",
        f"- recipe: {t['optimizer']} lr {t['learning_rate']} ({t['lr_schedule']}), "
        f"{t['epochs']} epochs, "
        f"batch {t['batch_size']}, augmentation {t['augmentation']}; MMD λ={cfg['mmd_weight']} "
        f"σ={cfg['mmd_sigma']} ({cfg['mmd_schedule']}), mixup α={cfg['mixup_alpha']}",
        *_per_defense_lines(cfg),
        f"- config sha256: `{report['config_sha256'][:16]}…`; "
        f"compute time (all sessions): {total:.1f} s",
        "",
        "The strongest attack is chosen by advantage (max TPR − FPR). "
        "Attack accuracy = 0.5 + advantage/2 on the balanced members/non-members; "
        "ε = ∞ means no DP guarantee. "
        "TPR@FPR is the largest TPR with FPR ≤ the target, with a 95 % Clopper–Pearson "
        "interval; it is n/a when "
        "the non-members allow fewer than 10 false positives at that FPR.",
        "",
        f"## Single target per defense ({s['members']} members vs {s['non_members']} "
        "non-members of one model)",
        "",
        format_table(report, timings),
        "",
        *(["## Bank protocol",
           "",
           "Each defense's bank: models trained with that defense on random halves of members + "
           "non-members; each model is the target in turn, attacked with the others (adaptive) or "
           "with the `none` bank (non-adaptive); (model, record) pairs are pooled. The strongest "
           "attack is the one with the largest TPR at the lowest resolved FPR.",
           "",
           format_bank_table(report, timings),
           "",
           *([format_bank_audit(report), ""] if format_bank_audit(report) else [])]
          if format_bank_table(report) else []),
        "![ROC](roc.png) ![privacy vs utility](privacy_utility.png)",
        "",
        "## Every attack",
        "",
        format_attacks(report),
    ])


def write_all(out: pathlib.Path, report: Dict[str, Any], timings: Dict[str, float],
              curves: Optional[Dict[str, Any]] = None) -> None:
    """Writes report.json, report.md, roc.png and privacy_utility.png atomically."""
    from keras_mi.experiment import plots

    store.write_json(out / "report.json", report, sort_keys=False)  # keeps the defense order
    store.write_text(out / "report.md", format_markdown(report, timings) + "\n")
    if curves:
        store.atomic_write(
            out / "roc.png",
            lambda p: plots.roc_figure(curves).savefig(p, format="png", dpi=120), ".png")
    store.atomic_write(
        out / "privacy_utility.png",
        lambda p: plots.privacy_utility_figure(report).savefig(p, format="png", dpi=120), ".png")
