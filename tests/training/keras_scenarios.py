"""Keras-user scenarios for `MMDModel`, run on the TensorFlow backend in the
test process and on JAX in a subprocess (``python keras_scenarios.py``
prints their results as JSON). Each returns plain numbers for the tests to
check. Only NumPy, Keras and keras-mi are imported here.
"""

import glob
import json
import os
import sys
import tempfile

import keras
import numpy as np

from keras_mi.training import MMDModel

FEATURES, CLASSES, SIGMA = 6, 3, 0.5


def train_data(n=60, seed=0):
    """``n`` rows, classes 0..2 in turn, one informative feature per class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    x[np.arange(n), y] += 2.0
    return x, y


def constant_reference(scale, rows_per_class=20, seed=1):
    """A reference set whose rows are identical within each class.

    Every class-matched draw then gives the same reference batch, so the
    MMD² of a batch is a fixed number (`numpy_class_mmd2`), whatever the
    sampler picks.
    """
    rng = np.random.default_rng(seed)
    centers = (scale * rng.normal(size=(CLASSES, FEATURES))).astype("float32")
    y = np.repeat(np.arange(CLASSES), rows_per_class)
    return centers[y], y


def numpy_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_class_mmd2(p, r, labels, sigma=SIGMA):
    """Biased ``Σ_c (n_c/n) MMD²(p[c], r[c])`` with ``k = exp(-d²/(2σ²))``."""
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))

    total = 0.0
    for c in np.unique(labels):
        a, b = p[labels == c], r[labels == c]
        total += len(a) / len(labels) * (k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())
    return float(total)


def _net(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(CLASSES)])


def _frozen_model(net, reference):
    """weight=0 and a zero learning rate: the outputs, hence the MMD², never change."""
    model = MMDModel(net, reference=reference, weight=0.0, sigma=SIGMA, seed=0)
    model.compile(
        keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def set_reference_after_tracing():
    """Item 1: `fit`/`evaluate` after `set_reference` use the new set."""
    x, y = train_data()
    ref_a, ref_b = constant_reference(0.5), constant_reference(4.0, seed=2)
    net = _net()
    model = _frozen_model(net, ref_a)
    n = len(y)  # one batch per epoch: the logged mmd is that batch's MMD²
    out = {"fit_a": model.fit(x, y, batch_size=n, epochs=1, verbose=0).history["mmd"][0],
           "eval_a": model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)["mmd"]}
    model.set_reference(*ref_b)
    out["fit_b"] = model.fit(x, y, batch_size=n, epochs=1, verbose=0).history["mmd"][0]
    out["eval_b"] = model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)["mmd"]

    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    evaluated = loaded.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    out["loaded_eval_none"] = evaluated["mmd"]
    loaded.set_reference(*ref_a)
    out["loaded_val_a"] = loaded.fit(x, y, batch_size=n, epochs=1, verbose=0,
                                     validation_data=(x, y)).history["val_mmd"][0]

    p = numpy_softmax(net.predict(x, verbose=0))
    for name, (xr, yr) in (("a", ref_a), ("b", ref_b)):
        centers = numpy_softmax(net.predict(xr, verbose=0))[np.searchsorted(yr, np.arange(CLASSES))]
        out["expected_" + name] = numpy_class_mmd2(p, centers[y], y)
    return out


class SubclassedNet(keras.Model):
    """A subclassed classifier: no static `output_shape`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.logits = keras.layers.Dense(CLASSES)

    def call(self, inputs):
        return self.logits(self.hidden(inputs))


def subclassed_model():
    """Item 3: `MMDModel(SubclassedNet())` trains, before and after a call."""
    x, y = train_data()
    xr, yr = train_data(seed=5)
    out = {}
    for called in (False, True):
        keras.utils.set_random_seed(0)
        net = SubclassedNet()
        if called:
            net(x[:2])
        model = MMDModel(net, reference=(xr, yr), weight=1.0, sigma=SIGMA, seed=0)
        model.compile(
            "adam",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        history = model.fit(x, y, batch_size=20, epochs=2, verbose=0).history
        out["called" if called else "uncalled"] = {"mmd": history["mmd"], "loss": history["loss"],
                                                   "num_classes": model.num_classes}
    return out


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.weights = [np.array(w) for w in self.model.get_weights()]
            raise RuntimeError("simulated interruption")


class _WeightsAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]


def backup_and_restore():
    """Item 4: `BackupAndRestore` resumes an interrupted `MMDModel.fit`."""
    x, y = train_data()
    xr, yr = train_data(seed=5)
    backup = tempfile.mkdtemp()
    model = MMDModel(_net(), reference=(xr, yr), weight=1.0, sigma=SIGMA, seed=0)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stop = _StopAfter(1)
    try:
        model.fit(x, y, batch_size=20, epochs=4, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup), stop])
    except RuntimeError as err:
        assert "simulated" in str(err)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    start = _WeightsAtStart()
    history = model.fit(x, y, batch_size=20, epochs=4, verbose=0,
                        callbacks=[keras.callbacks.BackupAndRestore(backup), start]).history
    restored = all(np.allclose(a, b) for a, b in zip(stop.weights, start.weights))
    return {"resumed_epochs": len(history["loss"]), "weights_restored": bool(restored),
            "mmd": history["mmd"]}


def tensorboard_tags():
    """Item 8: TensorBoard records ``mmd``, ``gap`` and ``val_mmd``."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    x, y = train_data()
    xr, yr = train_data(seed=5)
    log_dir = tempfile.mkdtemp()
    model = MMDModel(_net(), reference=(xr, yr), weight=1.0, sigma=SIGMA, seed=0)
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    history = model.fit(x, y, batch_size=20, epochs=2, verbose=0, validation_data=(xr, yr),
                        callbacks=[keras.callbacks.TensorBoard(log_dir)]).history
    scalars = {}
    for run in ("train", "validation"):
        acc = event_accumulator.EventAccumulator(os.path.join(log_dir, run),
                                                 size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        scalars[run] = {
            tag: [float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]
        }
    return {"history": {k: history[k] for k in ("mmd", "gap", "val_mmd")}, "scalars": scalars,
            "event_files": len(glob.glob(os.path.join(log_dir, "*", "events.out.tfevents.*")))}


SCENARIOS = {"set_reference": set_reference_after_tracing, "subclassed": subclassed_model,
             "backup_and_restore": backup_and_restore, "tensorboard": tensorboard_tags}

if __name__ == "__main__":
    results = {"backend": keras.backend.backend()}
    for name in sys.argv[1:] or SCENARIOS:
        try:
            results[name] = SCENARIOS[name]()
        except Exception as err:  # reported per scenario, so one failure does not hide the others
            results[name] = {"error": f"{type(err).__name__}: {err}"}
    print("RESULT " + json.dumps(results))
