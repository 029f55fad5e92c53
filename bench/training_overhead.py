"""Training overhead of each defense over plain training of the same model.

Epoch time of ``mixup``, ``mmd`` and ``mmd+mixup`` (MMD under both
schedules, ``summed`` and ``paper``), fed exactly as the experiment runner
feeds them (`keras_mi.experiment.train`: arrays for plain/MMD,
`keras_mi.data.mixup_dataset` for mixup), and of TF-Privacy DP-SGD
(`keras_mi.baselines.dpsgd_worker`, its own process, tf-keras), each as a
ratio over plain training of the same architecture on the same data:

* Location: MLP-tanh 1024-512-256, 1,000 members, batch 64, Adam;
* CIFAR-10: the paper's AlexNet on a subset (default 1,000 members), batch
  100, SGD momentum 0.9, no augmentation (so only the defense differs).

Keras-3 configurations are timed interleaved (one `fit` call of
``--epochs-per-call`` epochs per configuration per round, order rotated per
round, after an untimed compile round); a round's value is the median of
its epochs (an epoch timer callback, so `fit`'s set-up is excluded) and
the table shows the median over rounds. DP-SGD runs as alternating child
processes (plain tf-keras SGD, then DP-SGD) and its ratio is over the plain
tf-keras run of the same round: TF-Privacy needs tf-keras, so its natural
baseline is the same engine without DP. Each child's first epoch (tracing)
is untimed. On CIFAR-10 the DP pair runs on 200 of the members, one round:
per-example clipping of the conv net is far too slow on 2 cores for more.

``--mmd-sigma`` sets MMDModel's Gaussian bandwidth(s) (default σ = 1; a
comma list such as ``0.05,0.1`` is a sum of kernels, as in the ``location``
preset). Given several values, every MMD configuration is timed once per
bandwidth set in the same interleaved rounds (named ``mmd:summed σ=0.1``
etc.); ``--configs`` restricts which configurations run.

The physical floor of the MMD defense is one extra forward pass of the
reference batch per step (about 1.33x plain: a training step is roughly one
forward and two backward-sized passes). Results go to ``--out``
(``overhead.json`` and ``overhead.md``).

Usage:
  python bench/training_overhead.py --out runs/bench/overhead
  python bench/training_overhead.py --quick
  python bench/training_overhead.py --datasets cifar10 --no-dpsgd --configs plain,mmd:summed \
      --mmd-sigma 0.1 0.05,0.1 --rounds 5 --epochs-per-call 2   # one vs two bandwidths
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402

KERAS_CONFIGS = ("plain", "mixup", "mmd:summed", "mmd:paper",
                 "mmd+mixup:summed", "mmd+mixup:paper")
FLOOR = 4.0 / 3.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 round (CI smoke)")
    p.add_argument("--out", default="runs/bench/overhead")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--datasets", default="location,cifar10")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5; quick 1)")
    p.add_argument("--epochs-per-call", type=int, default=None,
                   help="epochs per timed fit call (default 4; quick 2)")
    p.add_argument("--cifar-members", type=int, default=None, help="default 1000; quick 200")
    p.add_argument("--dp-rounds", type=int, default=None, help="default 2; quick 1")
    p.add_argument(
        "--dp-epochs",
        type=int,
        default=None,
        help="timed DP-SGD epochs per child process, after one untimed (default 2; quick 1)",
    )
    p.add_argument("--no-dpsgd", action="store_true")
    p.add_argument("--configs", default=None,
                   help=f"comma list out of {','.join(KERAS_CONFIGS)} (default: all; "
                        f"CIFAR-10 --quick: plain,mmd+mixup:summed)")
    p.add_argument("--mmd-sigma", nargs="+", default=["1.0"],
                   help="MMD bandwidth set(s): each a number or a comma list (a sum of "
                        "Gaussian kernels); several sets time each MMD configuration per set")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (1 if q else 5)
    args.epochs_per_call = args.epochs_per_call or (2 if q else 4)
    args.cifar_members = args.cifar_members or (200 if q else 1000)
    args.dp_rounds = args.dp_rounds or (1 if q else 2)
    args.dp_epochs = args.dp_epochs or (1 if q else 2)
    args.datasets = [d for d in args.datasets.split(",") if d]
    if args.configs is not None:
        args.configs = [c for c in args.configs.split(",") if c]
        unknown = sorted(set(args.configs) - set(KERAS_CONFIGS))
        if unknown or "plain" not in args.configs:
            p.error(f"--configs must include plain and come from {KERAS_CONFIGS}; "
                    f"got {args.configs}")
    try:
        args.mmd_sigma = [[float(v) for v in s.split(",")] for s in args.mmd_sigma]
    except ValueError:
        p.error(f"--mmd-sigma takes numbers or comma lists of numbers, got {args.mmd_sigma}")
    if not all(s and all(v > 0 for v in s) for s in args.mmd_sigma):
        p.error(f"--mmd-sigma values must be > 0, got {args.mmd_sigma}")
    return args


def sigma_label(sigmas):
    """``0.1`` or ``0.05+0.1``: how a bandwidth set appears in a configuration name."""
    return "+".join(f"{v:g}" for v in sigmas)


def expand_configs(configs, args):
    """Configuration names with their MMD bandwidths: name -> (config, sigma or None)."""
    out = {}
    for c in configs:
        if not c.startswith("mmd"):
            out[c] = (c, None)
        elif len(args.mmd_sigma) == 1:  # one set: the names stay as they were
            out[c] = (c, args.mmd_sigma[0])
        else:
            for sig in args.mmd_sigma:
                out[f"{c} σ={sigma_label(sig)}"] = (c, sig)
    return out


def setting(dataset, args):
    """Architecture, sizes and optimizer of one dataset's benchmark."""
    s = _default_setting(dataset, args)
    if args.configs is not None:  # --configs wins over the dataset's default set
        s["configs"] = tuple(args.configs)
    return s


def _default_setting(dataset, args):
    if dataset == "location":
        members = 300 if args.quick else 1000
        return dict(architecture="mlp_tanh", members=members, reference=members,
                    batch_size=64, optimizer="adam", lr=1e-3,
                    dp_members=members, dp_rounds=args.dp_rounds)
    if dataset == "cifar10":
        # TF-Privacy's per-example clipping of a conv net takes tens of
        # seconds per step on 2 cores: its DP-vs-plain ratio is measured on
        # 200 images (2 steps per epoch), one round.
        return dict(architecture="alexnet", members=args.cifar_members,
                    reference=args.cifar_members, batch_size=100, optimizer="sgd", lr=0.01,
                    dp_members=min(200, args.cifar_members), dp_rounds=1,
                    # --quick: the Location run already covers every configuration.
                    configs=("plain", "mmd+mixup:summed") if args.quick else KERAS_CONFIGS)
    raise ValueError(f"unknown dataset {dataset}; use location or cifar10")


def load(dataset, s, args):
    from keras_mi.data import MembershipSplit, load_dataset

    x, y = load_dataset(dataset, data_dir=args.data_dir or _common.default_data_dir())
    split = MembershipSplit.create(x, y, members=s["members"], reference=s["reference"],
                                   non_members=0, test=0, seed=args.seed)
    return ((x[split.members], y[split.members].astype(np.int64)),
            (x[split.reference], y[split.reference].astype(np.int64)))


class EpochTimes:
    """Callback factory: records each epoch's wall time into a list."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times, self.passes = [], []

            def on_epoch_begin(self, epoch, logs=None):
                self._t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                # Runs after MMDModel's PaperSchedule, so a triggered MMD-only
                # pass is inside this epoch's time.
                elapsed = time.perf_counter() - self._t0
                logs = logs if logs is not None else {}
                self.times.append(elapsed)
                self.passes.append(float(logs.get("mmd_pass", 0.0)))
                logs["epoch_time_s"] = elapsed

        return _Timer()


def make_fit_call(config, train, reference, num_classes, s, args, sigma=(1.0,)):
    """Builds + compiles one configuration; returns ``fit_once() -> epoch seconds``."""
    import keras

    from keras_mi.models import build_model

    kind, _, schedule = config.partition(":")
    x, y = train
    keras.utils.set_random_seed(args.seed)
    model = build_model(s["architecture"], x.shape[1:], num_classes, seed=args.seed)
    trainable = model
    if kind.startswith("mmd"):
        from keras_mi.training import MMDModel
        sigma = list(sigma) if len(sigma) > 1 else float(sigma[0])
        trainable = MMDModel(model, reference=reference, weight=3.0, sigma=sigma,
                             schedule=schedule)
    use_mixup = "mixup" in kind
    if use_mixup:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = (keras.optimizers.Adam(s["lr"]) if s["optimizer"] == "adam"
           else keras.optimizers.SGD(s["lr"], momentum=0.9))
    # Every configuration tracks accuracy: the paper schedule needs it to
    # decide its MMD passes, and the others pay the same metric cost.
    trainable.compile(optimizer=opt, loss=loss, metrics=["accuracy"])
    if use_mixup:
        from keras_mi.data import mixup_dataset
        dataset = mixup_dataset(x, y, num_classes=num_classes, alpha=1.0,
                                batch_size=s["batch_size"], seed=args.seed, shuffle=True)

    def fit_once():
        timer = EpochTimes()
        if use_mixup:
            trainable.fit(dataset, epochs=args.epochs_per_call, verbose=0, callbacks=[timer])
        else:
            trainable.fit(x, y, batch_size=s["batch_size"], epochs=args.epochs_per_call,
                          shuffle=True, verbose=0, callbacks=[timer])
        passes = [t for t, p in zip(timer.times, timer.passes) if p]
        fraction = len(passes) / len(timer.times)
        # Paper schedule: the cost of an epoch whose gap triggered the MMD
        # pass (the last epoch of a fit never gets one, by the schedule). The
        # first pass of each fit call also traces the MMD-only train function
        # (PaperSchedule caches it per fit call), so it is left out when a
        # later pass exists.
        passes = passes[1:] or passes
        return _common.median(passes or timer.times), fraction

    return fit_once


def time_keras(train, reference, num_classes, s, args):
    """Interleaved rounds over the Keras-3 configurations; name -> per-round seconds."""
    configs = s.get("configs", KERAS_CONFIGS)
    calls = {name: make_fit_call(c, train, reference, num_classes, s, args,
                                 sigma=sig or (1.0,))
             for name, (c, sig) in expand_configs(configs, args).items()}
    results = {c: [] for c in calls}
    pass_fraction = {c: [] for c in calls}
    for r in range(1 + args.rounds):  # round 0 compiles, untimed
        shift = r % len(calls)
        order = list(calls)[shift:] + list(calls)[:shift]
        for c in order:
            sec, frac = calls[c]()
            if r:
                results[c].append(sec)
                pass_fraction[c].append(frac)
        _common.stamp(f"  round {r}/{args.rounds}"
                      + (" (compile, untimed)" if r == 0 else "") + ": "
                      + ", ".join(f"{c}={results[c][-1]:.3f}s" for c in order if r))
    return results, {c: float(np.mean(v)) for c, v in pass_fraction.items() if v}


def time_dpsgd(train, reference, num_classes, s, args, workdir):
    """Alternating child processes: plain tf-keras SGD vs TF-Privacy DP-SGD."""
    x, y = train[0][:s["dp_members"]], train[1][:s["dp_members"]]
    data = pathlib.Path(workdir) / "dp_data.npz"
    # The worker writes ModelOutputs, which need a non-member split.
    np.savez(data, x_train=x, y_train=y, x_non_members=reference[0], y_non_members=reference[1])
    epochs = 1 + args.dp_epochs
    results = {"tf_keras plain": [], "tf_keras dpsgd": []}
    for r in range(s["dp_rounds"]):
        for private in ((False, True) if r % 2 == 0 else (True, False)):
            out = pathlib.Path(workdir) / f"dp_{r}_{int(private)}"
            request = dict(data=str(data), out_dir=str(out), architecture=s["architecture"],
                           input_shape=list(x.shape[1:]), num_classes=num_classes,
                           private=private, l2_norm_clip=1.0, noise_multiplier=1.0,
                           num_microbatches=None, batch_size=s["batch_size"], epochs=epochs,
                           learning_rate=0.01 if s["optimizer"] == "sgd" else 0.1,
                           momentum=0.9 if s["optimizer"] == "sgd" else 0.0,
                           seed=args.seed, verbose=0)
            req = pathlib.Path(workdir) / f"req_{r}_{int(private)}.json"
            req.write_text(json.dumps(request))
            env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
            proc = subprocess.run([sys.executable, "-m", "keras_mi.baselines.dpsgd_worker",
                                   str(req)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"dpsgd_worker failed:\n{proc.stderr[-3000:]}")
            times = json.loads((out / "result.json").read_text())["epoch_time_s"]
            key = "tf_keras dpsgd" if private else "tf_keras plain"
            results[key].append(_common.median(times[1:]))  # epoch 1 traces/compiles
            _common.stamp(
                f"  dp round {r + 1}/{s['dp_rounds']} {key}: {results[key][-1]:.3f}s/epoch"
            )
    return results


def run_dataset(dataset, args, workdir):
    s = setting(dataset, args)
    _common.stamp(f"{dataset}: {s}")
    train, reference = load(dataset, s, args)
    num_classes = int(max(train[1].max(), reference[1].max())) + 1
    keras_times, pass_fraction = time_keras(train, reference, num_classes, s, args)
    entry = {"setting": s, "epochs_per_call": args.epochs_per_call, "rounds": args.rounds,
             "keras": _common.summarize(keras_times, "plain"), "keras_raw": keras_times,
             "paper_mmd_pass_fraction": {c: f for c, f in pass_fraction.items() if "paper" in c}}
    if not args.no_dpsgd and not (args.quick and dataset != "location"):
        dp = time_dpsgd(train, reference, num_classes, s, args, workdir)
        entry["dpsgd"] = _common.summarize(dp, "tf_keras plain")
        entry["dpsgd_raw"] = dp
    return entry


def render(report):
    lines = ["# Training overhead of the defenses (epoch time, ratio over plain)", "",
             f"{report['machine']['date_utc']}, Keras {report['machine'].get('keras')} "
             f"({report['machine'].get('keras_backend')} backend), "
             f"{report['machine']['cpu_count']} CPU cores.", ""]
    for dataset, e in report["datasets"].items():
        s = e["setting"]
        lines += [f"## {dataset}: {s['architecture']}, {s['members']} members, batch "
                  f"{s['batch_size']}, {s['optimizer']}", "",
                  f"Median over {e['rounds']} interleaved rounds (each round: median of "
                  f"{e['epochs_per_call']} epochs). MMD: λ = 3, σ = "
                  f"{' / '.join(sigma_label(v) for v in report['args']['mmd_sigma'])}. "
                  f"Floor for MMD: one extra forward pass "
                  f"of the reference batch, ≈{FLOOR:.2f}x.", ""]
        rows = [[name, v["median_s"], v["min_s"], v["max_s"], f"{v['ratio']:.2f}x",
                 f"{v['ratio'] / FLOOR:.2f}" if name.startswith("mmd") else ""]
                for name, v in e["keras"].items()]
        for name, v in e.get("dpsgd", {}).items():
            rows.append([f"{name} ({s['dp_members']} members)", v["median_s"], v["min_s"],
                         v["max_s"], f"{v['ratio']:.2f}x (over tf_keras plain)", ""])
        lines.append(_common.markdown_table(
            ["configuration", "epoch s (median)", "min", "max", "ratio over plain",
             "ratio / 1.33 floor"], rows))
        fractions = e.get("paper_mmd_pass_fraction") or {}
        if fractions:
            lines += ["", "Paper schedule: times are of epochs whose accuracy gap triggered the "
                      "MMD-only pass; fraction of timed epochs that triggered it: "
                      + ", ".join(f"{c} {f:.2f}" for c, f in fractions.items())
                      + f" (the last epoch of each {e['epochs_per_call']}-epoch fit never does)."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    import keras  # noqa: F401  (backend chosen by KERAS_BACKEND, default tensorflow)

    report = {"args": vars(args), "datasets": {}, "machine": _common.machine_info()}
    with tempfile.TemporaryDirectory() as workdir:
        for dataset in args.datasets:
            report["datasets"][dataset] = run_dataset(dataset, args, workdir)
            report["machine"] = _common.machine_info()
            _common.write_json_atomic(out / "overhead.json", report)
            _common.write_text_atomic(out / "overhead.md", render(report))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
