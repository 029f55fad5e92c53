"""Undefended vs mixup vs MMD + mixup on Location (CPU benchmark).

Same target for every defense: the paper's MLP-tanh (1024-512-256) from
``keras_mi.models.build_model("mlp_tanh", ...)`` with the same initial
weights, Adam lr 1e-3, batch 128, the same epochs. Stratified disjoint
sets from `MembershipSplit`: members (the training set), reference (the
MMD validation set; unused by the others), non-members, test.

* ``none``: plain cross-entropy on the members;
* ``mixup``: `keras_mi.data.mixup_dataset` (alpha=1, one lam per batch);
* ``mmd+mixup``: the same stream into `keras_mi.training.MMDModel`
  (``--mmd-weight``, sigma 1, the reference batch class-matched on the
  argmax of the mixed labels);
* ``mmd`` (optional, ``--defenses``): MMDModel on the clean members.

Reports train accuracy (clean members), test accuracy (test set), their gap,
and membership attacks from `keras_mi.attacks.run` on members vs
non-members (loss-threshold AUC, the strongest attack's AUC, TPR at 1% FPR;
the FPR resolution is 1 / non-members).

  python bench/mixup_location.py --quick   # < 2 min: 500 per set, 20 epochs
  python bench/mixup_location.py           # 1000 per set, 60 epochs
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
DEFENSES = ("none", "mixup", "mmd+mixup", "mmd")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run, < 2 min on CPU")
    p.add_argument(
        "--data-dir", default=None, help="folder with location.tgz (default $KERAS_MI_DATA_DIR)"
    )
    p.add_argument(
        "--per-set", type=int, default=None, help="records per set (members, reference, ...)"
    )
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--alpha", type=float, default=1.0, help="mixup Beta(alpha, alpha)")
    p.add_argument("--mmd-weight", type=float, default=3.0)
    p.add_argument("--defenses", default="none,mixup,mmd+mixup", help=f"comma list from {DEFENSES}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write results.json here")
    args = p.parse_args(argv)
    args.per_set = args.per_set or (500 if args.quick else 1000)
    args.epochs = args.epochs or (20 if args.quick else 60)
    args.defenses = [d.strip() for d in args.defenses.split(",") if d.strip()]
    bad = [d for d in args.defenses if d not in DEFENSES]
    if bad:
        p.error(f"unknown defenses {bad}; choose from {DEFENSES}")
    return args


def train(defense, sets, args):
    """Trains one target; returns the fitted model (logits out)."""
    import keras

    from keras_mi.data import mixup_dataset
    from keras_mi.models import build_model
    from keras_mi.training import MMDModel

    (x_tr, y_tr), (x_ref, y_ref) = sets["members"], sets["reference"]
    net = build_model("mlp_tanh", (446,), 30, seed=args.seed)
    keras.utils.set_random_seed(args.seed)
    opt = keras.optimizers.Adam(1e-3)
    if defense in ("mmd", "mmd+mixup"):
        model = MMDModel(net, reference=(x_ref, y_ref), weight=args.mmd_weight, seed=args.seed)
    else:
        model = net
    if "mixup" in defense:
        data = mixup_dataset(
            x_tr,
            y_tr,
            num_classes=30,
            alpha=args.alpha,
            batch_size=args.batch_size,
            seed=args.seed,
            drop_remainder=len(y_tr) % args.batch_size == 1,
        )
        model.compile(opt, keras.losses.CategoricalCrossentropy(from_logits=True))
        model.fit(data, epochs=args.epochs, verbose=0)
    else:
        model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(
            x_tr, y_tr, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=0
        )
    return model


def main(argv=None):
    args = parse_args(argv)
    import keras
    from _common import default_data_dir

    from keras_mi import attacks
    from keras_mi.data import MembershipSplit, load_dataset
    from keras_mi.outputs import ModelOutputs

    x, y = load_dataset("location", data_dir=args.data_dir or default_data_dir(), download=False)
    n = args.per_set
    split = MembershipSplit.create(x, y, members=n, reference=n, non_members=n, test=n, shadow=0,
                                   seed=args.seed, num_classes=30)
    sets = {name: (x[getattr(split, name)], y[getattr(split, name)])
            for name in ("members", "reference", "non_members", "test")}
    print(f"Location {x.shape}, {n} records per set; MLP-tanh, {args.epochs} epochs, batch "
          f"{args.batch_size}, alpha {args.alpha}, MMD weight {args.mmd_weight}, seed {args.seed}; "
          f"backend {keras.backend.backend()}", flush=True)

    rows = []
    for defense in args.defenses:
        t0 = time.perf_counter()
        model = train(defense, sets, args)
        fit_s = time.perf_counter() - t0
        out = ModelOutputs.from_model(
            model, members=sets["members"], non_members=sets["non_members"], test=sets["test"]
        )
        acc = {s: float(np.mean(out.logits[s].argmax(1) == out.labels[s])) for s in out.logits}
        report = attacks.run(
            out, attacks=["loss", "confidence", "entropy", "modified_entropy", "gap"]
        )
        loss = next(r for r in report.results if r.name == "loss")
        best = report.strongest(by="auc")
        rows.append({
            "defense": defense, "train_acc": acc["members"], "test_acc": acc["test"],
            "gap": acc["members"] - acc["test"], "loss_auc": loss.auc,
            "loss_tpr_at_1pct_fpr": loss.tpr_at_fpr[0.01], "best_attack": best.name,
            "best_auc": best.auc, "fit_seconds": fit_s,
        })
        r = rows[-1]
        print(
            f"  {defense:<10} train {r['train_acc']:.3f}  test {r['test_acc']:.3f}  "
            f"gap {r['gap']:.3f}  "
            f"loss-AUC {r['loss_auc']:.3f}  best {best.name} {best.auc:.3f}  ({fit_s:.0f} s)",
            flush=True,
        )

    print(
        "\n| defense | train acc | test acc | gap | loss-attack AUC | TPR@1%FPR (loss) "
        "| strongest attack (AUC) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['defense']} | {r['train_acc']:.3f} | {r['test_acc']:.3f} | {r['gap']:.3f} | "
            f"{r['loss_auc']:.3f} | {r['loss_tpr_at_1pct_fpr']:.3f} | "
            f"{r['best_attack']} ({r['best_auc']:.3f}) |"
        )
    if args.out:
        from _common import write_json_atomic

        path = pathlib.Path(args.out)
        path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path / "results.json", {"config": {k: v for k, v in vars(args).items()},
                                                  "rows": rows})
        print(f"wrote {path / 'results.json'}")


if __name__ == "__main__":
    main()
