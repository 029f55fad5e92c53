"""The bank protocol on Location: every defense of the ``location`` preset, 2 seeds.

For each seed, runs ``keras-mi evaluate`` (the ``location`` preset, its five
defenses) with ``bank.size = --bank``: each defense gets a bank of models
trained *with that defense* on random halves of its 2,000 members +
non-members; every model is attacked with the others (adaptive) and with the
``none`` bank (non-adaptive), LiRA and RMIA (test split as the population),
and the (model, record) pairs are pooled. Prints one table row per
(defense, protocol, seed) and the median over seeds; writes
``results.json`` into ``--out`` (runs resume from there).

DP-SGD: the preset's ``dpsgd`` row runs TF-Privacy's per-example optimizer in
a child process (minutes per model on 2 cores), too slow for banks here, so
by default the bench leaves ``dpsgd`` out of the evaluate run and instead
trains a bank of the same recipe (the preset's ε, clip, learning rate,
epochs, batch) with keras-mi's Keras 3 / JAX DP-SGD
(:func:`keras_mi.baselines.train_dpsgd_keras`, Poisson batches) in a JAX
child process, on the same pool and halves, and attacks it with the same
protocol (``--no-dp-jax`` skips it).

  python bench/bank_location.py --quick                 # CI: tiny banks, < 2 min
  python bench/bank_location.py --out docs/results/bank_location/runs

``--dp-tuned EPS:ARCH:BATCH:STEPS:LR:CLIP ...`` trains only DP-SGD banks, one
per setting (e.g. the configurations ``bench/dpsgd_grid.py`` chose), on the
same split, pool and halves as the evaluate run of that seed, all 16 models
of a bank in one JAX child process (as ``keras-mi evaluate`` with
``dpsgd.implementation=keras_jax`` now trains its DP banks too); each bank
is attacked with the adaptive protocol
and gets the same empirical ε lower bound as an evaluate DP bank
(``audit.empirical_epsilon_of_attacks`` over every attack, δ of the bank):

  python bench/bank_location.py --seeds 0 --dp-tuned 1:linear:1000:50:1:1 \
      4:linear:1000:50:4:1 8:linear:1000:25:8:1 --out runs/bench/dpsgd_bank
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
    p.add_argument("--quick", action="store_true", help="tiny run for CI (< 2 min)")
    p.add_argument("--bank", type=int, default=None, help="models per bank (default 16)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1")
    p.add_argument("--defenses", nargs="+", default=None,
                   help="default: the location preset's five")
    p.add_argument("--dp-microbatches", type=int, default=None,
                   help="DP-SGD clipping per microbatch (dpsgd.num_microbatches); default "
                        "per-example clipping")
    p.add_argument("--data-dir", default=None, help="folder with location.tgz "
                   "(default $KERAS_MI_DATA_DIR)")
    p.add_argument("--out", default=None, help="run folders and results.json (resumable); "
                   "default a temporary folder")
    p.add_argument("--no-dp-jax", action="store_true",
                   help="skip the Keras 3 / JAX DP-SGD bank")
    p.add_argument("--dp-tuned", nargs="+", metavar="EPS:ARCH:BATCH:STEPS:LR:CLIP",
                   default=None, help="DP-SGD banks only, one per setting (Keras 3 / JAX, "
                                      "Poisson batches, noise from --dp-accountant)")
    p.add_argument("--dp-accountant", choices=("rdp", "pld"), default="rdp",
                   help="the accountant that calibrates --dp-tuned's noise (dpsgd.accountant)")
    p.add_argument("--dp-jax-worker", metavar="RUN", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.bank = args.bank or (4 if args.quick else 16)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1])
    if args.defenses is None:
        # dpsgd's TF-Privacy bank is too slow here; the Keras 3 / JAX bank stands in.
        args.defenses = ["none", "mmd"] if args.quick else ["none", "mixup", "mmd", "mmd+mixup"]
    return args


def config_for(args, seed):
    from keras_mi.experiment import get_preset

    overrides = {"seed": seed, "bank.size": args.bank}
    if args.defenses:
        overrides["defenses"] = list(args.defenses)
    if args.dp_microbatches:
        overrides["dpsgd.num_microbatches"] = args.dp_microbatches
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.quick:
        overrides.update({"training.epochs": 3, "split.members": 300, "split.non_members": 300,
                          "split.reference": 300, "split.test": 300, "split.shadow": 0,
                          "attacks": ["loss"], "dpsgd.epochs": 2})
    return get_preset("location").with_overrides(overrides)


def bank_rows(seed, defense, bank, accuracy, bank_s):
    """One row per (protocol, attack) of a defense's bank summary (``report.bank_summary``)."""
    rows = []
    for protocol in ("adaptive", "non_adaptive"):
        if protocol not in bank:
            continue
        b = bank[protocol]
        for name, a in b["attacks"].items():
            rows.append({
                "seed": seed, "defense": defense, "protocol": protocol, "attack": name,
                "strongest": name == b["strongest_attack"]["name"], "auc": a["auc"],
                "low_fpr": a["low_fpr"], "members_above_all": a["members_above_all"],
                "pairs": b["pairs"], "test_accuracy": accuracy, "bank_s": bank_s})
    return rows


def rows_of(report, seed, timings):
    from keras_mi.experiment.store import safe_tag

    rows = []
    for defense, row in report["defenses"].items():
        bank = row.get("bank", {})
        rows.extend(bank_rows(seed, defense, bank,
                              bank.get("accuracy", {}).get("population", {}).get("median"),
                              timings.get(f"banks/{safe_tag(defense)}_s")))
    return rows


def dp_jax_worker(run: pathlib.Path, num_models: int) -> None:
    """Trains the DP-SGD bank of ``run`` with Keras 3 on JAX (a child process)."""
    import keras

    from keras_mi.attacks import bank as kbank
    from keras_mi.attacks.lira import lira_pool
    from keras_mi.baselines import noise_multiplier_for_epsilon, train_dpsgd_keras
    from keras_mi.data import MembershipSplit, load_dataset
    from keras_mi.experiment import ExperimentConfig
    from keras_mi.experiment.train import model_seed
    from keras_mi.models import build_model

    cfg = ExperimentConfig.load(run / "config.json")
    x, y = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    split = MembershipSplit.load(run / "split.json", x, y)
    dp, recipe = cfg.dpsgd, cfg.training
    pool = lira_pool((x[split.members], y[split.members]),
                     (x[split.non_members], y[split.non_members]))
    architecture = dp.architecture or cfg.architecture

    n = len(pool[0]) // 2
    batch, epochs = dp.batch_for(n, recipe.batch_size), dp.epochs or recipe.epochs
    # Every bank model trains on n records: one calibration serves them all
    # (the same bisection train_dpsgd_keras runs for target_epsilon).
    sigma = noise_multiplier_for_epsilon(dp.epsilon, n, batch, epochs, dp.delta, dp.accountant,
                                         steps=epochs * (n // batch))

    def train_fn(xt, yt, seed):
        assert len(xt) == n, (len(xt), n)
        keras.utils.set_random_seed(int(seed))
        model = build_model(architecture, x.shape[1:], int(y.max()) + 1, seed=int(seed))
        train_dpsgd_keras(model, xt, yt, noise_multiplier=sigma, l2_norm_clip=dp.l2_norm_clip,
                          batch_size=batch, epochs=epochs, learning_rate=dp.learning_rate,
                          momentum=dp.momentum, delta=dp.delta, seed=int(seed))
        return model

    kbank.train_bank(train_fn, pool, run / "banks" / "dpsgd_jax", num_models=num_models,
                     population=(x[split.test], y[split.test]),
                     recipe=f"dpsgd-jax eps{dp.epsilon:g}"
                     + ("" if dp.accountant == "rdp" else f" {dp.accountant}"),
                     seed=model_seed(cfg.seed, "bank"))


def dp_jax_rows(run: pathlib.Path, args, seed, epsilon):
    """Trains (in a JAX child) and attacks the DP-SGD bank of one seed's run."""
    import subprocess

    from keras_mi.attacks import bank as kbank

    t0 = time.perf_counter()
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, __file__, "--dp-jax-worker", str(run), "--bank",
                    str(args.bank)], env=env, check=True)
    seconds = time.perf_counter() - t0
    dp_bank = kbank.load_bank(run / "banks" / "dpsgd_jax", num_models=args.bank)
    reports = {"adaptive": kbank.attack_bank(dp_bank),
               "non_adaptive": kbank.attack_bank(
                   dp_bank, shadow_bank=kbank.load_bank(run / "banks" / "none"))}
    from keras_mi.experiment.report import bank_summary

    accuracy = kbank.model_accuracies(dp_bank)["population"]["median"]
    return bank_rows(seed, f"dpsgd (keras3/jax, ε={epsilon:g})", bank_summary(reports),
                     accuracy, seconds)


def parse_dp_setting(text):
    """``EPS:ARCH:BATCH:STEPS:LR:CLIP`` -> dict (steps over the bank's 1,000-record halves)."""
    try:
        eps, arch, batch, steps, lr, clip = text.split(":")
        return {"epsilon": float(eps), "architecture": arch, "batch_size": int(batch),
                "steps": int(steps), "learning_rate": float(lr), "l2_norm_clip": float(clip)}
    except ValueError as err:
        raise SystemExit(f"--dp-tuned {text!r}: expected EPS:ARCH:BATCH:STEPS:LR:CLIP ({err})")


def dp_tuned_rows(args, seed, setting, out):
    """One tuned DP-SGD bank: config + split written like evaluate's, trained in a JAX
    child, attacked (adaptive), audited (empirical ε). Resumes from the folder."""
    import subprocess

    from keras_mi.attacks import bank as kbank
    from keras_mi.baselines.accounting import default_delta
    from keras_mi.baselines.audit import empirical_epsilon_of_attacks
    from keras_mi.data import load_dataset
    from keras_mi.experiment import get_preset
    from keras_mi.experiment.report import bank_summary
    from keras_mi.experiment.steps import plan_split

    pld = args.dp_accountant != "rdp"
    folder = (out / f"seed{seed}"
              / f"dpsgd_eps{setting['epsilon']:g}{'_' + args.dp_accountant if pld else ''}")
    folder.mkdir(parents=True, exist_ok=True)
    base = get_preset("location")
    half = (base.split.members + base.split.non_members) // 2
    overrides = {"seed": seed, "bank.size": args.bank, "bank.non_adaptive": False,
                 "defenses": [f"dpsgd:{setting['epsilon']:g}"],
                 "dpsgd.epsilon": setting["epsilon"], "dpsgd.implementation": "keras_jax",
                 "dpsgd.architecture": setting["architecture"],
                 "dpsgd.batch_size": setting["batch_size"],
                 "dpsgd.epochs": setting["steps"] // (half // setting["batch_size"]),
                 "dpsgd.learning_rate": setting["learning_rate"],
                 "dpsgd.l2_norm_clip": setting["l2_norm_clip"],
                 "dpsgd.accountant": args.dp_accountant}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    cfg = base.with_overrides(overrides)
    cfg.validate()
    (folder / "config.json").write_text(cfg.to_json())
    x, y = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    plan_split(cfg, x, y).save(folder / "split.json")
    t0 = time.perf_counter()
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, __file__, "--dp-jax-worker", str(folder), "--bank",
                    str(args.bank)], env=env, check=True)
    seconds = time.perf_counter() - t0
    dp_bank = kbank.load_bank(folder / "banks" / "dpsgd_jax", num_models=args.bank)
    report = kbank.attack_bank(dp_bank, keep_scores=True)
    delta = cfg.dpsgd.delta or default_delta(half)
    audit = empirical_epsilon_of_attacks(
        {r.name: (r.member_scores, r.non_member_scores) for r in report.results
         if r.member_scores is not None}, delta=delta)
    accuracy = kbank.model_accuracies(dp_bank)["population"]["median"]
    name = (f"dpsgd ε={setting['epsilon']:g} ({setting['architecture']}, batch "
            f"{setting['batch_size']}, {setting['steps']} steps, lr {setting['learning_rate']:g}, "
            f"clip {setting['l2_norm_clip']:g}{', ' + args.dp_accountant if pld else ''})")
    rows = bank_rows(seed, name, bank_summary({"adaptive": report, "non_adaptive": None}),
                     accuracy, seconds)
    for row in rows:
        row.update(dp_setting=setting, empirical_epsilon=audit["epsilon"],
                   empirical_epsilon_attack=audit["attack"], delta=delta)
    return rows


def fmt_tpr(point):
    if not point["resolved"]:
        return "n/a"
    lo, hi = point["ci"]
    return f"{point['tpr']:.3f} [{lo:.3f}, {hi:.3f}]"


def main(argv=None):
    args = parse_args(argv)
    if args.dp_jax_worker:
        dp_jax_worker(pathlib.Path(args.dp_jax_worker), args.bank)
        return
    from keras_mi.experiment import run_experiment

    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="bank_location_"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    if args.dp_tuned:
        return dp_tuned_main(args, out, start)
    for seed in args.seeds:
        folder = out / f"seed{seed}"
        print(f"== seed {seed}: bank of {args.bank} per defense -> {folder}", flush=True)
        config = config_for(args, seed)
        report = run_experiment(config, folder, verbose=1)
        timings = json.loads((folder / "timings.json").read_text())
        rows.extend(rows_of(report, seed, timings))
        if not args.no_dp_jax and "none" in config.defenses:
            rows.extend(dp_jax_rows(folder, args, seed, config.dpsgd.epsilon))
    print(f"\n## Bank protocol, Location ({args.bank} models per defense, seeds {args.seeds})\n")
    print("| defense | protocol | seed | test acc | strongest attack | AUC | TPR@1% [95% CI] | "
          "TPR@0.1% [95% CI] | members above all (pooled) | bank s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in (r for r in rows if r["strongest"]):
        bank_s = ('–' if r['bank_s'] is None or r['protocol'] != 'adaptive'
                  else round(r['bank_s']))
        print(f"| {r['defense']} | {r['protocol']} | {r['seed']} | {r['test_accuracy']:.3f} | "
              f"{r['attack']} | {r['auc']:.3f} | {fmt_tpr(r['low_fpr']['0.01'])} | "
              f"{fmt_tpr(r['low_fpr']['0.001'])} | {r['members_above_all']} | "
              f"{bank_s} |")
    print("\n### Medians over seeds (strongest attack of each seed)\n")
    print("| defense | protocol | test acc | AUC | TPR@1% | TPR@0.1% | members above all |")
    print("|---|---|---|---|---|---|---|")
    keys = sorted({(r["defense"], r["protocol"]) for r in rows},
                  key=lambda k: ([r["defense"] for r in rows].index(k[0]), k[1]))
    for defense, protocol in keys:
        best = [r for r in rows if r["strongest"] and r["defense"] == defense
                and r["protocol"] == protocol]
        med = lambda f: float(np.median([f(r) for r in best]))  # noqa: E731

        def tpr(fpr):
            if not all(r["low_fpr"][fpr]["resolved"] for r in best):
                return "n/a"
            return f"{med(lambda r: r['low_fpr'][fpr]['tpr']):.3f}"

        print(f"| {defense} | {protocol} | {med(lambda r: r['test_accuracy']):.3f} | "
              f"{med(lambda r: r['auc']):.3f} | {tpr('0.01')} | {tpr('0.001')} | "
              f"{med(lambda r: r['members_above_all']):.0f} |")
    total = time.perf_counter() - start
    print(f"\ntotal wall time {total:.0f}s; command: python bench/bank_location.py "
          + " ".join(sys.argv[1:]))
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows,
                                                  "total_s": total}, indent=1))


def dp_tuned_main(args, out, start):
    settings = [parse_dp_setting(t) for t in args.dp_tuned]
    rows = []
    for seed in args.seeds:
        for setting in settings:
            print(f"== seed {seed}: DP-SGD bank of {args.bank}, {setting}", flush=True)
            rows.extend(dp_tuned_rows(args, seed, setting, out))
            (out / "results.json").write_text(json.dumps(
                {"args": vars(args), "rows": rows, "total_s": time.perf_counter() - start},
                indent=1))
    print(f"\n## DP-SGD banks, Location ({args.bank} models each, adaptive, seeds "
          f"{args.seeds})\n")
    print("| defense | seed | test acc | strongest attack | AUC | TPR@1% [95% CI] | "
          "TPR@0.1% [95% CI] | members above all | empirical ε (δ) | bank s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in (r for r in rows if r["strongest"]):
        print(f"| {r['defense']} | {r['seed']} | {r['test_accuracy']:.3f} | {r['attack']} | "
              f"{r['auc']:.3f} | {fmt_tpr(r['low_fpr']['0.01'])} | "
              f"{fmt_tpr(r['low_fpr']['0.001'])} | {r['members_above_all']} | "
              f"{r['empirical_epsilon']:.2f} ({r['delta']:g}) | {round(r['bank_s'])} |")
    print(f"\ntotal wall time {time.perf_counter() - start:.0f}s; command: python "
          "bench/bank_location.py " + " ".join(sys.argv[1:]))
    return rows


if __name__ == "__main__":
    main()
