"""TF-Privacy's DP-SGD paths against a plain tf-keras epoch, side by side.

Times one epoch of the same tf-keras model (``keras_mi.models.build_model``,
``flavor="tf_keras"``) trained four ways, in interleaved rounds (every round
runs one epoch of each, the order rotating), in one process with
``TF_USE_LEGACY_KERAS=1``:

* ``plain``: ``tf_keras.optimizers.SGD``, mean loss (the reference epoch);
* ``microbatched``: ``DPKerasSGDOptimizer`` with ``num_microbatches=None``
  (per-example clipping; what ``keras_mi.baselines.train_dpsgd`` has used);
* ``vectorized``: ``VectorizedDPKerasSGDOptimizer`` (per-example gradients
  with ``tf.vectorized_map``);
* ``fast_clipping``: ``DPSequential`` with TF-Privacy's default layer
  registry (Dense, Embedding: the "ghost norm" trick, Lee & Kifer 2021 /
  Li et al. 2022). If a trainable layer is not registered (``Conv2D`` in
  AlexNet), ``DPSequential`` falls back to ``tf.vectorized_map`` over
  examples, which the table names ``dp_model_vmap``.

All DP paths use the same clip and noise multiplier (σ = 1, C = 1). The first
epoch of each (graph tracing, XLA compilation) is excluded; the ratio is the
median epoch time over the plain median. Speed does not depend on the
values, so AlexNet uses random 32x32x3 images; Location uses its real
members.

A whole AlexNet epoch of the slow paths is too long to repeat on 2 CPU
cores, so ``--steps N`` times a fixed number of steps instead: the training
set becomes ``N * batch_size`` examples (one timed "epoch" is exactly ``N``
steps of every path) and the untimed warm-up round runs only
``--warmup-steps`` steps (default 1) of each path, enough to trace and
compile its train step. Since an epoch is ``n // batch_size`` such steps,
the ratio of these fixed-step times is the ratio of epoch times at that
batch size. ``--agree`` also checks with zero noise and a huge clip that each DP
path's first step equals plain SGD's (max abs weight difference).

Usage:
  python bench/dpsgd_tfp_speed.py --out docs/results/dpsgd_tfp_speed   # ~10 min, 2 cores
  python bench/dpsgd_tfp_speed.py --quick          # tiny sizes, 1 round (CI smoke test)
  python bench/dpsgd_tfp_speed.py --models alexnet --steps 3 --batch-size 64 --rounds 3 \
      --paths plain vectorized fast_clipping    # AlexNet, 3 timed steps per path and round
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402

PATHS = ("plain", "microbatched", "vectorized", "fast_clipping")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run (< 2 min)")
    p.add_argument("--models", nargs="+", default=None, choices=("location", "alexnet"))
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (after one warm-up)")
    p.add_argument("--members", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None,
                   help="default 128 (Location), 100 (AlexNet, the paper's)")
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--steps", type=int, default=None,
                   help="time this many steps per path and round (sets --members to "
                        "steps * batch size) instead of a whole epoch")
    p.add_argument("--warmup-steps", type=int, default=1,
                   help="with --steps: steps of the untimed warm-up round (default 1)")
    p.add_argument("--agree", action="store_true", help="also the zero-noise one-step check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.models = args.models or ["location", "alexnet"]
    args.rounds = args.rounds or (1 if args.quick else 5)
    if args.steps is not None and (args.steps < 1 or args.warmup_steps < 1
                                   or args.members is not None):
        p.error("--steps and --warmup-steps need positive counts, and no --members")
    return args


def batch_size_for(model_name, args):
    if args.batch_size:
        return args.batch_size
    if args.quick:
        return 32 if model_name == "location" else 10
    return 128 if model_name == "location" else 100


def data_for(model_name, args):
    rng = np.random.default_rng(args.seed)
    members = args.members
    if args.steps is not None:
        members = args.steps * batch_size_for(model_name, args)
    if model_name == "location":
        from keras_mi.data import load_dataset
        x, y = load_dataset("location", data_dir=args.data_dir or _common.default_data_dir(),
                            download=False)
        n = members or (64 if args.quick else 1000)
        idx = rng.permutation(len(x))[:n]
        return x[idx].astype("float32"), y[idx].astype("int64"), (446,), 30
    n = members or (20 if args.quick else 1000)
    x = rng.random((n, 32, 32, 3), dtype="float32")
    return x, rng.integers(0, 10, n).astype("int64"), (32, 32, 3), 10


def build(path, arch, input_shape, num_classes, seed, clip=1.0, noise=1.0, lr=0.05):
    """The compiled tf-keras model of one path."""
    import tf_keras

    from keras_mi._compat import import_tf_privacy
    from keras_mi.baselines.dpsgd_worker import dp_sequential
    from keras_mi.models import build_model

    model = build_model(arch, input_shape, num_classes, flavor="tf_keras", seed=seed)
    per_example = tf_keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf_keras.losses.Reduction.NONE)
    mean = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if path == "fast_clipping":  # what dpsgd.tf_privacy_optimizer=fast_clipping trains
        model = dp_sequential(model, clip, noise)
        model.compile(optimizer=tf_keras.optimizers.SGD(lr), loss=mean)
        return model, ("fast_clipping" if model._enable_fast_peg_computation  # noqa: SLF001
                       else "dp_model_vmap")
    if path == "plain":
        model.compile(optimizer=tf_keras.optimizers.SGD(lr), loss=mean)
        return model, path
    if path == "microbatched":
        opt = import_tf_privacy("privacy.optimizers.dp_optimizer_keras").DPKerasSGDOptimizer(
            l2_norm_clip=clip, noise_multiplier=noise, num_microbatches=None, learning_rate=lr)
    else:
        vec = import_tf_privacy("privacy.optimizers.dp_optimizer_keras_vectorized")
        opt = vec.VectorizedDPKerasSGDOptimizer(l2_norm_clip=clip, noise_multiplier=noise,
                                                num_microbatches=None, learning_rate=lr)
    model.compile(optimizer=opt, loss=per_example)
    return model, path


def timed_epochs(args, model_name):
    import tensorflow as tf

    x, y, shape, classes = data_for(model_name, args)
    arch = "mlp_tanh" if model_name == "location" else "alexnet"
    batch = batch_size_for(model_name, args)
    models, labels = {}, {}
    for path in args.paths:
        models[path], labels[path] = build(path, arch, shape, classes, args.seed)
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=args.seed)
               .batch(batch, drop_remainder=True))
    # --steps: the warm-up round runs only a few steps (same shapes, so the
    # traced train function is reused by the timed rounds).
    warmup = dataset.take(args.warmup_steps) if args.steps is not None else dataset
    times = {p: [] for p in args.paths}
    for r in range(args.rounds + 1):
        order = args.paths[r % len(args.paths):] + args.paths[:r % len(args.paths)]
        for path in order:
            t0 = time.perf_counter()
            models[path].fit(warmup if r == 0 else dataset, epochs=1, verbose=0)
            times[path].append(time.perf_counter() - t0)
        _common.stamp(f"  {model_name} round {r}: " + ", ".join(
            f"{p} {times[p][-1]:.2f}s" for p in args.paths))
    timed = {p: t[1:] for p, t in times.items()}  # round 0 traces/compiles
    base = _common.median(timed["plain"]) if "plain" in timed else None
    steps = len(x) // batch
    return {"architecture": arch, "members": len(x), "batch_size": batch,
            "steps_per_timed_epoch": steps,
            "median_step_s": {p: _common.median(t) / steps for p, t in timed.items()},
            "per_round_ratio_to_plain": ({p: [a / b for a, b in zip(t, timed["plain"])]
                                          for p, t in timed.items()} if base else {}),
            "labels": labels, "epoch_times_s": timed,
            "median_s": {p: _common.median(t) for p, t in timed.items()},
            "ratio_to_plain": ({p: _common.median(t) / base for p, t in timed.items()}
                               if base else {})}


def agreement(args, model_name):
    """Zero noise, clip 1e6: max |w_dp - w_plain| after one step on the same batch."""
    x, y, shape, classes = data_for(model_name, args)
    arch = "mlp_tanh" if model_name == "location" else "alexnet"
    xb, yb = x[:32], y[:32]
    weights = {}
    for path in args.paths:
        model, _ = build(path, arch, shape, classes, args.seed, clip=1e6, noise=0.0)
        model.fit(xb, yb, batch_size=32, epochs=1, shuffle=False, verbose=0)
        weights[path] = model.get_weights()
    ref = weights["plain"]
    return {p: float(max(np.max(np.abs(a - b)) for a, b in zip(w, ref)))
            for p, w in weights.items() if p != "plain"}


def main(argv=None):
    args = parse_args(argv)
    if "plain" not in args.paths:
        args.paths = ["plain"] + args.paths
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="dpsgd_tfp_speed_"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = {"machine": _common.machine_info(), "args": vars(args), "models": {}}
    for name in args.models:
        _common.stamp(f"{name}: {args.rounds} timed rounds of {args.paths}")
        report["models"][name] = timed_epochs(args, name)
        if args.agree:
            report["models"][name]["max_abs_weight_diff_zero_noise"] = agreement(args, name)
    report["wall_time_s"] = time.perf_counter() - start
    rows = []
    for name, m in report["models"].items():
        for p in args.paths:
            rows.append([name, m["architecture"], m["batch_size"],
                         m["steps_per_timed_epoch"], m["labels"][p],
                         f"{m['median_s'][p]:.3f}", f"{m['median_step_s'][p]:.3f}",
                         f"{m['ratio_to_plain'][p]:.2f}x",
                         f"{m.get('max_abs_weight_diff_zero_noise', {}).get(p, float('nan')):.1e}"
                         if p != "plain" else "–"])
    text = (f"# TF-Privacy DP-SGD paths vs a plain tf-keras epoch\n\n"
            f"{report['machine']['date_utc']}, {report['machine']['cpu_count']} CPU cores, "
            f"{args.rounds} interleaved rounds after an untimed warm-up round"
            + (f" of {args.warmup_steps} step(s)" if args.steps is not None else "")
            + ", σ = 1, C = 1. A timed epoch is `steps` steps"
            + (" (--steps: the epoch ratio at this batch)" if args.steps is not None else "")
            + ".\n\n"
            + _common.markdown_table(["data", "model", "batch", "steps", "path",
                                      "median epoch s", "median step s", "× plain",
                                      "zero-noise step diff"], rows) + "\n")
    _common.write_json_atomic(out / "dpsgd_tfp_speed.json", report)
    _common.write_text_atomic(out / "dpsgd_tfp_speed.md", text)
    print(text)
    return report


if __name__ == "__main__":
    main()
