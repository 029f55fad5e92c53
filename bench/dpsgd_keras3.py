"""DP-SGD on Keras 3 / JAX: epoch time against a plain Keras epoch on Location.

Trains the paper's MLP-tanh (1024-512-256, 446 features, 30 classes) on
Location members with :func:`keras_mi.baselines.dpsgd_keras.train_dpsgd_keras`
(Poisson batches of expected size 128 padded to a fixed cap, per-example
clipping, Gaussian noise) and, between every two DP epochs, one plain epoch
of an identical model with ``model.fit`` (shuffled batches of 128, same SGD
settings), so every DP epoch is timed next to a plain one. The first epoch
of each (compilation) is excluded; the reported number is the ratio of the
median epoch times. Runs with ``KERAS_BACKEND=jax`` and never imports
TensorFlow (so it also runs on the GPU machine).

Usage:
  python bench/dpsgd_keras3.py            # 2,500 members, 12 timed rounds
  python bench/dpsgd_keras3.py --quick    # 640 members, 3 timed rounds (< 1 min)
  python bench/dpsgd_keras3.py --per-example vmap   # the generic vmap path

Writes ``dpsgd_keras3.json`` and ``dpsgd_keras3.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run (< 1 min)")
    p.add_argument("--members", type=int, default=None, help="training set size")
    p.add_argument("--rounds", type=int, default=None, help="timed DP/plain epoch pairs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--architecture", default="mlp_tanh",
                   help="e.g. linear (the tuned DP row: --batch-size 1000 --members 1000)")
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--noise-multiplier", type=float, default=1.0)
    p.add_argument("--l2-norm-clip", type=float, default=1.0)
    p.add_argument("--per-example", choices=("auto", "vmap", "dense"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="folder for the JSON/markdown results")
    args = p.parse_args(argv)
    args.members = args.members or (640 if args.quick else 2500)
    args.rounds = args.rounds or (3 if args.quick else 12)
    return args


def load_members(args):
    from keras_mi.data import load_dataset
    data_dir = args.data_dir or _common.default_data_dir()
    x, y = load_dataset("location", data_dir=data_dir, download=False)
    idx = np.random.default_rng(args.seed).permutation(len(x))
    members, test = idx[:args.members], idx[args.members:args.members + 1000]
    return (x[members].astype("float32"), y[members].astype("int64"),
            x[test].astype("float32"), y[test].astype("int64"))


def main(argv=None):
    args = parse_args(argv)
    import keras

    from keras_mi.baselines.dpsgd_keras import train_dpsgd_keras
    from keras_mi.models import build_model

    start = time.perf_counter()
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="dpsgd_keras3_"))
    out.mkdir(parents=True, exist_ok=True)
    x, y, x_test, y_test = load_members(args)
    n, d = x.shape
    _common.stamp(f"Location: {n} members, {d} features, batch {args.batch_size}, "
                  f"{args.rounds} timed rounds, backend {keras.backend.backend()}; out {out}")

    plain = build_model(args.architecture, (d,), 30, seed=args.seed)
    plain.compile(optimizer=keras.optimizers.SGD(args.learning_rate, momentum=args.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain_times = []

    def plain_epoch():
        t0 = time.perf_counter()
        plain.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0)
        plain_times.append(time.perf_counter() - t0)

    plain_epoch()  # compiles the plain train step (excluded below)

    def after_dp_epoch(epoch, logs):
        plain_epoch()
        _common.stamp(f"  round {epoch}: DP {logs['epoch_time_s']:.3f}s "
                      f"plain {plain_times[-1]:.3f}s loss {logs['loss']:.3f}")

    model = build_model(args.architecture, (d,), 30, seed=args.seed)
    result = train_dpsgd_keras(
        model, x, y, noise_multiplier=args.noise_multiplier, l2_norm_clip=args.l2_norm_clip,
        batch_size=args.batch_size, epochs=args.rounds + 1, learning_rate=args.learning_rate,
        momentum=args.momentum, sampling="poisson", per_example=args.per_example,
        seed=args.seed, on_epoch_end=after_dp_epoch)
    dp_times = result.epoch_time_s[1:]           # first DP epoch compiles
    plain_timed = plain_times[2:]                # warm-up and the round-0 neighbour
    ratio = _common.median(dp_times) / _common.median(plain_timed)

    def accuracy(m):
        return float(np.mean(np.argmax(m.predict(x_test, verbose=0, batch_size=1000), 1)
                             == y_test))

    report = {"machine": _common.machine_info(), "args": vars(args),
              "per_example_method": result.per_example_method,
              "padded_batch_size": result.padded_batch_size,
              "mean_batch_size": float(np.mean(result.batch_sizes)),
              "overflow_steps": result.overflow_steps,
              "steps_per_epoch": n // args.batch_size,
              "epsilon": result.epsilon, "delta": result.delta,
              "sampling_assumption": result.privacy.sampling_assumption,
              "dp_epoch_times_s": dp_times, "plain_epoch_times_s": plain_timed,
              "epoch_time_ratio_dp_over_plain": ratio,
              "dp_test_accuracy": accuracy(model), "plain_test_accuracy": accuracy(plain),
              "wall_time_s": time.perf_counter() - start}
    m = report["machine"]
    text = (f"# DP-SGD (Keras 3 / JAX) vs plain epoch on Location ({args.architecture}, {n} "
            f"members, "
            f"batch {args.batch_size})\n\n"
            f"{m['date_utc']}, {m['cpu_count']} CPU cores, devices {m.get('jax_devices')}; "
            f"per-example path `{result.per_example_method}`, Poisson batches "
            f"(mean {report['mean_batch_size']:.1f}) padded to {result.padded_batch_size}, "
            f"σ={args.noise_multiplier}, C={args.l2_norm_clip}; ε={result.epsilon:.2f} "
            f"(δ={result.delta:g}) after {result.steps} steps.\n\n"
            f"Epoch time DP / plain (median of {len(dp_times)} alternating rounds, first "
            f"epoch excluded): **{ratio:.2f}x** (DP {_common.median(dp_times):.3f}s, plain "
            f"{_common.median(plain_timed):.3f}s). Test accuracy DP "
            f"{report['dp_test_accuracy']:.3f}, plain {report['plain_test_accuracy']:.3f} "
            f"({args.rounds + 1} vs {len(plain_times)} epochs).\n")
    _common.write_json_atomic(out / "dpsgd_keras3.json", report)
    _common.write_text_atomic(out / "dpsgd_keras3.md", text)
    print(text)
    _common.stamp(f"done in {report['wall_time_s']:.0f}s; results in {out}")
    return report


if __name__ == "__main__":
    main()
