"""Why do some members stay identifiable under the MMD defense? (diagnosis)

Reads the bank folders of a ``keras-mi evaluate --bank N`` run (default: the
``none`` and ``mmd`` banks of ``--run``) and, for every bank model, splits its
members into those a plain loss threshold identifies with **no false
positive** (loss below every non-member's) and the rest. For each group it
reports, from the models' own outputs on members and on the test split
(held out from every model, standing in for the MMD reference set):

1. **kernel saturation**: the mean Gaussian kernel ``k(p, q)`` at ``--sigma``
   between a member's softmax output ``p`` and the held-out outputs ``q`` of
   its class, and the norm of the MMD² pull on ``p`` (the gradient of
   ``-2 mean_q k(p, q)`` with respect to ``p``): near-one-hot members far from
   every reference output feel almost no pull;
2. **per-class sampling noise**: with a batch of ``--batch`` rows over the
   pool's classes, the per-class MMD² is estimated from about ``batch /
   classes`` rows; the coefficient of variation of that estimate (bootstrap
   draws of member and held-out rows of one class) against the same at 8×
   as many rows;
3. **the same records?**: how often a zero-false-positive member of one model
   is one of another model (record-level consistency), against chance.

The eval-mode hypothesis (the paper's code runs its MMD pass after an
eval-mode validation pass) is not testable on Location's MLP: it has no
dropout or batch normalization, so ``training=True`` and ``False`` agree.

  python bench/mmd_tail.py --quick                     # CI: a tiny bank trained here
  python bench/mmd_tail.py --run docs/results/bank_location/runs/seed0
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="train a tiny bank here (CI)")
    p.add_argument("--run", default=None, help="a keras-mi evaluate --bank output folder")
    p.add_argument("--defenses", nargs="+", default=["none", "mmd"])
    p.add_argument("--sigma", type=float, default=0.1, help="kernel bandwidth to inspect")
    p.add_argument("--batch", type=int, default=128, help="training batch size")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.quick and args.run is None:
        p.error("give --run FOLDER (or --quick)")
    return args


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def kernel_pull(p, q, sigma):
    """Mean kernel k(p_i, q_j) over j and the norm of d/dp_i of -2 mean_j k."""
    d = p[:, None, :] - q[None, :, :]
    k = np.exp(-np.sum(d * d, axis=-1) / (2 * sigma * sigma))
    grad = 2 * np.mean(k[..., None] * d, axis=1) / (sigma * sigma)
    return k.mean(axis=1), np.linalg.norm(grad, axis=1)


def mmd2_biased(a, b, sigma):
    def k(x, y):
        d = np.sum((x[:, None] - y[None]) ** 2, axis=-1)
        return np.exp(-d / (2 * sigma * sigma))
    return k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()


def sampling_cv(member_p, held_p, rows, sigma, rng, draws=200):
    """Coefficient of variation of the biased MMD² from ``rows`` rows per side.

    Rows are drawn with replacement (a bootstrap of the class's outputs), so
    sizes beyond the class's count still show the estimate's own noise.
    """
    rows = max(2, rows)
    vals = [mmd2_biased(member_p[rng.choice(len(member_p), rows)],
                        held_p[rng.choice(len(held_p), rows)], sigma)
            for _ in range(draws)]
    return float(np.std(vals) / max(np.mean(vals), 1e-12)), float(np.mean(vals))


def diagnose(bank, sigma, batch, rng):
    from keras_mi.attacks.scores import loss_score

    labels, pop_labels = bank.labels, bank.population_labels
    classes = int(max(labels.max(), pop_labels.max()) + 1)
    groups = {
        "zero_fp": {"k": [], "pull": [], "conf": []},
        "other": {"k": [], "pull": [], "conf": []},
    }
    zero_fp_sets, cvs = [], {"small": [], "large": []}
    for t in range(bank.num_models):
        mask = bank.in_mask[t]
        score = loss_score(bank.logits[t], labels)  # -loss: higher = member
        zero = mask & (score > score[~mask].max())
        zero_fp_sets.append(set(np.flatnonzero(zero)))
        p_pool = softmax(bank.logits[t].astype(np.float64))
        p_pop = softmax(bank.population_logits[t, 0].astype(np.float64))
        for c in range(classes):
            held = p_pop[pop_labels == c]
            rows = np.flatnonzero(mask & (labels == c))
            if len(held) < 2 or len(rows) < 2:
                continue
            k, pull = kernel_pull(p_pool[rows], held, sigma)
            for name, sel in (("zero_fp", zero[rows]), ("other", ~zero[rows])):
                groups[name]["k"].extend(k[sel])
                groups[name]["pull"].extend(pull[sel])
                groups[name]["conf"].extend(p_pool[rows, c][sel])
            if t == 0:
                per_batch = max(2, round(batch * len(rows) / mask.sum()))
                cvs["small"].append(sampling_cv(p_pool[rows], held, per_batch, sigma, rng)[0])
                cvs["large"].append(sampling_cv(p_pool[rows], held, 8 * per_batch, sigma, rng)[0])
    summary = {name: {key: (float(np.median(v)) if v else None) for key, v in g.items()}
               | {"count": len(g["k"])} for name, g in groups.items()}
    # Record-level consistency: P(a zero-FP member of model t is one of model u | member of u).
    overlaps, chance = [], []
    for t in range(bank.num_models):
        for u in range(bank.num_models):
            if t == u or not zero_fp_sets[t]:
                continue
            both_members = [j for j in zero_fp_sets[t] if bank.in_mask[u, j]]
            if both_members:
                overlaps.append(np.mean([j in zero_fp_sets[u] for j in both_members]))
                chance.append(len(zero_fp_sets[u]) / bank.in_mask[u].sum())
    summary["zero_fp_per_model"] = [len(s) for s in zero_fp_sets]
    summary["consistency"] = {"same_record_rate": float(np.mean(overlaps)) if overlaps else None,
                              "chance_rate": float(np.mean(chance)) if chance else None}
    summary["per_class_mmd_cv"] = {"rows_per_class_in_batch": float(batch / classes),
                                   "cv_at_batch_rows": float(np.median(cvs["small"])),
                                   "cv_at_8x_rows": float(np.median(cvs["large"]))}
    return summary


def quick_run(tmp):
    from keras_mi.experiment import get_preset, run_experiment

    cfg = get_preset("location").with_overrides({
        "defenses": ["none", "mmd"], "bank.size": 4, "training.epochs": 3, "attacks": ["loss"],
        "split.members": 300, "split.non_members": 300, "split.reference": 300,
        "split.test": 300, "split.shadow": 0})
    run_experiment(cfg, tmp, verbose=0)
    return tmp


def main(argv=None):
    args = parse_args(argv)
    from keras_mi.attacks.bank import load_bank

    run = pathlib.Path(quick_run(tempfile.mkdtemp(prefix="mmd_tail_")) if args.quick else args.run)
    rng = np.random.default_rng(args.seed)
    results = {}
    for defense in args.defenses:
        bank = load_bank(run / "banks" / defense)
        results[defense] = diagnose(bank, args.sigma, args.batch, rng)
    print(f"## Members identified with no false positive (loss), σ = {args.sigma}: {run}\n")
    print("| defense | group | members | median true-class conf | median mean k(p, q) | "
          "median MMD² pull |")
    print("|---|---|---|---|---|---|")

    def fmt(v, f):
        return "–" if v is None else format(v, f)

    for defense, r in results.items():
        for group in ("zero_fp", "other"):
            g = r[group]
            print(f"| {defense} | {group} | {g['count']} | {fmt(g['conf'], '.4f')} | "
                  f"{fmt(g['k'], '.3g')} | {fmt(g['pull'], '.3g')} |")
    print("\n| defense | zero-FP members per model | same record in another model | chance | "
          "rows/class in a batch | MMD² CV at that size | CV at 8× |")
    print("|---|---|---|---|---|---|---|")
    for defense, r in results.items():
        c, v = r["consistency"], r["per_class_mmd_cv"]
        rate = "–" if c["same_record_rate"] is None else f"{c['same_record_rate']:.3f}"
        ch = "–" if c["chance_rate"] is None else f"{c['chance_rate']:.4f}"
        print(f"| {defense} | {r['zero_fp_per_model']} | {rate} | {ch} | "
              f"{v['rows_per_class_in_batch']:.1f} | {v['cv_at_batch_rows']:.2f} | "
              f"{v['cv_at_8x_rows']:.2f} |")
    print(f"\ncommand: python bench/mmd_tail.py {' '.join(sys.argv[1:])}")
    if not args.quick:
        (run / "mmd_tail.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
