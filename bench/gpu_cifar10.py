"""The paper's CIFAR-10 setting on a (TensorFlow-free) GPU: defenses, attacks, cost.

Trains the paper's CIFAR AlexNet on ``--members`` CIFAR-10 images once per
defense (``none``, ``mixup``, ``mmd``, ``mmd+mixup``), attacks each trained
model with `keras_mi.attacks.run` and reports train/test accuracy, the
attacks' AUC / best accuracy / TPR at low FPR, and the fit wall time per
defense as a ratio over ``none``.

Meant for ``KERAS_BACKEND=jax`` on a machine WITHOUT TensorFlow: numpy arrays
in, no tf.data. Per epoch a background thread prepares the next epoch's
arrays while the current one trains: a permutation, random crop (4-pixel
zero padding) + horizontal flip on uint8 (grouped numpy gathers, no
per-image loop), per-channel standardization, and for the mixup defenses
per-batch mixup on the arrays (one Beta(α, α) weight per batch, partners
permuted within the batch, labels mixed likewise, as
`keras_mi.layers.MixUp` does by default). One `model.fit` call runs all
epochs over a `keras.utils.PyDataset` that serves the prepared arrays.

Recipe (paper): 10,000 members, SGD lr 0.01 momentum 0.9 weight decay 1e-5
(Keras' decoupled decay), batch 100, 160 epochs with lr/10 at 50% and 75% of
the epochs (80 and 120), λ = 3, σ = 1, α = 1. The reference (MMD
validation) set, the non-members (attacked next to the members) and the
test set each have ``--members`` images drawn from the rest of the pool.

After every defense, ``report.json`` and ``report.md`` in ``--out`` are
rewritten atomically, so a run cut by a time limit keeps the finished
defenses; ``--resume`` skips defenses already in ``report.json``.

Usage:
  KERAS_BACKEND=jax python bench/gpu_cifar10.py --data-dir DIR --out runs/gpu
  python bench/gpu_cifar10.py --quick --out /tmp/q   # CPU smoke run (JAX on CPU)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402

if importlib.util.find_spec("keras_mi") is None:
    # Run from a checkout without installing keras-mi (e.g. on the GPU box).
    sys.path.append(str(_common.REPO_ROOT))

DEFENSES = ("none", "mixup", "mmd", "mmd+mixup")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke settings: 200 members, 2 epochs (unless overridden).")
    p.add_argument("--out", default="runs/gpu_cifar10", help="output folder")
    p.add_argument("--data-dir", default=None,
                   help="folder with cifar10-jpeg.tar.gz (default: KERAS_MI_DATA_DIR)")
    p.add_argument("--cache-dir", default=None, help="keras_mi data cache folder")
    p.add_argument("--members", type=int, default=None, help="members (default 10000)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 160)")
    p.add_argument("--defenses", default=",".join(DEFENSES),
                   help=f"comma-separated subset of {','.join(DEFENSES)}")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--mmd-weight", type=float, default=3.0)
    p.add_argument("--mmd-sigma", type=float, default=1.0)
    p.add_argument("--mmd-schedule", default="summed", choices=("summed", "paper"))
    p.add_argument("--mixup-alpha", type=float, default=1.0)
    p.add_argument("--no-augment", action="store_true", help="skip crop+flip")
    p.add_argument("--eval-every", type=int, default=20,
                   help="print test accuracy every N epochs (0: never)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="keep defenses already in OUT/report.json and skip them")
    p.add_argument(
        "--from-outputs",
        action="store_true",
        help="train nothing: re-run the attacks on OUT/outputs_*.npz and rewrite the report",
    )
    args = p.parse_args(argv)
    if args.members is None:
        args.members = 200 if args.quick else 10000
    if args.epochs is None:
        args.epochs = 2 if args.quick else 160
    args.defenses = [d.strip() for d in args.defenses.split(",") if d.strip()]
    bad = [d for d in args.defenses if d not in DEFENSES]
    if bad or not args.defenses:
        p.error(f"--defenses: unknown {bad}; choose from {', '.join(DEFENSES)}")
    if args.members < args.batch_size:
        p.error(f"--members ({args.members}) must be at least --batch-size ({args.batch_size})")
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    return args


# ---- data ------------------------------------------------------------------


def load_splits(args):
    """Loads CIFAR-10 (Pillow decode, no TensorFlow) and draws the four splits.

    Returns ``(splits, raw_members, normalize, fingerprint)``: ``splits`` maps
    each role to standardized float32 images and int labels; ``raw_members``
    are the members as uint8 (what the augmentation thread reads: 4x less
    memory traffic than float32); ``normalize`` maps uint8 images to the
    standardized floats the model sees.
    """
    from keras_mi.data import MembershipSplit, load_dataset

    data_dir = args.data_dir or _common.default_data_dir()
    x, y = load_dataset("cifar10", data_dir=data_dir, cache_dir=args.cache_dir,
                        download=data_dir is None)
    n = args.members
    split = MembershipSplit.create(x, y, members=n, reference=n, non_members=n,
                                   test=n, seed=args.seed)
    # The JPEG pixels are k/255, so uint8 holds them exactly.
    raw = {role: (np.rint(x[getattr(split, role)] * 255).astype(np.uint8),
                  y[getattr(split, role)].astype(np.int64))
           for role in ("members", "reference", "non_members", "test")}
    normalize = Standardizer(raw["members"][0])
    splits = {role: (normalize(xr), yr) for role, (xr, yr) in raw.items()}
    fingerprint = split.fingerprint() if callable(split.fingerprint) else split.fingerprint
    return splits, raw["members"], normalize, fingerprint


class Standardizer:
    """uint8 images -> float32 standardized per channel with the members' statistics."""

    def __init__(self, images_u8):
        mean = images_u8.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0
        std = images_u8.std(axis=(0, 1, 2), dtype=np.float64) / 255.0
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)
        self.shift = (-mean / std).astype(np.float32)

    def __call__(self, images_u8):
        out = images_u8.astype(np.float32)
        out *= self.scale
        out += self.shift
        return out


def crop_flip(x_padded, index, rng, size, pad):
    """Random ``size`` crops of the zero-padded images ``x_padded[index]`` + random flips.

    There are only ``(2 * pad + 1) ** 2 * 2`` distinct (offset, flip) cases, so
    images are grouped by case and each group is one slice + gather: no
    per-image Python loop.
    """
    n = len(index)
    out = np.empty((n, size, size, x_padded.shape[3]), x_padded.dtype)
    side = 2 * pad + 1
    case = (rng.integers(0, side, n) * side + rng.integers(0, side, n)) * 2 + (rng.random(n) < 0.5)
    order = np.argsort(case, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(case[order])) + 1):
        offset, flip = divmod(int(case[group[0]]), 2)
        dy, dx = divmod(offset, side)
        window = x_padded[index[group], dy:dy + size, dx:dx + size]
        out[group] = window[:, :, ::-1] if flip else window
    return out


def mixup_batches(x, y_soft, batch_size, alpha, rng):
    """Per-batch mixup: one λ ~ Beta(α, α) per batch, partners permuted within it."""
    x_out, y_out = np.empty_like(x), np.empty_like(y_soft)
    for lo in range(0, len(x), batch_size):
        hi = min(lo + batch_size, len(x))
        perm = lo + rng.permutation(hi - lo)
        lam = np.float32(rng.beta(alpha, alpha))
        np.multiply(x[lo:hi], lam, out=x_out[lo:hi])
        x_out[lo:hi] += (1 - lam) * x[perm]
        y_out[lo:hi] = lam * y_soft[lo:hi] + (1 - lam) * y_soft[perm]
    return x_out, y_out


class EpochFeeder:
    """Builds epoch arrays in a background thread, one epoch ahead of training.

    Each epoch: a fresh permutation of the members, crop+flip (on uint8),
    standardization, and per-batch mixup when ``mixup_alpha`` is set.
    """

    def __init__(self, x_u8, y, num_classes, batch_size, mixup_alpha, augment, normalize,
                 seed, pad=4):
        self.augment, self.size, self.pad = augment, x_u8.shape[1], pad
        self.x = np.pad(x_u8, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if augment else x_u8
        self.y_soft = np.eye(num_classes, dtype=np.float32)[y]
        self.batch_size, self.mixup_alpha, self.normalize = batch_size, mixup_alpha, normalize
        self.rng = np.random.default_rng(seed)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.next = self.pool.submit(self._build)

    def _build(self):
        perm = self.rng.permutation(len(self.y_soft))
        if self.augment:
            x = crop_flip(self.x, perm, self.rng, self.size, self.pad)
        else:
            x = self.x[perm]
        x, y = self.normalize(x), self.y_soft[perm]
        if self.mixup_alpha:
            x, y = mixup_batches(x, y, self.batch_size, self.mixup_alpha, self.rng)
        return x, y

    def get(self):
        arrays = self.next.result()
        self.next = self.pool.submit(self._build)
        return arrays

    def close(self):
        self.next.cancel()
        self.pool.shutdown(wait=True)


# ---- one defense ------------------------------------------------------------


def train_one(defense, splits, raw_members, normalize, args):
    """Trains the target under ``defense``; returns (inner model, timing dict)."""
    import keras

    from keras_mi.models import build_model

    x_m, y_m = splits["members"]
    num_classes = int(max(int(v[1].max()) for v in splits.values())) + 1
    keras.utils.set_random_seed(args.seed)
    inner = build_model("alexnet", x_m.shape[1:], num_classes, seed=args.seed)
    model = inner
    if "mmd" in defense:
        from keras_mi.training import MMDModel
        model = MMDModel(inner, reference=splits["reference"], weight=args.mmd_weight,
                         sigma=args.mmd_sigma, schedule=args.mmd_schedule)
    steps = -(-len(x_m) // args.batch_size)
    boundaries = [int(args.epochs * 0.5) * steps, int(args.epochs * 0.75) * steps]
    lr = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, [args.lr, args.lr / 10, args.lr / 100])
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9, weight_decay=1e-5),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        # The paper schedule reads the train accuracy to decide MMD passes.
        metrics=["accuracy"] if args.mmd_schedule == "paper" and model is not inner else None,
    )
    feeder = EpochFeeder(raw_members[0], raw_members[1], num_classes, args.batch_size,
                         args.mixup_alpha if "mixup" in defense else 0.0,
                         augment=not args.no_augment, normalize=normalize, seed=args.seed + 1)
    progress = EpochProgress(defense, args.epochs, inner, splits["test"], args.eval_every)
    start = time.perf_counter()
    try:
        model.fit(EpochArrays(feeder, args.batch_size, steps), epochs=args.epochs, verbose=0,
                  callbacks=[progress])
    finally:
        feeder.close()
    fit_s = time.perf_counter() - start
    epoch_s = progress.times
    steady = epoch_s[1:] or epoch_s
    timing = {"fit_seconds": fit_s, "epoch_seconds_median": _common.median(steady),
              "first_epoch_seconds": epoch_s[0], "epochs": len(epoch_s),
              "eval_seconds": progress.eval_seconds}
    return inner, timing


def EpochArrays(feeder, batch_size, steps):  # noqa: N802 (a class factory)
    """A `keras.utils.PyDataset` serving the feeder's current epoch, batch by batch.

    Slicing happens in the main thread (cheap views); the next epoch's arrays
    come from the feeder's thread at `on_epoch_end`.
    """
    import keras

    class _EpochArrays(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.x, self.y = feeder.get()

        def __len__(self):
            return steps

        def __getitem__(self, i):
            lo = i * batch_size
            return self.x[lo:lo + batch_size], self.y[lo:lo + batch_size]

        def on_epoch_end(self):
            self.x, self.y = feeder.get()

    return _EpochArrays()


def EpochProgress(defense, epochs, inner, test, eval_every):  # noqa: N802
    """Callback: per-epoch time stamp, loss and wall time; test accuracy every N epochs."""
    import keras

    class _EpochProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.eval_seconds = [], 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            self.times.append(time.perf_counter() - self._t0)
            logs["epoch_time_s"] = self.times[-1]
            msg = (
                f"{defense} epoch {epoch + 1}/{epochs}: loss={float(logs.get('loss', np.nan)):.4f}"
                f" {self.times[-1]:.2f}s"
            )
            if "mmd" in logs:
                msg += f" mmd={float(logs['mmd']):.4f}"
            if "mmd_pass" in logs:
                msg += f" mmd_pass={int(logs['mmd_pass'])}"
            if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                t0 = time.perf_counter()
                acc = accuracy(inner, *test)
                self.eval_seconds += time.perf_counter() - t0
                logs["test_accuracy"] = acc
                msg += f" test_acc={acc:.4f}"
            _common.stamp(msg)

    return _EpochProgress()


def accuracy(model, x, y):
    logits = np.asarray(model.predict(x, batch_size=1000, verbose=0))
    return float(np.mean(logits.argmax(axis=1) == y))


def outputs_path(out_dir, defense):
    return pathlib.Path(out_dir) / f"outputs_{defense.replace('+', '_')}.npz"


def evaluate(defense, inner, splits, out_dir):
    """Saves the model's outputs (logits per split), then attacks them."""
    from keras_mi.outputs import ModelOutputs

    outputs = ModelOutputs.from_model(inner, batch_size=1000, **splits)
    outputs.save_npz(outputs_path(out_dir, defense))
    return attack(outputs)


def attack(outputs):
    """Accuracies + every default attack of `keras_mi.attacks.run` (numpy only).

    An attack failure (e.g. a missing optional dependency on the GPU box) is
    recorded, not raised: the saved outputs can be attacked later with
    ``--from-outputs``.
    """
    acc = {role: float(np.mean(outputs.logits[role].argmax(1) == outputs.labels[role]))
           for role in outputs.logits}
    entry = {"train_acc": acc["members"], "test_acc": acc["test"],
             "gap": acc["members"] - acc["test"], "attacks": []}
    t0 = time.perf_counter()
    try:
        from keras_mi import attacks
        report = attacks.run(outputs)
    except Exception as err:  # noqa: BLE001 -- keep training the other defenses
        entry["attack_error"] = f"{type(err).__name__}: {err}"
        _common.stamp(f"attacks failed ({entry['attack_error']}); outputs are saved")
        return entry
    entry["attack_seconds"] = time.perf_counter() - t0
    for r in report.results:
        if r.is_membership:
            entry["attacks"].append({
                "name": r.name, "auc": float(r.auc), "best_accuracy": float(r.best_accuracy),
                "advantage": float(r.advantage),
                "tpr_at_fpr": {repr(float(k)): float(v) for k, v in r.tpr_at_fpr.items()}})
    return entry


def reattack(out_dir):
    """``--from-outputs``: recompute accuracies and attacks from the saved outputs."""
    from keras_mi.outputs import ModelOutputs

    path = pathlib.Path(out_dir) / "report.json"
    report = json.loads(path.read_text())
    for entry in report["defenses"]:
        entry.pop("attack_error", None)
        entry.update(attack(ModelOutputs.load_npz(outputs_path(out_dir, entry["defense"]))))
        _common.stamp(f"{entry['defense']}: re-attacked")
    write_report(out_dir, report)
    print(render_markdown(report))
    return 0


# ---- report -----------------------------------------------------------------


def write_report(out_dir, report):
    _common.write_json_atomic(out_dir / "report.json", report)
    _common.write_text_atomic(out_dir / "report.md", render_markdown(report))


def render_markdown(report):
    cfg, entries = report["config"], report["defenses"]
    lines = [
        f"# CIFAR-10 (AlexNet): defenses vs attacks ({report['machine']['keras_backend']} backend)",
        "",
        f"{cfg['members']} members, {cfg['epochs']} epochs, batch {cfg['batch_size']}, "
        f"SGD lr {cfg['lr']} (÷10 at 50%/75%) momentum 0.9 wd 1e-5, "
        f"λ={cfg['mmd_weight']} σ={cfg['mmd_sigma']} ({cfg['mmd_schedule']}), "
        f"α={cfg['mixup_alpha']}, augmentation "
        f"{'none' if cfg['no_augment'] else 'crop+flip'}, seed {cfg['seed']}.",
        f"Machine: {report['machine'].get('platform', '?')}, "
        f"devices {report['machine'].get('jax_devices', '?')}, "
        f"keras {report['machine'].get('keras', '?')}, "
        f"jax {report['machine'].get('jax', '-')}; {report['machine']['date_utc']}.",
        "",
    ]
    base = next((e for e in entries if e["defense"] == "none"), None)
    rows = []
    for e in entries:
        ratio = (e["epoch_seconds_median"] / base["epoch_seconds_median"]) if base else float("nan")
        best = max(e["attacks"], key=lambda a: a["auc"]) if e["attacks"] else None
        rows.append([e["defense"], e["train_acc"], e["test_acc"], e["gap"],
                     best["name"] if best else "-", best["auc"] if best else float("nan"),
                     max((a["best_accuracy"] for a in e["attacks"]), default=float("nan")),
                     max((a["tpr_at_fpr"].get("0.001", float("nan")) for a in e["attacks"]),
                         default=float("nan")),
                     e["fit_seconds"], e["epoch_seconds_median"], ratio])
    lines.append(_common.markdown_table(
        ["defense", "train acc", "test acc", "gap", "strongest attack (AUC)", "max AUC",
         "max attack acc", "max TPR@0.1%FPR", "fit s", "epoch s (median)", "epoch ratio vs none"],
        rows))
    for e in entries:
        lines += ["", f"## {e['defense']}", ""]
        if e.get("attack_error"):
            lines += [f"Attacks failed: {e['attack_error']} (re-run with --from-outputs).", ""]
        lines.append(_common.markdown_table(
            ["attack", "AUC", "best acc", "TPR@1%FPR", "TPR@0.1%FPR"],
            [[a["name"], a["auc"], a["best_accuracy"], a["tpr_at_fpr"].get("0.01", float("nan")),
              a["tpr_at_fpr"].get("0.001", float("nan"))] for a in e["attacks"]]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    out_dir = pathlib.Path(args.out)
    if args.from_outputs:
        return reattack(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported
    import keras

    _common.stamp(f"keras {keras.__version__}, backend {keras.backend.backend()}, "
                  f"defenses {args.defenses}, {args.members} members, {args.epochs} epochs")
    if keras.backend.backend() == "jax":
        import jax
        _common.stamp(f"jax {jax.__version__} devices: {jax.devices()}")
    splits, raw_members, normalize, fingerprint = load_splits(args)
    _common.stamp("data ready: " + ", ".join(f"{k}={len(v[1])}" for k, v in splits.items()))
    config = {
        k: v for k, v in vars(args).items() if k not in ("out", "data_dir", "cache_dir", "resume")
    }
    report = {"config": config, "split_fingerprint": fingerprint,
              "machine": _common.machine_info(), "defenses": []}
    path = out_dir / "report.json"
    if args.resume and path.exists():
        old = json.loads(path.read_text())
        if old.get("split_fingerprint") == fingerprint:
            report["defenses"] = [e for e in old["defenses"] if e["defense"] in args.defenses]
    done = {e["defense"] for e in report["defenses"]}
    for defense in args.defenses:
        if defense in done:
            _common.stamp(f"{defense}: already in {path}, skipped")
            continue
        inner, timing = train_one(defense, splits, raw_members, normalize, args)
        entry = {"defense": defense, **timing, **evaluate(defense, inner, splits, out_dir)}
        report["defenses"].append(entry)
        report["defenses"].sort(key=lambda e: args.defenses.index(e["defense"]))
        report["machine"] = _common.machine_info()
        write_report(out_dir, report)
        _common.stamp(f"{defense}: train {entry['train_acc']:.4f} test {entry['test_acc']:.4f} "
                      f"fit {entry['fit_seconds']:.1f}s; wrote {path}")
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
