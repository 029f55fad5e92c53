"""The privacy/utility frontier on Location under the bank protocol, one defense per run.

For each seed and each defense spec, runs ``keras-mi evaluate`` (the
``location`` preset, that one defense, ``bank.size = --bank``, the
single-target catalogue cut to the loss attack since the bank is what is
read) and keeps the adaptive bank's numbers: median test accuracy of the
bank's models, the strongest attack by TPR at 0.1 % FPR (LiRA and RMIA
variants, the loss threshold) with its 95 % interval, pooled AUC, TPR@1 %,
the per-model TPR@1 % range and the members identified with no false
positive. Rows of an earlier ``bench/bank_location.py`` run (same preset,
same seeds, same bank seeds) can be merged in with ``--reuse``.

A spec is ``LABEL=DEFENSE[,KEY=VALUE...]`` with config overrides, e.g.
``mmd-logodds=mmd,mmd_statistic=log_odds,mmd_kernel=imq,mmd_sigma=1``.
Writes ``results.json``, ``frontier.md`` and ``frontier.png`` into ``--out``
(runs resume from there).

  python bench/frontier_location.py --quick
  python bench/frontier_location.py --out docs/results/frontier_location/runs --seeds 0 \\
      --reuse docs/results/bank_location/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The field's other defenses at their registry defaults (the authors' values).
DEFAULT_SPECS = ["label_smoothing=label_smoothing", "confidence_penalty=confidence_penalty",
                 "early_stopping=early_stopping", "relaxloss=relaxloss", "advreg=advreg",
                 "hamp=hamp"]


def parse_spec(text: str):
    label, _, rest = text.partition("=")
    if not label or not rest:
        raise argparse.ArgumentTypeError(f"spec {text!r} is not LABEL=DEFENSE[,KEY=VALUE...]")
    # A comma starts a new override only before KEY=, so list values keep theirs.
    defense, *pairs = re.split(r",(?=[A-Za-z_][A-Za-z0-9_.+:]*=)", rest)
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"override {pair!r} in {text!r} is not KEY=VALUE")
        overrides[key] = value
    return label, defense, overrides


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run for CI (< 2 min)")
    p.add_argument("--bank", type=int, default=None, help="models per bank (default 16)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1")
    p.add_argument("--spec", type=parse_spec, action="append", default=None,
                   help="LABEL=DEFENSE[,KEY=VALUE...] (repeatable; default: "
                        + " ".join(DEFAULT_SPECS) + ")")
    p.add_argument("--reuse", default=None,
                   help="results.json of bench/bank_location.py to merge (adaptive rows)")
    p.add_argument("--data-dir", default=None, help="folder with location.tgz")
    p.add_argument("--out", default=None, help="run folders and results (resumable)")
    args = p.parse_args(argv)
    args.bank = args.bank or (4 if args.quick else 16)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1])
    if args.spec is None:
        specs = ["label_smoothing=label_smoothing"] if args.quick else DEFAULT_SPECS
        args.spec = [parse_spec(s) for s in specs]
    return args


def config_for(args, seed, defense, overrides):
    from keras_mi.experiment import get_preset

    sets = {"seed": seed, "bank.size": args.bank, "defenses": [defense], "attacks": ["loss"]}
    if args.data_dir:
        sets["data_dir"] = args.data_dir
    if args.quick:
        sets.update({"training.epochs": 3, "split.members": 300, "split.non_members": 300,
                     "split.reference": 300, "split.test": 300, "split.shadow": 0})
    sets.update(overrides)
    return get_preset("location").with_overrides(sets)


def row_of(label, seed, bank, seconds):
    adaptive = bank["adaptive"]
    best = adaptive["strongest_attack"]
    spread = best["per_target"]["tpr_at_fpr@0.01"]
    return {"label": label, "seed": seed, "attack": best["name"],
            "test_accuracy": bank["accuracy"]["population"]["median"], "auc": best["auc"],
            "low_fpr": best["low_fpr"], "members_above_all": best["members_above_all"],
            "per_target_tpr_at_1%": [spread["min"], spread["max"]],
            "pairs": adaptive["pairs"], "bank_s": seconds}


def reused_rows(path):
    rows = []
    for r in json.loads(pathlib.Path(path).read_text())["rows"]:
        if r["protocol"] == "adaptive" and r["strongest"]:
            rows.append({"label": r["defense"], "seed": r["seed"], "attack": r["attack"],
                         "test_accuracy": r["test_accuracy"], "auc": r["auc"],
                         "low_fpr": r["low_fpr"], "members_above_all": r["members_above_all"],
                         "per_target_tpr_at_1%": None, "pairs": r["pairs"],
                         "bank_s": r.get("bank_s"), "reused": str(path)})
    return rows


def fmt_tpr(point):
    if not point or not point["resolved"]:
        return "n/a"
    lo, hi = point["ci"]
    return f"{point['tpr']:.3f} [{lo:.3f}, {hi:.3f}]"


def table(rows):
    lines = ["| defense | seed | test acc | strongest attack | AUC | TPR@1% [95% CI] | "
             "TPR@0.1% [95% CI] | per-model TPR@1% | zero-FP members (pooled) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["label"], r["seed"])):
        spread = r["per_target_tpr_at_1%"]
        spread = "—" if spread is None else f"{spread[0]:.3f}–{spread[1]:.3f}"
        lines.append(f"| {r['label']} | {r['seed']} | {r['test_accuracy']:.3f} | {r['attack']} | "
                     f"{r['auc']:.3f} | {fmt_tpr(r['low_fpr'].get('0.01'))} | "
                     f"{fmt_tpr(r['low_fpr'].get('0.001'))} | {spread} | "
                     f"{r['members_above_all']} |")
    return "\n".join(lines)


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    colors = plt.get_cmap("tab20").colors
    markers = "osD^vP*Xh<>"
    for i, label in enumerate(sorted({r["label"] for r in rows})):
        mine = [r for r in rows if r["label"] == label and r["low_fpr"]["0.001"]["resolved"]]
        if not mine:
            continue
        x = [r["test_accuracy"] for r in mine]
        y = [max(r["low_fpr"]["0.001"]["tpr"], 1e-4) for r in mine]
        lo = [max(yy - r["low_fpr"]["0.001"]["ci"][0], 0) for yy, r in zip(y, mine)]
        hi = [max(r["low_fpr"]["0.001"]["ci"][1] - yy, 0) for yy, r in zip(y, mine)]
        ax.errorbar(x, y, yerr=[lo, hi], fmt=markers[i % len(markers)], capsize=3, label=label,
                    color=colors[(2 * i) % 20 + (i // 10) % 2])
    ax.set_yscale("log")
    ax.set_xlabel("test accuracy (median over the bank's models)")
    ax.set_ylabel("TPR at 0.1 % FPR (strongest attack, adaptive bank)")
    ax.set_title("Location: privacy/utility frontier under the bank protocol")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        # Outside the axes: with two dozen labels an inner legend hides points.
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    from keras_mi.experiment import run_experiment

    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="frontier_location_"))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    done = json.loads(results_path.read_text())["rows"] if results_path.exists() else []
    rows = [r for r in done if "reused" not in r]
    for seed in args.seeds:
        for label, defense, overrides in args.spec:
            if any(r["label"] == label and r["seed"] == seed for r in rows):
                continue
            folder = out / f"seed{seed}" / label
            print(f"== seed {seed}: {label} ({defense} {overrides}), bank of {args.bank} "
                  f"-> {folder}", flush=True)
            t0 = time.perf_counter()
            report = run_experiment(config_for(args, seed, defense, overrides), folder,
                                    verbose=1)
            rows.append(row_of(label, seed, report["defenses"][defense]["bank"],
                               round(time.perf_counter() - t0, 1)))
            results_path.write_text(json.dumps({"rows": rows}, indent=1))
    if args.reuse:
        rows = reused_rows(args.reuse) + rows
    results_path.write_text(json.dumps({"args": {"bank": args.bank, "seeds": args.seeds},
                                        "rows": rows}, indent=1))
    text = table(rows)
    (out / "frontier.md").write_text(text + "\n")
    figure(rows, out / "frontier.png")
    print(text)


if __name__ == "__main__":
    main()
