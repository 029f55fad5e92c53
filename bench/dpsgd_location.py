"""DP-SGD on Location: utility, attack AUC and epoch-time cost at several ε.

Trains the paper's MLP-tanh (1024-512-256) on Location with TF-Privacy's
DP-SGD (``keras_mi.baselines.train_dpsgd``, tf-keras in a child process) at
each target ε, and the same model with plain SGD (same architecture, epochs,
batch size, learning rate, same kind of child process) as the undefended
reference. For every model it reports train/test accuracy, the strongest
threshold attack by AUC (``keras_mi.attacks.run`` with the shadow-free
attacks: loss, confidence, entropy, modified entropy, ...), its TPR at 1%
FPR, and the median epoch time (first epoch, which traces the graph,
excluded). Runs are interleaved (plain, DP, plain, DP, ... with the order
flipped every round), so the DP/plain time ratio compares neighbours.

Usage:
  python bench/dpsgd_location.py            # ε = 1, 4, 8; 1,000 members; 20 epochs
  python bench/dpsgd_location.py --quick    # ε = 4; 500 members; 2 epochs; ~2 min

Writes ``dpsgd_location.json`` and ``dpsgd_location.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


import _common  # noqa: E402  pylint: disable=wrong-import-position

ATTACKS = ["loss", "confidence", "max_confidence", "entropy", "modified_entropy", "gap"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run (< 2 min)")
    p.add_argument("--epsilons", type=float, nargs="+", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--members", type=int, default=None, help="training set size")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--l2-norm-clip", type=float, default=1.0)
    p.add_argument("--accountant", choices=("rdp", "pld"), default="rdp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="folder for the JSON/markdown results")
    args = p.parse_args(argv)
    args.epsilons = args.epsilons or ([4.0] if args.quick else [1.0, 4.0, 8.0])
    args.epochs = args.epochs or (2 if args.quick else 20)
    args.members = args.members or (500 if args.quick else 1000)
    return args


def load_splits(args):
    from keras_mi.data import MembershipSplit, load_dataset
    data_dir = args.data_dir or _common.default_data_dir()
    x, y = load_dataset("location", data_dir=data_dir, download=False)
    m = args.members
    split = MembershipSplit.create(x, y, members=m, reference=min(m, 500), non_members=m,
                                   test=m, shadow=0, seed=args.seed)
    return {name: split.arrays(x, y, name)
            for name in ("members", "non_members", "reference", "test")}


def evaluate(result):
    from keras_mi.attacks import run
    report = run(result.outputs, attacks=ATTACKS, check_reference=False)
    best = report.strongest(by="auc")
    return {"attack": best.name, "auc": float(best.auc), "advantage": float(best.advantage),
            "tpr_at_1pct_fpr": float(best.tpr_at_fpr.get(0.01, float("nan")))}


def main(argv=None):
    args = parse_args(argv)
    from keras_mi.baselines import train_dpsgd
    start = time.perf_counter()
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="dpsgd_location_"))
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(args)
    n = len(splits["members"][0])
    common = dict(input_shape=splits["members"][0].shape[1:], num_classes=30,
                  architecture="mlp_tanh", test=splits["test"], batch_size=args.batch_size,
                  epochs=args.epochs, learning_rate=args.learning_rate,
                  momentum=args.momentum, seed=args.seed, verbose=0)
    _common.stamp(f"Location: {n} members, {args.epochs} epochs, batch {args.batch_size}, "
                  f"SGD lr {args.learning_rate} momentum {args.momentum}; out {out}")

    rows, plain_times, dp_times = [], [], []
    plain_runs = []
    for i, eps in enumerate(args.epsilons):
        order = ("plain", "dp") if i % 2 == 0 else ("dp", "plain")
        for kind in order:
            if kind == "plain":
                res = train_dpsgd(splits["members"], splits["non_members"], private=False,
                                  **common)
                plain_runs.append(res)
                plain_times.append(res.median_epoch_time_s)
            else:
                res = train_dpsgd(splits["members"], splits["non_members"],
                                  target_epsilon=eps, l2_norm_clip=args.l2_norm_clip,
                                  accountant=args.accountant, **common)
                dp_times.append(res.median_epoch_time_s)
                rows.append(dict(model=f"DP-SGD ε={eps:g}", target_epsilon=eps,
                                 epsilon=res.epsilon, delta=res.delta,
                                 noise_multiplier=res.noise_multiplier,
                                 train_accuracy=res.train_accuracy,
                                 test_accuracy=res.test_accuracy,
                                 epoch_time_s=res.median_epoch_time_s, **evaluate(res)))
            _common.stamp(f"  {kind} (round {i + 1}): train {res.train_accuracy:.3f} "
                          f"test {res.test_accuracy:.3f} "
                          f"epoch {res.median_epoch_time_s:.3f}s"
                          + (f" ε={res.epsilon:.2f} σ={res.noise_multiplier:.3f}"
                             if kind == "dp" else ""))
    base = plain_runs[0]  # seeded: every plain round trains the same model
    rows.insert(0, dict(model="undefended (plain SGD)", target_epsilon=None, epsilon=None,
                        delta=None, noise_multiplier=0.0,
                        train_accuracy=base.train_accuracy, test_accuracy=base.test_accuracy,
                        epoch_time_s=_common.median(plain_times), **evaluate(base)))
    ratio = _common.median(dp_times) / _common.median(plain_times)
    report = {"machine": _common.machine_info(), "args": vars(args), "rows": rows,
              "plain_epoch_times_s": plain_times, "dp_epoch_times_s": dp_times,
              "epoch_time_ratio_dp_over_plain": ratio,
              "plain_test_accuracy_all_rounds": [r.test_accuracy for r in plain_runs],
              "wall_time_s": time.perf_counter() - start}
    table = _common.markdown_table(
        ["model", "ε (δ)", "σ", "train acc", "test acc", "strongest attack", "AUC",
         "TPR@1%FPR", "epoch s"],
        [[r["model"],
          "-" if r["epsilon"] is None else f"{r['epsilon']:.2f} ({r['delta']:g})",
          f"{r['noise_multiplier']:.3f}", f"{r['train_accuracy']:.3f}",
          f"{r['test_accuracy']:.3f}", r["attack"], f"{r['auc']:.3f}",
          f"{r['tpr_at_1pct_fpr']:.3f}", f"{r['epoch_time_s']:.3f}"] for r in rows])
    text = (f"# DP-SGD vs undefended on Location (MLP-tanh, {n} members, "
            f"{args.epochs} epochs, batch {args.batch_size})\n\n"
            f"{report['machine']['date_utc']}, {report['machine']['cpu_count']} CPU cores; "
            f"accountant {args.accountant}, Poisson-sampling ε (training uses shuffled "
            f"fixed batches).\n\n{table}\n\nEpoch time DP-SGD / plain (median of interleaved "
            f"runs, first epoch excluded): {ratio:.2f}x "
            f"(plain {_common.median(plain_times):.3f}s, DP {_common.median(dp_times):.3f}s).\n")
    _common.write_json_atomic(out / "dpsgd_location.json", report)
    _common.write_text_atomic(out / "dpsgd_location.md", text)
    print(text)
    _common.stamp(f"done in {report['wall_time_s']:.0f}s; results in {out}")
    return report


if __name__ == "__main__":
    main()
