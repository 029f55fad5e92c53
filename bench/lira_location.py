"""LiRA and shadow-model attacks on an overfit Location MLP (CPU benchmark).

Target: the paper's MLP-tanh (1024-512-256) on Location (446 binary
features, 30 classes), Adam lr 1e-3, no defense, trained on ``--members``
records. Attacks, all evaluated on the target's members vs as many
non-members:

* LiRA online/offline x per-example/fixed variance, ``--num-shadows`` shadow
  models each trained on a random half of members + non-members (the
  standard LiRA pool), via the resumable `train_half_shadow` jobs;
* Shokri et al. (per-class MLP on the softmax vector) and Salem et al.
  (MLP on the sorted top-3), with 2 shadow models trained on the disjoint
  rest of the data set, each on as many records as the target.

Prints a table (AUC, best balanced accuracy, TPR at 1% and 0.1% FPR) and
LiRA's cost and strength versus the number of shadow models. With ``n``
non-members the FPR resolution is ``1/n`` (0.1% FPR = 1 false positive
at n = 1000).

  python bench/lira_location.py --quick     # < 2 min: 400 members, 4 shadows, 10 epochs
  python bench/lira_location.py             # 1000 members, 16 shadows
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run, < 2 min on CPU")
    p.add_argument("--data-dir", default=None, help="folder with location.tgz "
                   "(default $KERAS_MI_DATA_DIR)")
    p.add_argument("--members", type=int, default=None)
    p.add_argument("--num-shadows", type=int, default=None, help="LiRA shadow models")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="keep shadow files and results.json here "
                   "(rerunning resumes); default a temporary folder")
    args = p.parse_args(argv)
    args.members = args.members or (400 if args.quick else 1000)
    args.num_shadows = args.num_shadows or (4 if args.quick else 16)
    args.epochs = args.epochs or (10 if args.quick else 30)
    if args.num_shadows < 4 or args.num_shadows % 2:
        p.error("--num-shadows must be even and >= 4.")
    return args


def make_recipe(epochs, batch_size):
    import keras

    from keras_mi.attacks.shadow_jobs import make_train_fn
    from keras_mi.models import build_model

    def make_model():
        model = build_model("mlp_tanh", (446,), 30)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model

    return make_train_fn(make_model, {"epochs": epochs, "batch_size": batch_size})


def fmt_row(r):
    return (f"| {r.name:<24} | {r.auc:.3f} | {r.best_accuracy:.3f} | "
            f"{r.tpr_at_fpr[0.01]:.3f} | {r.tpr_at_fpr[0.001]:.3f} |")


def main(argv=None):
    args = parse_args(argv)
    from keras_mi.attacks.lira import aggregate_lira, lira_attack, lira_pool
    from keras_mi.attacks.results import AttackType
    from keras_mi.attacks.shadow import (
        shadow_attack_nn,
        shadow_attack_top3,
        train_disjoint_shadows,
    )
    from keras_mi.attacks.shadow_jobs import load_shadows, train_half_shadow
    from keras_mi.data import load_dataset
    from keras_mi.outputs import ModelOutputs

    t_start = time.perf_counter()
    x, y = load_dataset("location", data_dir=args.data_dir, download=False)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    m = args.members
    mem, non, rest = order[:m], order[m:2 * m], order[2 * m:]
    train_fn = make_recipe(args.epochs, args.batch_size)
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="lira_location_"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"Location: {len(y)} records; target {m} members / {m} non-members; "
          f"shadow pool {len(rest)}; {args.epochs} epochs, batch {args.batch_size}; out {out}")

    t0 = time.perf_counter()
    target_model = train_fn(x[mem], y[mem], seed=args.seed)
    target = ModelOutputs.from_model(target_model, members=(x[mem], y[mem]),
                                     non_members=(x[non], y[non]))
    target_s = time.perf_counter() - t0
    acc = {s: float(np.mean(target.logits[s].argmax(1) == target.labels[s]))
           for s in ("members", "non_members")}
    print(f"target: train acc {acc['members']:.3f}, test acc {acc['non_members']:.3f} "
          f"({target_s:.1f}s)")

    # Shokri / Salem: 2 shadows on disjoint halves of the rest, m records each.
    t0 = time.perf_counter()
    shadows = train_disjoint_shadows(x[rest], y[rest], train_fn, num_shadows=2,
                                     train_size=min(m, len(rest) // 2 - 1), seed=args.seed + 1)
    shokri_train_s = time.perf_counter() - t0
    results = [shadow_attack_nn(target, shadows, seed=args.seed),
               shadow_attack_top3(target, shadows, seed=args.seed)]

    # LiRA: shadows on random halves of members + non-members (resumable jobs).
    pool = lira_pool((x[mem], y[mem]), (x[non], y[non]))
    shadow_dir = out / "lira_shadows"
    for i in range(args.num_shadows):
        train_half_shadow(i, args.num_shadows, pool, train_fn, shadow_dir, seed=args.seed)
    report = aggregate_lira(shadow_dir, target, num_shadows=args.num_shadows, pool=pool)
    results = list(report.results) + results

    print(f"\n## Attacks on the Location MLP-tanh target ({m} members, {m} non-members, "
          f"{args.num_shadows} LiRA shadows)\n")
    print("| attack                   | AUC   | acc   | TPR@1% | TPR@0.1% |")
    print("|--------------------------|-------|-------|--------|----------|")
    for r in results:
        print(fmt_row(r))
    print(f"\nShokri/Salem: 2 shadow models trained in {shokri_train_s:.1f}s")

    # LiRA cost and strength vs number of shadows (first k = k/2 complementary pairs).
    bank = load_shadows(shadow_dir)
    seconds = [float(np.load(shadow_dir / f"shadow_{i:04d}.npz")["train_seconds"])
               for i in range(bank.num_shadows)]
    is_member = np.arange(2 * m) < m
    logits = np.concatenate([target.logits["members"], target.logits["non_members"]])
    print("\n## LiRA vs number of shadow models\n")
    print("| shadows | train s | aggregate s | online AUC | online TPR@0.1% | "
          "online fixed-var AUC | online fixed-var TPR@0.1% |")
    print("|---|---|---|---|---|---|---|")
    scaling = []
    for k in sorted({4, 8, 16, args.num_shadows}):
        if k > bank.num_shadows:
            continue
        t0 = time.perf_counter()
        rs = lira_attack(logits, bank.labels, bank.logits[:k], bank.in_mask[:k], is_member,
                         variants=[AttackType.LIRA_ONLINE, AttackType.LIRA_ONLINE_FIXED_VAR])
        agg_s = time.perf_counter() - t0
        scaling.append({"shadows": k, "train_s": sum(seconds[:k]), "aggregate_s": agg_s,
                        **{r.name: r.to_dict(include_roc=False) for r in rs}})
        print(f"| {k} | {sum(seconds[:k]):.1f} | {agg_s:.3f} | {rs[0].auc:.3f} | "
              f"{rs[0].tpr_at_fpr[0.001]:.3f} | {rs[1].auc:.3f} | {rs[1].tpr_at_fpr[0.001]:.3f} |")

    total = time.perf_counter() - t_start
    print(f"\ntotal wall time {total:.0f}s; command: python bench/lira_location.py "
          + " ".join(sys.argv[1:]))
    summary = {"args": vars(args), "target_accuracy": acc, "target_train_s": target_s,
               "results": [r.to_dict(include_roc=False) for r in results],
               "lira_scaling": scaling, "total_s": total}
    (out / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
