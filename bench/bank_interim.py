"""An interim look at the banks of a `keras-mi evaluate` run that is still training.

A CIFAR-10 bank of 8 AlexNets takes hours per defense on 2 CPU cores. This
reads the run folder (``config.json``, ``split.json``, ``banks/<defense>/``),
takes the first ``k`` models of each defense's bank (complete pairs; ``k``
the largest even count every listed defense has, or ``--models``), and
attacks them with the bank protocol's attacks as ``keras-mi evaluate`` would
at bank size ``k``: adaptive (each model the target, the other ``k - 1`` of
the same defense the shadows) and, for a defense other than ``none``,
non-adaptive (``none``'s first ``k`` as the shadows, from this run or from
``--none-from`` another run on the same split). The first ``k`` models
of a bank of 8 are the models a bank of ``k`` holds (halves and seeds do not
depend on the size). Nothing is written into the run folder.

  python bench/bank_interim.py --run runs/cifar10_cpu --defenses none mmd \
      --out docs/results/bank_cifar10_cpu/interim.json
  python bench/bank_interim.py --quick   # CI: a tiny Location run (bank of 6), then its first 4
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="train a tiny Location run with banks of 6 in a temporary folder, "
                        "then read its first 4 models (CI)")
    p.add_argument("--run", default=None, help="the evaluate run folder (--out of the run)")
    p.add_argument("--defenses", nargs="+", default=None,
                   help="default: every defense of the run's config with bank models")
    p.add_argument("--models", type=int, default=None,
                   help="models per bank (even, >= 4; default the most all defenses have)")
    p.add_argument("--none-from", default=None, metavar="RUN",
                   help="another run folder on the same split whose 'none' bank gives the "
                        "non-adaptive shadows (e.g. when --run compares one MMD setting)")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    if args.run is None and not args.quick:
        p.error("--run is required (or --quick)")
    return args


def quick_run(folder: pathlib.Path) -> None:
    """A tiny Location run (none, mmd; banks of 6, 2 epochs) for ``--quick``."""
    from keras_mi.experiment import get_preset, run_experiment

    cfg = get_preset("location").with_overrides({
        "defenses": ["none", "mmd"], "attacks": ["loss"], "training.epochs": 2,
        "split.members": 300, "split.non_members": 300, "split.reference": 300,
        "split.test": 300, "split.shadow": 0, "num_shadow_models": 0, "bank.size": 6})
    run_experiment(cfg, folder, verbose=0)


def complete_models(folder: pathlib.Path) -> int:
    """How many models from index 0 on are done, rounded down to complete pairs."""
    from keras_mi.attacks import shadow_jobs

    k = 0
    while shadow_jobs.shadow_path(folder, k).exists():
        k += 1
    return k - k % 2


def main(argv=None) -> int:
    args = parse_args(argv)
    from keras_mi.attacks import bank as kbank
    from keras_mi.experiment import ExperimentConfig
    from keras_mi.experiment.report import bank_summary, format_bank_audit
    from keras_mi.experiment.steps import attack_one_bank, bank_recipe
    from keras_mi.experiment.store import safe_tag

    if args.quick:
        import tempfile

        scratch = tempfile.TemporaryDirectory(prefix="keras_mi_bank_interim_")
        run = pathlib.Path(scratch.name)
        quick_run(run)
        args.models = 4 if args.models is None else args.models
    else:
        run = pathlib.Path(args.run)
    if not (run / "config.json").exists():
        raise SystemExit(f"{run} holds no keras-mi evaluate run (no config.json).")
    config = ExperimentConfig.load(run / "config.json")
    defenses = args.defenses
    if defenses is None:
        counts = {d: complete_models(run / "banks" / safe_tag(d)) for d in config.defenses}
        defenses = [d for d, n in counts.items() if n >= 4]
        for d, n in counts.items():
            if n < 4:
                print(f"{d}: {n} complete models (pairs), fewer than a bank needs: left out")
    unknown = [d for d in defenses if d not in config.defenses]
    if unknown:
        raise SystemExit(f"{unknown} are not defenses of this run ({config.defenses}).")
    have = {d: complete_models(run / "banks" / safe_tag(d)) for d in defenses}
    k = args.models if args.models is not None else min(have.values(), default=0)
    short = {d: n for d, n in have.items() if n < k}
    if k < 4 or k % 2 or short:
        raise SystemExit(f"need an even number >= 4 of models in every bank; have {have}"
                         + (f", asked for {k}" if args.models is not None else ""))
    b = config.bank
    banks = {d: kbank.load_bank(run / "banks" / safe_tag(d), only_first=k,
                                recipe=bank_recipe(config, d)) for d in defenses}
    baseline = banks.get("none")
    if args.none_from:
        other = pathlib.Path(args.none_from)
        other_config = ExperimentConfig.load(other / "config.json")
        baseline = kbank.load_bank(other / "banks" / "none", only_first=k,
                                   recipe=bank_recipe(other_config, "none"))
        if baseline.fingerprint != next(iter(banks.values())).fingerprint:
            raise SystemExit(f"{other}'s none bank was trained on another pool than {run}'s.")
    rows = []
    for defense, bank in banks.items():
        reports = {"adaptive": bank}
        if defense != "none" and baseline is not None:
            reports["non_adaptive"] = baseline
        for protocol, shadows in reports.items():
            report = attack_one_bank(defense, bank,
                                     None if protocol == "adaptive" else shadows, config)
            summary = bank_summary({protocol: report})
            best = summary[protocol]["strongest_attack"]
            tpr1 = best["per_target"].get("tpr_at_fpr@0.01")
            rows.append({
                "defense": defense, "protocol": protocol, "models": k,
                "of_bank": b.size, "pairs": summary[protocol]["pairs"],
                "accuracy_median": summary["accuracy"]["population"]["median"],
                "train_accuracy_median": summary["accuracy"]["train"]["median"],
                "strongest": best["name"], "auc": best["auc"],
                "tpr_at_1pct": best["tpr_at_fpr"]["0.01"],
                "tpr_at_0.1pct": best["tpr_at_fpr"]["0.001"],
                "resolved_0.1pct": best["low_fpr"].get("0.001", {}).get("resolved"),
                "per_target_tpr_at_1pct": tpr1,
                "attacks": {n: {"auc": a["auc"], "tpr_at_1pct": a["tpr_at_fpr"]["0.01"]}
                            for n, a in summary[protocol]["attacks"].items()},
                # A DP-SGD bank's audit: a lower bound on ε beside the accountant's.
                "empirical_epsilon": summary[protocol].get("empirical_epsilon")})
    print(f"{run}: first {k} models of each bank of {b.size} ({', '.join(defenses)})\n")
    print("| defense | protocol | train acc | test acc | strongest | AUC | TPR@1% "
          "(per model min–max) | TPR@0.1% |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        mark = "" if r["resolved_0.1pct"] else " (unresolved)"
        spread = r["per_target_tpr_at_1pct"]
        spread = "" if spread is None else f" ({spread['min']:.3f}–{spread['max']:.3f})"
        print(f"| {r['defense']} | {r['protocol']} | {r['train_accuracy_median']:.3f} | "
              f"{r['accuracy_median']:.3f} | {r['strongest']} | {r['auc']:.3f} | "
              f"{r['tpr_at_1pct']:.3f}{spread} | {r['tpr_at_0.1pct']:.4f}{mark} |")
    audits: dict = {}
    for r in rows:
        audits.setdefault(r["defense"], {"bank": {}})["bank"][r["protocol"]] = {
            "empirical_epsilon": r["empirical_epsilon"]}
    audit_lines = format_bank_audit({"defenses": audits})
    if audit_lines:
        print("\n" + audit_lines)
    if args.out:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"run": str(run), "models": k, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
