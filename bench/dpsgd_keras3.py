"""DP-SGD on Keras 3 / JAX: epoch time against a plain Keras epoch of the same model.

Trains the paper's MLP-tanh (1024-512-256, 446 features, 30 classes) on
Location members with :func:`keras_mi.baselines.dpsgd_keras.train_dpsgd_keras`
(Poisson batches of expected size 128 padded to a fixed cap, per-example
clipping, Gaussian noise) and, between every two DP epochs, one plain epoch
of an identical model with ``model.fit`` (shuffled batches of 128, same SGD
settings), so every DP epoch is timed next to a plain one. The first epoch
of each (compilation) is excluded; the reported number is the ratio of the
median epoch times. Runs with ``KERAS_BACKEND=jax`` and never imports
TensorFlow (so it also runs on the GPU machine).

``--architecture alexnet`` (or ``small_cnn``) trains the CIFAR-10 conv net
on random 32x32x3 images with 10 classes instead (speed does not depend on
the pixel values; the test accuracies are then meaningless and not
reported). A whole AlexNet epoch is too slow to repeat on 2 CPU cores, so
``--steps N`` sets the training set to ``N * batch_size`` examples: an
"epoch" is then exactly ``N`` steps of either trainer, and the ratio of
these fixed-step times is the ratio of epoch times at that batch size
(every epoch is ``n // batch_size`` such steps). ``--sampling shuffle``
uses fixed-size batches (no Poisson padding).

Usage:
  python bench/dpsgd_keras3.py            # 2,500 members, 12 timed rounds
  python bench/dpsgd_keras3.py --quick    # 640 members, 3 timed rounds (< 1 min)
  python bench/dpsgd_keras3.py --per-example vmap   # the generic vmap path
  python bench/dpsgd_keras3.py --architecture alexnet --steps 5 --batch-size 64 \
      --rounds 3 --learning-rate 0.01     # AlexNet, 5 steps per timed unit

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
                   help="e.g. linear (the tuned DP row: --batch-size 1000 --members 1000); "
                        "alexnet or small_cnn train on random 32x32x3 images")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per timed epoch: sets --members to steps * batch size")
    p.add_argument("--sampling", choices=("poisson", "shuffle"), default="poisson")
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--noise-multiplier", type=float, default=1.0)
    p.add_argument("--l2-norm-clip", type=float, default=1.0)
    p.add_argument("--per-example", choices=("auto", "vmap", "dense"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="folder for the JSON/markdown results")
    args = p.parse_args(argv)
    if args.steps is not None:
        if args.steps < 1 or args.members is not None:
            raise ValueError("--steps needs a positive count and no --members.")
        args.members = args.steps * args.batch_size
    args.members = args.members or (640 if args.quick else 2500)
    args.rounds = args.rounds or (3 if args.quick else 12)
    return args


IMAGE_ARCHITECTURES = ("alexnet", "small_cnn")


def load_members(args):
    if args.architecture in IMAGE_ARCHITECTURES:  # speed only: random CIFAR-sized images
        rng = np.random.default_rng(args.seed)
        x = rng.random((args.members + 100, 32, 32, 3), dtype="float32")
        y = rng.integers(0, 10, len(x)).astype("int64")
        return x[:args.members], y[:args.members], x[args.members:], y[args.members:]
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
    n, shape = len(x), x.shape[1:]
    images = args.architecture in IMAGE_ARCHITECTURES
    classes = 10 if images else 30
    data_name = "random 32x32x3 images" if images else "Location"
    _common.stamp(f"{data_name}: {n} members, shape {shape}, batch {args.batch_size}, "
                  f"{args.rounds} timed rounds, backend {keras.backend.backend()}; out {out}")

    plain = build_model(args.architecture, shape, classes, seed=args.seed)
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

    model = build_model(args.architecture, shape, classes, seed=args.seed)
    result = train_dpsgd_keras(
        model, x, y, noise_multiplier=args.noise_multiplier, l2_norm_clip=args.l2_norm_clip,
        batch_size=args.batch_size, epochs=args.rounds + 1, learning_rate=args.learning_rate,
        momentum=args.momentum, sampling=args.sampling, per_example=args.per_example,
        seed=args.seed, on_epoch_end=after_dp_epoch)
    dp_times = result.epoch_time_s[1:]           # first DP epoch compiles
    plain_timed = plain_times[2:]                # warm-up and the round-0 neighbour
    ratio = _common.median(dp_times) / _common.median(plain_timed)

    def accuracy(m):
        if images:  # random labels: nothing to learn
            return float("nan")
        return float(np.mean(np.argmax(m.predict(x_test, verbose=0, batch_size=1000), 1)
                             == y_test))

    report = {"machine": _common.machine_info(), "args": vars(args),
              "per_example_method": result.per_example_method,
              "padded_batch_size": result.padded_batch_size,
              "mean_batch_size": float(np.mean(result.batch_sizes)),
              "overflow_steps": result.overflow_steps,
              "steps_per_epoch": n // args.batch_size, "data": data_name,
              "step_time_ratio_note": "equal to the epoch ratio: same steps, same batch",
              "dp_step_s_median": _common.median(dp_times) / (n // args.batch_size),
              "plain_step_s_median": _common.median(plain_timed) / (n // args.batch_size),
              "epsilon": result.epsilon, "delta": result.delta,
              "sampling_assumption": result.privacy.sampling_assumption,
              "dp_epoch_times_s": dp_times, "plain_epoch_times_s": plain_timed,
              "epoch_time_ratio_dp_over_plain": ratio,
              "dp_test_accuracy": accuracy(model), "plain_test_accuracy": accuracy(plain),
              "wall_time_s": time.perf_counter() - start}
    m = report["machine"]
    batches = (f"Poisson batches (mean {report['mean_batch_size']:.1f}) padded to "
               f"{result.padded_batch_size}" if args.sampling == "poisson"
               else f"shuffled batches of {args.batch_size}")
    text = (f"# DP-SGD (Keras 3 / JAX) vs plain epoch on {data_name} ({args.architecture}, "
            f"{n} members, batch {args.batch_size}, {n // args.batch_size} steps per epoch)\n\n"
            f"{m['date_utc']}, {m['cpu_count']} CPU cores, devices {m.get('jax_devices')}; "
            f"per-example path `{result.per_example_method}`, {batches}, "
            f"σ={args.noise_multiplier}, C={args.l2_norm_clip}; ε={result.epsilon:.2f} "
            f"(δ={result.delta:g}) after {result.steps} steps.\n\n"
            f"Epoch time DP / plain (median of {len(dp_times)} alternating rounds, first "
            f"epoch excluded): **{ratio:.2f}x** (DP {_common.median(dp_times):.3f}s, plain "
            f"{_common.median(plain_timed):.3f}s; per step DP "
            f"{report['dp_step_s_median']:.3f}s, plain {report['plain_step_s_median']:.3f}s; "
            f"per-round ratios "
            f"{', '.join(f'{a / b:.2f}' for a, b in zip(dp_times, plain_timed))}). "
            + ("" if images else
               f"Test accuracy DP {report['dp_test_accuracy']:.3f}, plain "
               f"{report['plain_test_accuracy']:.3f} ({args.rounds + 1} vs {len(plain_times)} "
               f"epochs).") + "\n")
    _common.write_json_atomic(out / "dpsgd_keras3.json", report)
    _common.write_text_atomic(out / "dpsgd_keras3.md", text)
    print(text)
    _common.stamp(f"done in {report['wall_time_s']:.0f}s; results in {out}")
    return report


if __name__ == "__main__":
    main()
