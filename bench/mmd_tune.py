"""Held-out tuning of the MMD defense on Location: adaptive LiRA banks per configuration.

Nothing here touches the records a report attacks. The ``location`` preset's
split (its seed) has five disjoint roles; the evaluation pool of
``keras-mi evaluate --bank`` is members + non-members. This bench tunes on
the other three: its bank pool is the *shadow + reference* splits (2,000
records; each model trains on a random half of 1,000, the preset's member
count), the MMD reference set is the *test* split, and a model's accuracy is
measured on its held-out half of the tuning pool.

For each configuration (statistic, kernel, bandwidths, λ, mixup α, early
stopping on the MMD reference set's loss, batch size) it trains
a bank of ``--bank`` models with the preset's recipe (MLP-tanh, Adam 1e-3,
30 epochs, batch 128) and attacks it adaptively (each model the target in
turn, the others its shadows, trained with the same defense): LiRA
(online, fixed and per-example variance; offline) and the loss threshold.
It prints one row per configuration and writes ``results.json`` (the run
resumes from its folder).

  python bench/mmd_tune.py --quick
  python bench/mmd_tune.py --out docs/results/mmd_tune/runs --bank 8
  python bench/mmd_tune.py --out ... --only logodds_imq_s1_l1 none
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

#: The grid: name -> MMD settings (``weight`` 0 and no mixup is the undefended model).
GRID = {
    "none": {},
    "softmax_gauss_s0.1_l1": dict(statistic="softmax", kernel="gaussian", sigma=[0.1], weight=1.0),
    "softmax_imq_s0.1_l1": dict(statistic="softmax", kernel="imq", sigma=[0.1], weight=1.0),
    "logodds_gauss_s1,4_l0.3": dict(statistic="log_odds", kernel="gaussian", sigma=[1.0, 4.0],
                                    weight=0.3),
    "logodds_gauss_s1,4_l1": dict(statistic="log_odds", kernel="gaussian", sigma=[1.0, 4.0],
                                  weight=1.0),
    "logodds_imq_s1_l0.3": dict(statistic="log_odds", kernel="imq", sigma=[1.0], weight=0.3),
    "logodds_imq_s1_l1": dict(statistic="log_odds", kernel="imq", sigma=[1.0], weight=1.0),
    "logodds_imq_s1_l3": dict(statistic="log_odds", kernel="imq", sigma=[1.0], weight=3.0),
    "logodds_imq_s1,4_l1": dict(statistic="log_odds", kernel="imq", sigma=[1.0, 4.0],
                                weight=1.0),
    "softmax_laplace_s0.1_l1": dict(statistic="softmax", kernel="laplacian", sigma=[0.1],
                                    weight=1.0),
    "softmax_gauss_s0.05,0.1_l1": dict(statistic="softmax", kernel="gaussian",
                                       sigma=[0.05, 0.1], weight=1.0),
    "softmax_imq_s0.1_l0.5": dict(statistic="softmax", kernel="imq", sigma=[0.1], weight=0.5),
    "softmax_gauss_s0.1_l1_m4": dict(statistic="softmax", kernel="gaussian", sigma=[0.1],
                                     weight=1.0, reference_multiple=4),
    "softmax_gauss_s0.1_l2_m4": dict(statistic="softmax", kernel="gaussian", sigma=[0.1],
                                     weight=2.0, reference_multiple=4),
    # Early stopping on the MMD reference set's cross-entropy (patience 5, best
    # weights restored): 30 epochs of Adam overfit Location, and the accuracy
    # stopping saves may pay for a larger λ.
    "none_es5": dict(early_stopping=5),
    "softmax_gauss_s0.05,0.1_l1_es5": dict(statistic="softmax", kernel="gaussian",
                                           sigma=[0.05, 0.1], weight=1.0, early_stopping=5),
    "softmax_gauss_s0.05,0.1_l1.5_es5": dict(statistic="softmax", kernel="gaussian",
                                             sigma=[0.05, 0.1], weight=1.5, early_stopping=5),
    "softmax_gauss_s0.05,0.1_l2_es5": dict(statistic="softmax", kernel="gaussian",
                                           sigma=[0.05, 0.1], weight=2.0, early_stopping=5),
    "softmax_gauss_s0.05,0.1_l3": dict(statistic="softmax", kernel="gaussian",
                                       sigma=[0.05, 0.1], weight=3.0),
    "softmax_gauss_s0.05,0.1_l3_es5": dict(statistic="softmax", kernel="gaussian",
                                           sigma=[0.05, 0.1], weight=3.0, early_stopping=5),
    # Batch 512 (about 17 rows of each of the 30 classes per batch instead of
    # 4.3: the per-class MMD² on less noise) and 1,000 (a model's whole
    # training half, about 33), for 4x and 8x the epochs (the same number of
    # steps), still stopped on the reference loss: entries added below.
    "none_b512_es5": dict(batch_size=512, epoch_multiple=4, early_stopping=5),
    "none_b1000_es5": dict(batch_size=1000, epoch_multiple=8, early_stopping=5),
}
for _sigma, _weight, _batch in [((0.05, 0.1), 2, 512), ((0.05, 0.1), 3, 512),
                                ((0.05, 0.1), 4, 512), ((0.05, 0.1), 6, 512),
                                ((0.05, 0.1), 3, 1000), ((0.05, 0.1), 4, 1000),
                                # a third bandwidth, wider or narrower, beside the pair
                                ((0.05, 0.1, 0.2), 4, 512), ((0.025, 0.05, 0.1), 4, 512),
                                ((0.05, 0.1, 0.2), 3, 512)]:
    GRID[f"softmax_gauss_s{','.join(f'{v:g}' for v in _sigma)}_l{_weight}_b{_batch}_es5"] = dict(
        statistic="softmax", kernel="gaussian", sigma=list(_sigma), weight=float(_weight),
        batch_size=_batch, epoch_multiple={512: 4, 1000: 8}[_batch], early_stopping=5)
# Heavy-tailed kernels at batch 512 and the larger λ: at λ = 4 a few members
# stay near one-hot (confidence ~0.985) while the rest are pulled to ~0.64; at
# that distance (~0.35 in softmax space) the Gaussian kernel of σ = 0.1 and
# its gradient are ~e⁻⁶, the inverse multiquadric's and the Laplacian's are not.
for _kernel, _short, _sigma, _weight in [("imq", "imq", (0.1,), 2), ("imq", "imq", (0.1,), 3),
                                         ("imq", "imq", (0.1,), 4), ("imq", "imq", (0.05,), 4),
                                         ("laplacian", "laplace", (0.1,), 3),
                                         ("laplacian", "laplace", (0.1,), 4)]:
    GRID[f"softmax_{_short}_s{','.join(f'{v:g}' for v in _sigma)}_l{_weight}_b512_es5"] = dict(
        statistic="softmax", kernel=_kernel, sigma=list(_sigma), weight=float(_weight),
        batch_size=512, epoch_multiple=4, early_stopping=5)

ATTACKS = ["loss", "lira_online", "lira_offline", "lira_online_fixed_var",
           "lira_offline_fixed_var"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run for CI (< 2 min)")
    p.add_argument("--bank", type=int, default=None, help="models per configuration (default 8)")
    p.add_argument("--only", nargs="+", default=None, help=f"configurations ({', '.join(GRID)})")
    p.add_argument("--epochs", type=int, default=None, help="default 30 (the preset's)")
    p.add_argument("--seed", type=int, default=0, help="the preset's split seed")
    p.add_argument("--data-dir", default=None, help="folder with location.tgz")
    p.add_argument("--out", default=None, help="run folder (resumable)")
    args = p.parse_args(argv)
    args.bank = args.bank or (4 if args.quick else 8)
    args.epochs = args.epochs or (2 if args.quick else 30)
    names = args.only or (["none", "logodds_imq_s1_l1"] if args.quick else list(GRID))
    unknown = [n for n in names if n not in GRID]
    if unknown:
        p.error(f"unknown configurations {unknown}; choose from {list(GRID)}")
    args.only = names
    return args


def tuning_data(args):
    """(pool, mmd_reference): shadow + reference splits, and the test split."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from _common import default_data_dir

    from keras_mi.data import MembershipSplit, load_dataset
    from keras_mi.experiment import get_preset

    cfg = get_preset("location")
    x, y = load_dataset("location", data_dir=args.data_dir or default_data_dir())
    s = cfg.split
    split = MembershipSplit.create(x, y, members=s.members, reference=s.reference,
                                   non_members=s.non_members, test=s.test, shadow=s.shadow,
                                   seed=args.seed)
    pool_idx = np.concatenate([split.shadow, split.reference])
    if args.quick:
        pool_idx = pool_idx[::4]
    evaluated = set(split.members.tolist()) | set(split.non_members.tolist())
    assert not evaluated & set(pool_idx.tolist()), "tuning pool overlaps the evaluation pool"
    return (x[pool_idx], y[pool_idx]), (x[split.test], y[split.test]), int(y.max()) + 1


def make_train_fn(settings, reference, num_classes, epochs):
    import keras

    from keras_mi.data import mixup_dataset
    from keras_mi.defenses import EarlyStoppingSettings
    from keras_mi.models import build_model
    from keras_mi.training import MMDModel

    batch = settings.get("batch_size", 128)
    epochs = epochs * settings.get("epoch_multiple", 1)

    def train_fn(x, y, seed):
        keras.utils.set_random_seed(int(seed))
        model = build_model("mlp_tanh", x.shape[1:], num_classes, seed=int(seed))
        trainable = model
        mmd = {k: settings[k] for k in ("statistic", "kernel", "sigma", "weight",
                                        "reference_multiple") if k in settings}
        if mmd:
            trainable = MMDModel(model, reference=reference, per_class=True, seed=int(seed), **mmd)
        alpha = settings.get("mixup_alpha")
        loss = (keras.losses.CategoricalCrossentropy(from_logits=True) if alpha else
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        trainable.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
        stop = {}
        if settings.get("early_stopping"):
            # The reference set is never attacked here; its loss picks the epoch.
            ref_y = (np.eye(num_classes, dtype="float32")[reference[1]] if alpha
                     else reference[1])
            stop = {"validation_data": (reference[0], ref_y), "callbacks": [
                EarlyStoppingSettings(patience=settings["early_stopping"]).callback()]}
        if alpha:
            data = mixup_dataset(x, y, num_classes=num_classes, alpha=alpha, batch_size=batch,
                                 seed=int(seed))
            trainable.fit(data, epochs=epochs, verbose=0, **stop)
        else:
            trainable.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, **stop)
        return model

    return train_fn


def summarize(bank, report):
    from keras_mi.attacks import bank as kbank

    held_out = kbank.model_accuracies(bank)["held_out"]
    best = max(report.results, key=lambda r: r.low_fpr[0.001]["tpr"])
    loss = next(r for r in report.results if r.name == "loss")
    per_target = report.metadata["per_target"]
    return {
        "held_out_accuracy": held_out["median"],
        "strongest": best.name, "auc": max(r.auc for r in report.results),
        "tpr_at_0.1%": best.low_fpr[0.001]["tpr"],
        "tpr_at_0.1%_resolved": bool(best.low_fpr[0.001]["resolved"]),
        "tpr_at_1%": max(r.low_fpr[0.01]["tpr"] for r in report.results),
        "loss_members_above_all": loss.members_above_all,
        "pairs": best.n_non_members,
        "per_target_tpr_at_1%": {k: v for k, v in per_target.get(best.name, {}).items()
                                 if k != "values"} if isinstance(per_target, dict) else None,
        # Each model's members below every one of its non-members' losses: the
        # tail a loss threshold calibrated on that one model finds.
        "loss_zero_fp_per_model": {k: per_target["loss"]["members_above_all"][k]
                                   for k in ("min", "median", "max")},
    }


def main(argv=None):
    args = parse_args(argv)
    from keras_mi.attacks import bank as kbank

    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="mmd_tune_"))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    pool, reference, num_classes = tuning_data(args)
    print(f"tuning pool {len(pool[0])} records (shadow + reference splits), MMD reference "
          f"{len(reference[0])} (test split), bank of {args.bank}, {args.epochs} epochs -> {out}",
          flush=True)
    for name in args.only:
        settings = GRID[name]
        t0 = time.perf_counter()
        folder = out / name
        kbank.train_bank(make_train_fn(settings, reference, num_classes, args.epochs), pool,
                         folder, num_models=args.bank, recipe=f"mmd_tune {name} e{args.epochs}",
                         seed=1000 + args.seed, verbose=0)
        bank = kbank.load_bank(folder, num_models=args.bank)
        report = kbank.attack_bank(bank, attacks=ATTACKS)
        row = summarize(bank, report)
        row.update(settings=settings, seconds=round(time.perf_counter() - t0, 1))
        # Re-read before writing: another run may share the folder.
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        results[name] = row
        results_path.write_text(json.dumps(results, indent=2, sort_keys=True))
        print(f"{name:28s} held-out acc {row['held_out_accuracy']:.3f}  AUC {row['auc']:.3f}  "
              f"TPR@1% {row['tpr_at_1%']:.3f}  TPR@0.1% {row['tpr_at_0.1%']:.3f}"
              f"{'' if row['tpr_at_0.1%_resolved'] else ' (n/a: too few pairs)'}  "
              f"[{row['strongest']}]  loss zero-FP {row['loss_members_above_all']} "
              f"(per model median {row['loss_zero_fp_per_model']['median']:g}, "
              f"max {row['loss_zero_fp_per_model']['max']:g})  "
              f"{row['seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
