"""Held-out grid for the registry's Keras defenses on Location: adaptive banks per setting.

The protocol is ``bench/mmd_tune.py``'s, and nothing here touches the
records a report attacks: the bank pool is the ``location`` preset's
*shadow + reference* splits of the seed's split (2,000 records; each model
trains on a random half of 1,000, the preset's member count), the defense's
reference set (early stopping's validation data, AdvReg's non-members) is
the *test* split, and a model's accuracy is measured on its held-out half
of the tuning pool. Each configuration trains a bank of ``--bank`` models
through the registry's public path
(``keras_mi.experiment.train.train_keras_defense``, the ``location``
preset's recipe: MLP-tanh, Adam 1e-3, batch 128, 30 epochs) and is attacked
adaptively (each model the target in turn, the others its shadows, trained
with the same defense): LiRA (online/offline, fixed and per-example
variance) and the loss threshold.

The grid, fixed before the run: each defense's default (the registry's
value, the authors') and two alternatives from the authors' papers or code
where they give one, plus ``none`` once (:data:`GRID`):

- ``label_smoothing.epsilon`` 0.03 / **0.1** / 0.3 (0.03: the HAMP authors'
  Purchase label-smoothing run, ``purchase/train-all.sh``).
- ``confidence_penalty.beta`` **0.1** / 0.5 / 2.0 (our choice; 2.0 stays
  below log 30 ≈ 3.4, past which a uniform output beats fitting).
- ``early_stopping.patience`` 1 / **5** / 10 epochs (our choice).
- ``relaxloss`` (α, upper) 0.4, 0.3 / **0.8, 0.3** (Purchase config) /
  2.5, 0.1 (the authors' Texas config, DingfanChen/RelaxLoss
  ``source/nonimage/defense/configs/Texas.yml``); α 0.4 is our choice.
- ``advreg.weight`` λ 1 / 3 / **10** (3: the HAMP authors' Purchase run,
  ``purchase/train-all.sh``; 10, their Location run, collapses here).
- ``hamp.gamma`` γ 0.2 / **0.5** / 0.8 at α = 0.001 (0.8: the authors'
  Purchase γ; 0.2 our choice).
- ``mixup_alpha`` 0.1 / 0.2 / **1.0** (Zhang et al. 2018 use 0.1-0.4 on
  ImageNet and 1 on CIFAR-10).

The selection rule, fixed before the run (``mmd_tune``'s): per defense,
among its configurations whose held-out accuracy is at most 1 point below
held-out ``none``, the one with the lowest TPR at 1 % FPR (the strongest
attack's; with a small bank TPR@0.1 % rests on too few false positives);
if none qualifies, the most accurate one (:func:`choose`).

A configuration is ``LABEL=DEFENSE[,KEY=VALUE...]`` (config overrides, as
in ``bench/frontier_location.py``); the chosen spec is printed ready to be
passed to that script's ``--spec``. Results go to ``results.json`` in
``--out`` as each configuration finishes (a run resumes from there, and
several runs may share the folder), ``grid.md`` the table and the choices.

  python bench/defense_tune.py --quick
  python bench/defense_tune.py --out docs/results/defense_tune/runs --bank 4
  python bench/defense_tune.py --out ... --only none hamp hamp-g0.2
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

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import frontier_location  # noqa: E402
import mmd_tune  # noqa: E402

#: The grid as ``LABEL=DEFENSE[,KEY=VALUE...]`` specs; the bare label is the default.
GRID = [
    "none=none",
    "label_smoothing-e0.03=label_smoothing,label_smoothing.epsilon=0.03",
    "label_smoothing=label_smoothing",
    "label_smoothing-e0.3=label_smoothing,label_smoothing.epsilon=0.3",
    "confidence_penalty=confidence_penalty",
    "confidence_penalty-b0.5=confidence_penalty,confidence_penalty.beta=0.5",
    "confidence_penalty-b2=confidence_penalty,confidence_penalty.beta=2.0",
    "early_stopping-p1=early_stopping,early_stopping.patience=1",
    "early_stopping=early_stopping",
    "early_stopping-p10=early_stopping,early_stopping.patience=10",
    "relaxloss-a0.4=relaxloss,relaxloss.alpha=0.4,relaxloss.upper=0.3",
    "relaxloss=relaxloss",
    "relaxloss-a2.5u0.1=relaxloss,relaxloss.alpha=2.5,relaxloss.upper=0.1",
    "advreg-l1=advreg,advreg.weight=1.0",
    "advreg-l3=advreg,advreg.weight=3.0",
    "advreg=advreg",
    "hamp-g0.2=hamp,hamp.gamma=0.2",
    "hamp=hamp",
    "hamp-g0.8=hamp,hamp.gamma=0.8",
    "mixup-a0.1=mixup,mixup_alpha=0.1",
    "mixup-a0.2=mixup,mixup_alpha=0.2",
    "mixup=mixup",
]

#: Within this much held-out accuracy of ``none`` a configuration qualifies.
ACCURACY_SLACK = 0.01


def grid_specs(texts=GRID):
    """``label -> (defense, overrides)`` of spec strings, in order; labels must be unique."""
    specs = {}
    for text in texts:
        label, defense, overrides = frontier_location.parse_spec(text)
        if label in specs:
            raise ValueError(f"configuration label {label!r} is given twice.")
        specs[label] = (defense, overrides)
    return specs


def spec_text(label, defense, overrides):
    """The ``LABEL=DEFENSE[,KEY=VALUE...]`` string of a configuration."""
    return ",".join([f"{label}={defense}"] + [f"{k}={v}" for k, v in overrides.items()])


def choose(results, slack=ACCURACY_SLACK):
    """The rule: per defense, the configuration it chooses on held-out data.

    Args:
      results: label -> row with ``defense``, ``held_out_accuracy`` and
        ``tpr_at_1%``; one row must be the ``none`` defense.
      slack: how far below ``none``'s held-out accuracy still qualifies.

    Returns:
      defense -> ``(label, qualified)``: among the defense's rows whose
      accuracy is at least ``none``'s minus ``slack``, the lowest TPR@1 %
      (ties: the more accurate, then the label); if none qualifies, the most
      accurate row (``qualified`` False).

    Example:
      >>> rows = {"none": dict(defense="none", held_out_accuracy=0.55, **{"tpr_at_1%": 0.8}),
      ...         "a": dict(defense="d", held_out_accuracy=0.545, **{"tpr_at_1%": 0.5}),
      ...         "b": dict(defense="d", held_out_accuracy=0.50, **{"tpr_at_1%": 0.1})}
      >>> choose(rows)["d"]
      ('a', True)
    """
    base = [r for r in results.values() if r["defense"] == "none"]
    if len(base) != 1:
        raise ValueError(f"the rule needs exactly one 'none' row; got {len(base)}.")
    floor = base[0]["held_out_accuracy"] - slack
    chosen = {}
    for defense in dict.fromkeys(r["defense"] for r in results.values()):
        if defense == "none":
            continue
        mine = sorted((label, r) for label, r in results.items() if r["defense"] == defense)
        ok = [(label, r) for label, r in mine if r["held_out_accuracy"] >= floor - 1e-12]
        if ok:
            label = min(ok, key=lambda lr: (lr[1]["tpr_at_1%"], -lr[1]["held_out_accuracy"],
                                            lr[0]))[0]
        else:
            label = max(mine, key=lambda lr: (lr[1]["held_out_accuracy"], lr[0]))[0]
        chosen[defense] = (label, bool(ok))
    return chosen


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run for CI (< 60 s)")
    p.add_argument("--bank", type=int, default=None, help="models per configuration (default 8)")
    p.add_argument("--only", nargs="+", default=None, help="configuration labels of the grid")
    p.add_argument("--spec", type=frontier_location.parse_spec, action="append", default=[],
                   help="an extra LABEL=DEFENSE[,KEY=VALUE...] configuration (repeatable)")
    p.add_argument("--epochs", type=int, default=None, help="default 30 (the preset's)")
    p.add_argument("--seed", type=int, default=0, help="the preset's split seed")
    p.add_argument("--data-dir", default=None, help="folder with location.tgz")
    p.add_argument("--out", default=None, help="run folder (resumable, shareable)")
    args = p.parse_args(argv)
    args.bank = args.bank or (4 if args.quick else 8)
    args.epochs = args.epochs or (1 if args.quick else 30)
    specs = grid_specs()
    for label, defense, overrides in args.spec:
        if label in specs:
            p.error(f"--spec label {label!r} is already a grid configuration.")
        specs[label] = (defense, overrides)
    names = args.only or (["none", "label_smoothing"] if args.quick else list(specs))
    unknown = [n for n in names if n not in specs]
    if unknown:
        p.error(f"unknown configurations {unknown}; choose from {list(specs)}")
    args.configs = {n: specs[n] for n in names}
    return args


def config_of(args, defense, overrides):
    """The ``location`` preset with the run's epochs and the configuration's overrides."""
    from keras_mi.defenses import get_defense
    from keras_mi.experiment import get_preset

    entry = get_defense(defense)
    if entry.trains_in_subprocess:
        raise ValueError(f"defense '{defense}' trains in a child process; this grid is for "
                         "the registry's Keras defenses.")
    config = get_preset("location").with_overrides(
        {"training.epochs": args.epochs, "defenses": [defense], **overrides})
    config.validate()
    return config


def make_train_fn(defense, config, reference, num_classes):
    from keras_mi.experiment.train import train_keras_defense

    def train_fn(x, y, seed):
        return train_keras_defense(defense, config, {"train": (x, y), "reference": reference},
                                   x.shape[1:], num_classes, config.architecture, int(seed),
                                   verbose=0).model

    return train_fn


def _write_merged(path, label, row):
    # Re-read before writing (another run may share the folder); replace atomically.
    results = json.loads(path.read_text()) if path.exists() else {}
    results[label] = row
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return results


def grid_table(results):
    chosen = {label for label, _ in choose(results).values()} if any(
        r["defense"] == "none" for r in results.values()) else set()
    lines = ["| configuration | defense | overrides | held-out acc | AUC | TPR@1% | TPR@0.1% "
             "| strongest | chosen |", "|---|---|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        over = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "(default)"
        tpr01 = f"{r['tpr_at_0.1%']:.3f}" + ("" if r["tpr_at_0.1%_resolved"] else " (n/a)")
        lines.append(f"| {label} | {r['defense']} | {over} | {r['held_out_accuracy']:.3f} | "
                     f"{r['auc']:.3f} | {r['tpr_at_1%']:.3f} | {tpr01} | {r['strongest']} | "
                     f"{'yes' if label in chosen else ''} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    from keras_mi.attacks import bank as kbank

    # Every configuration is checked before anything trains.
    configs = {label: config_of(args, d, o) for label, (d, o) in args.configs.items()}
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="defense_tune_"))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    pool, reference, num_classes = mmd_tune.tuning_data(args)
    print(f"tuning pool {len(pool[0])} records (shadow + reference splits), defense reference "
          f"{len(reference[0])} (test split), bank of {args.bank}, {args.epochs} epochs, "
          f"{len(configs)} configurations -> {out}", flush=True)
    for i, (label, (defense, overrides)) in enumerate(args.configs.items(), 1):
        done = json.loads(results_path.read_text()) if results_path.exists() else {}
        old = done.get(label)
        if old and old.get("bank") == args.bank and old.get("epochs") == args.epochs \
                and old.get("overrides") == overrides and old.get("defense") == defense:
            print(f"[{i}/{len(configs)}] {label}: done earlier, kept", flush=True)
            continue
        print(f"[{i}/{len(configs)}] {label} ({defense} {overrides or 'default'})...", flush=True)
        t0 = time.perf_counter()
        folder = out / label
        kbank.train_bank(make_train_fn(defense, configs[label], reference, num_classes), pool,
                         folder, num_models=args.bank,
                         recipe=f"defense_tune {spec_text(label, defense, overrides)} "
                                f"e{args.epochs}", seed=1000 + args.seed, verbose=0)
        bank = kbank.load_bank(folder, num_models=args.bank)
        row = mmd_tune.summarize(bank, kbank.attack_bank(bank, attacks=mmd_tune.ATTACKS))
        row.update(defense=defense, overrides=overrides, bank=args.bank, epochs=args.epochs,
                   split_seed=args.seed, seconds=round(time.perf_counter() - t0, 1))
        _write_merged(results_path, label, row)
        print(f"  {label:24s} held-out acc {row['held_out_accuracy']:.3f}  AUC {row['auc']:.3f}"
              f"  TPR@1% {row['tpr_at_1%']:.3f}  TPR@0.1% {row['tpr_at_0.1%']:.3f}"
              f"{'' if row['tpr_at_0.1%_resolved'] else ' (n/a)'}  [{row['strongest']}]  "
              f"{row['seconds']:.0f}s", flush=True)
    results = json.loads(results_path.read_text())
    text = grid_table(results)
    if any(r["defense"] == "none" for r in results.values()):
        text += "\n\nChosen (rule: lowest TPR@1% within 1 point of none's held-out accuracy):\n"
        for defense, (label, qualified) in choose(results).items():
            r = results[label]
            why = "qualifies" if qualified else "none qualifies: the most accurate"
            spec = spec_text(f"{defense}-tuned", r["defense"], r["overrides"])
            text += f"- {defense}: {label} ({why}); frontier spec '{spec}'\n"
    (out / "grid.md").write_text(text + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
