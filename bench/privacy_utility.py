r"""Privacy/utility table: each defense's accuracy against each attack's success.

Runs the experiment runner (`keras_mi.experiment.run_experiment`, the code
behind ``keras-mi evaluate``) on a preset (default ``location``: MLP-tanh,
1,000 members, 30 epochs of Adam) for the defenses ``none``, ``mixup``,
``mmd``, ``mmd+mixup`` and DP-SGD at two ε, once per seed (each seed draws
its own split and initial weights), and tabulates per defense: train
accuracy, test accuracy, their gap, and for every attack its AUC, best
accuracy and TPR at 0.1% FPR, as the median over seeds (min-max in the JSON).

Every seed's run folder is kept under ``--out`` (resumable: re-running the
same command skips finished steps), and the tables are rewritten after each
seed (``privacy_utility.json`` / ``privacy_utility.md``).

The paper's full CIFAR-10 schedule (160 epochs on 10,000 members) runs on a
GPU through ``bench/gpu_cifar10.py``; on 2 CPU cores this script runs a
smaller one (docs/benchmarks.md, section 5): the ``paper-cifar10`` preset
with 1,000 images per set, batch 32, 150 epochs, no shadow models, DP-SGD
clipping per microbatch of 10.

Usage:
  python bench/privacy_utility.py --out runs/bench/privacy_utility --seeds 0,1,2
  python bench/privacy_utility.py --quick
  python bench/privacy_utility.py --preset paper-cifar10 \
      --out runs/bench/privacy_utility_cifar10_cpu \
      --seeds 0,1,2 --dp-seeds 1 --epsilons 1,8 --epochs 150 --set training.batch_size=32 \
      --set training.lr_boundaries=[75,112] --set split.members=1000 --set split.non_members=1000 \
      --set split.reference=1000 --set split.test=1000 --set split.shadow=0 \
      --set num_shadow_models=0 \
      --set dpsgd.num_microbatches=10 --set dpsgd.batch_size=100 --set dpsgd.epochs=20
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402

KERAS_DEFENSES = ["none", "mixup", "mmd", "mmd+mixup"]
FPR = 0.001


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="300 members, 2 epochs, one seed, one ε (CI smoke)")
    p.add_argument("--out", default="runs/bench/privacy_utility")
    p.add_argument("--preset", default="location")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seeds", default=None, help="comma-separated (default 0,1,2; quick 0)")
    p.add_argument("--epsilons", default=None, help="DP-SGD ε values (default 1,8; quick 8)")
    p.add_argument("--dp-seeds", type=int, default=1,
                   help="run DP-SGD only for the first N seeds (it is ~15-25x slower per epoch)")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="more config overrides, e.g. split.members=500")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    args.epsilons = [float(e) for e in (args.epsilons or ("8" if args.quick else "1,8")).split(",")]
    return args


def build_config(args, seed, with_dpsgd=True):
    from keras_mi.experiment import get_preset

    config = get_preset(args.preset)
    dpsgd = [f"dpsgd:{e:g}" for e in args.epsilons] if with_dpsgd else []
    overrides = {"seed": seed, "defenses": KERAS_DEFENSES + dpsgd}
    data_dir = args.data_dir or _common.default_data_dir()
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    if args.quick:
        overrides.update({"training.epochs": 2, "split.members": 300, "split.non_members": 300,
                          "split.reference": 300, "split.test": 300, "split.shadow": 0})
    if args.epochs:
        overrides["training.epochs"] = args.epochs
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = value
    return config.with_overrides(overrides)


def collect(run_dir, defense):
    """Accuracies from the saved outputs, attack metrics from the saved report."""
    from keras_mi.attacks import AttackReport
    from keras_mi.experiment import store
    from keras_mi.outputs import ModelOutputs

    tag = store.safe_tag(defense)
    outputs = ModelOutputs.load_npz(run_dir / "outputs" / f"{tag}.npz")
    acc = {
        s: float(np.mean(outputs.logits[s].argmax(1) == outputs.labels[s])) for s in outputs.logits
    }
    test = acc.get("test", acc["non_members"])
    report = AttackReport.from_json((run_dir / "attacks" / f"{tag}.json").read_text())
    attacks = {r.name: {"auc": r.auc, "best_accuracy": r.best_accuracy,
                        "tpr_at_0.1%": r.tpr_at_fpr.get(FPR, float("nan"))}
               for r in report.results if r.is_membership}
    return {"train_acc": acc["members"], "test_acc": test, "gap": acc["members"] - test,
            "attacks": attacks}


def aggregate(per_seed):
    """defense -> metric -> {median, min, max} over the seeds that ran it."""
    def stats(values):
        v = np.asarray(values, dtype=float)
        return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}

    table = {}
    defenses = list(dict.fromkeys(d for s in per_seed for d in s))
    for defense in defenses:
        rows = [s[defense] for s in per_seed if defense in s]
        entry = {k: stats([r[k] for r in rows]) for k in ("train_acc", "test_acc", "gap")}
        names = sorted(set.intersection(*(set(r["attacks"]) for r in rows)))
        entry["attacks"] = {n: {m: stats([r["attacks"][n][m] for r in rows])
                                for m in ("auc", "best_accuracy", "tpr_at_0.1%")} for n in names}
        entry["seeds"] = len(rows)
        table[defense] = entry
    return table


def render(result):
    cfg, table = result["config"], result["table"]
    t = cfg["training"]
    lines = [
        f"# Privacy vs utility: {cfg['dataset']} ({cfg['architecture']})",
        "",
        f"{cfg['split']['members']} members / {cfg['split']['non_members']} non-members / "
        f"{cfg['split']['reference']} reference / {cfg['split']['test']} test; "
        f"{t['epochs']} epochs, batch {t['batch_size']}, {t['optimizer']} lr {t['learning_rate']}; "
        f"λ={cfg['mmd_weight']}, σ={cfg['mmd_sigma']} ({cfg['mmd_schedule']}), "
        f"α={cfg['mixup_alpha']}; "
        f"seeds {result['seeds']} (median over the seeds that ran each defense; DP-SGD on "
        f"the first {result.get('dp_seeds', 1)}). {result['machine']['date_utc']}.",
        "",
    ]
    rows = []
    for d, e in table.items():
        best = max(e["attacks"].items(), key=lambda kv: kv[1]["auc"]["median"], default=None)
        rows.append(
            [
                d,
                e["seeds"],
                e["train_acc"]["median"],
                e["test_acc"]["median"],
                e["gap"]["median"],
                f"{best[0]} {best[1]['auc']['median']:.3f}" if best else "-",
                max(
                    (a["best_accuracy"]["median"] for a in e["attacks"].values()),
                    default=float("nan"),
                ),
                max(
                    (a["tpr_at_0.1%"]["median"] for a in e["attacks"].values()),
                    default=float("nan"),
                ),
            ]
        )
    lines.append(_common.markdown_table(
        ["defense", "seeds", "train acc", "test acc", "gap", "strongest attack: AUC",
         "max attack acc", "max TPR@0.1%FPR"], rows))
    attack_names = sorted({n for e in table.values() for n in e["attacks"]})
    for metric, label in (("auc", "AUC"), ("best_accuracy", "best attack accuracy"),
                          ("tpr_at_0.1%", "TPR at 0.1% FPR")):
        lines += ["", f"### {label} per attack (median over seeds)", ""]
        lines.append(_common.markdown_table(
            ["defense"] + attack_names,
            [[d] + [e["attacks"][n][metric]["median"] if n in e["attacks"] else "-"
                    for n in attack_names] for d, e in table.items()]))
    eps = result.get("dpsgd_epsilon")
    if eps:
        lines += ["", "DP-SGD ε reached (per seed): " + "; ".join(
            f"{d}: {v}" for d, v in eps.items())]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    from keras_mi.experiment import run_experiment, store

    out = pathlib.Path(args.out)
    per_seed, eps = [], {}
    for i, seed in enumerate(args.seeds):
        config = build_config(args, seed, with_dpsgd=i < args.dp_seeds)
        run_dir = out / f"seed{seed}"
        _common.stamp(f"seed {seed}: defenses {config.defenses} -> {run_dir}")
        run_experiment(config, run_dir, verbose=0)
        per_seed.append({d: collect(run_dir, d) for d in config.defenses})
        for d in config.defenses:
            meta_path = run_dir / "meta" / f"{store.safe_tag(d)}.json"
            meta = store.read_json(meta_path) if meta_path.exists() else {}
            if "epsilon" in meta:
                eps.setdefault(d, []).append(round(float(meta["epsilon"]), 3))
        result = {
            "config": build_config(args, args.seeds[0]).to_dict(),
            "seeds": args.seeds[: len(per_seed)],
            "table": aggregate(per_seed),
            "per_seed": per_seed,
            "dpsgd_epsilon": eps,
            "dp_seeds": args.dp_seeds,
            "machine": _common.machine_info(),
        }
        _common.write_json_atomic(out / "privacy_utility.json", result)
        _common.write_text_atomic(out / "privacy_utility.md", render(result))
        _common.stamp(f"seed {seed} done; wrote {out / 'privacy_utility.md'}")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
