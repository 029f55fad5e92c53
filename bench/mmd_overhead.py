"""Fit-time cost of the MMD regularizer: MMDModel (summed) vs plain Keras fit.

Same model (the paper's MLP-tanh 1024-512-256 on Location's 446 features,
30 classes), same data, Adam, batch 128. Each configuration is its own
model; one timed unit is one ``fit(epochs=1)`` after an untimed warm-up fit
(tracing). Configurations run interleaved, the medians are compared:

* ``plain``: the wrapped model compiled and fit directly;
* ``mmd``: ``MMDModel(schedule="summed")``, reference draws without
  replacement inside a batch (the default);
* ``mmd_replace``: the same with i.i.d. draws (``replace=True``).

The floor is one extra forward pass of the reference batch (~1.33x). The
paper's PyTorch code costs ~2.4x.

  python bench/mmd_overhead.py --quick   # < 2 min
  python bench/mmd_overhead.py           # more rounds
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import default_data_dir, interleaved, summarize  # noqa: E402


def location_or_synthetic(data_dir):
    """Location from the data layer, else random binary data of its shape."""
    try:
        from keras_mi.data import load_dataset

        return load_dataset("location", data_dir=data_dir, download=False), "location"
    except Exception as err:  # no data here: same shape, random content
        print(f"Location not available ({err}); using synthetic data of its shape.")
        rng = np.random.default_rng(0)
        x = rng.integers(0, 2, (5010, 446)).astype("float32")
        return (x, rng.integers(0, 30, 5010)), "synthetic"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 2 min)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--train", type=int, default=2000, help="training rows")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 15)

    import keras

    from keras_mi.models import build_model
    from keras_mi.training import MMDModel

    (x, y), source = location_or_synthetic(args.data_dir or default_data_dir())
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, ref = order[: args.train], order[args.train : args.train + 1000]
    xt, yt, xr, yr = x[train], y[train], x[ref], y[ref]
    num_classes = int(y.max()) + 1
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def make(kind):
        net = build_model("mlp_tanh", (x.shape[1],), num_classes, seed=0)
        if kind == "plain":
            model = net
        else:
            model = MMDModel(
                net, reference=(xr, yr), weight=3.0, seed=0, replace=(kind == "mmd_replace")
            )
        model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
        model.fit(xt, yt, batch_size=args.batch_size, epochs=1, verbose=0)  # trace + warm caches
        return lambda: model.fit(xt, yt, batch_size=args.batch_size, epochs=1, verbose=0)

    fns = {kind: make(kind) for kind in ("plain", "mmd", "mmd_replace")}
    print(f"data={source} train={len(yt)} reference={len(yr)} batch={args.batch_size} "
          f"backend={keras.backend.backend()} rounds={rounds}")
    times = interleaved(fns, repeats=rounds, warmup=1)
    summary = summarize(times, baseline="plain")
    base_min = summary["plain"]["min_s"]
    for name, row in summary.items():
        print(f"{name:12s} median {row['median_s']:.3f} s/epoch  ratio {row['ratio']:.3f}x   "
              f"(fastest {row['min_s']:.3f} s, ratio of fastest {row['min_s'] / base_min:.3f}x)")
    print(
        f"MMD summed / plain fit time (median of {rounds} interleaved epochs): "
        f"{summary['mmd']['ratio']:.3f}x"
    )
    return summary


if __name__ == "__main__":
    main()
