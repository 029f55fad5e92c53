"""Child process that trains with TF-Privacy's DP-SGD on a tf-keras model.

Run as ``python -m keras_mi.baselines.dpsgd_worker <request.json>``; the
parent (:func:`keras_mi.baselines.train_dpsgd`) writes the request and reads
the results. TF-Privacy's Keras optimizers need Keras 2 (tf-keras), chosen
by ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported, which is why
this runs in its own process. Importing this module imports nothing but the
standard library and numpy; TensorFlow, tf-keras and TF-Privacy are
imported in :func:`main`.

Request (JSON): ``data`` (npz with ``x_train``, ``y_train`` and optional
``x_<split>``/``y_<split>`` for the splits of :mod:`keras_mi.outputs`),
``out_dir``, ``architecture``, ``input_shape``, ``num_classes``,
``private`` (False trains the same model with plain SGD, for timing
comparisons), ``l2_norm_clip``, ``noise_multiplier``, ``num_microbatches``
(None = per-example), ``batch_size``, ``epochs``, ``learning_rate``,
``momentum``, ``seed``, ``verbose``, ``delta``, ``accountant``,
``tf_privacy_optimizer`` (one of :data:`TF_PRIVACY_OPTIMIZERS`, default
``"microbatched"``).

The three TF-Privacy paths compute the same update (clip each example's
gradient, sum, add noise, divide by the batch size); they differ in speed:

* ``"microbatched"``: ``DPKerasSGDOptimizer`` (a per-microbatch loop);
* ``"vectorized"``: ``VectorizedDPKerasSGDOptimizer`` (``tf.vectorized_map``);
* ``"fast_clipping"``: ``DPSequential`` with TF-Privacy's default layer
  registry: per-example norms from one backward pass where every trainable
  layer is registered (Dense, Embedding), else ``DPSequential``'s own
  ``tf.vectorized_map`` over examples; ``result.json`` names which
  (``tf_privacy_path``). The step is XLA-compiled.

Writes into ``out_dir``: ``model.h5`` (tf-keras format), ``outputs.npz``
(:meth:`keras_mi.outputs.ModelOutputs.save_npz`) and ``result.json``
(history, ε, accuracies, wall and per-epoch times), all atomically.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import numpy as np

from keras_mi._atomic import atomic_write, atomic_write_text

#: TF-Privacy DP-SGD paths the worker can train with (``tf_privacy_optimizer``).
TF_PRIVACY_OPTIMIZERS = ("microbatched", "vectorized", "fast_clipping")


def _check_no_batchnorm(model) -> None:
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            raise ValueError(
                f"Layer '{layer.name}' is a BatchNormalization layer, which mixes "
                f"examples within a batch and breaks per-example gradient clipping. "
                f"Use an architecture without BatchNorm (or GroupNorm/LayerNorm).")


def _epoch_timer(tf_keras):
    class EpochTimer(tf_keras.callbacks.Callback):
        """Records the wall time of every epoch into ``logs['epoch_time_s']``."""

        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.perf_counter() - self._start
            self.times.append(elapsed)
            if logs is not None:
                logs["epoch_time_s"] = elapsed

    return EpochTimer()


def save_split_outputs(model, train, arrays, out_dir: pathlib.Path):
    """Writes ``out_dir/outputs.npz`` (the model's logits on every split); returns accuracies.

    The one output step of both DP-SGD workers (TF-Privacy's and the Keras 3
    / JAX one): ``members`` is the training set ``train``, the other splits
    are the ``x_<split>``/``y_<split>`` arrays of the request's data file.

    Returns:
      ``(train_accuracy, test_accuracy)``; the latter is None without a test split.
    """
    from keras_mi.outputs import SPLITS, ModelOutputs  # pylint: disable=import-outside-toplevel

    splits = {"members": train}
    for split in SPLITS:
        if f"x_{split}" in arrays:
            splits[split] = (arrays[f"x_{split}"].astype("float32"),
                             arrays[f"y_{split}"].astype("int64"))
    outputs = ModelOutputs.from_model(model, **splits)
    outputs.save_npz(out_dir / "outputs.npz")

    def accuracy(split):
        logits, labels = outputs.get(split)
        return float(np.mean(np.argmax(logits, axis=1) == labels))

    return accuracy("members"), accuracy("test") if "test" in outputs.logits else None


def dp_sequential(model, l2_norm_clip: float, noise_multiplier: float,
                  num_microbatches=None, seed=None):
    """TF-Privacy's ``DPSequential`` with the layers of a built tf-keras ``Sequential``.

    Args:
      model: a built ``tf_keras.Sequential`` (e.g. ``build_model(...,
        flavor="tf_keras")``); its layers and weights are reused.
      l2_norm_clip, noise_multiplier, num_microbatches: DP-SGD settings.
      seed: unused by TF-Privacy (the noise uses TensorFlow's global seed,
        set by the caller); kept for a uniform signature.

    Returns:
      An uncompiled ``DPSequential`` with the default layer registry, so
      per-example norms use the fast path where every trainable layer is
      registered (Dense, Embedding) and ``tf.vectorized_map`` otherwise.

    Example:
      >>> dp = dp_sequential(build_model("mlp_tanh", (446,), 30, flavor="tf_keras"),
      ...                    1.0, 1.1)  # doctest: +SKIP
      >>> dp._enable_fast_peg_computation  # doctest: +SKIP
      True
    """
    del seed
    import tf_keras  # pylint: disable=import-outside-toplevel

    from keras_mi._compat import import_tf_privacy  # pylint: disable=import-outside-toplevel
    dp_model = import_tf_privacy("privacy.keras_models.dp_keras_model")
    registry = import_tf_privacy("privacy.fast_gradient_clipping.layer_registry")
    inputs = tf_keras.Input(shape=model.input_shape[1:])
    return dp_model.DPSequential(
        l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
        num_microbatches=num_microbatches,
        layer_registry=registry.make_default_layer_registry(),
        layers=[inputs] + list(model.layers), name=model.name)


def run(request: dict) -> dict:
    """Trains per ``request`` and writes the outputs; returns the result dict."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    start = time.perf_counter()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras  # pylint: disable=import-outside-toplevel

    from keras_mi.models.architectures import build_model

    out_dir = pathlib.Path(request["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = request.get("seed")
    if seed is not None:
        tf_keras.utils.set_random_seed(int(seed))
    with np.load(request["data"], allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    x_train, y_train = arrays["x_train"].astype("float32"), arrays["y_train"].astype("int64")
    batch_size = int(request["batch_size"])
    epochs = int(request["epochs"])
    verbose = int(request.get("verbose", 0))

    path = request.get("tf_privacy_optimizer") or "microbatched"
    if path not in TF_PRIVACY_OPTIMIZERS:
        raise ValueError(f"tf_privacy_optimizer must be one of {TF_PRIVACY_OPTIMIZERS}, "
                         f"got '{path}'.")
    private = request.get("private", True)
    model = build_model(request["architecture"], request["input_shape"],
                        request["num_classes"], flavor="tf_keras", seed=seed)
    _check_no_batchnorm(model)
    lr, momentum = float(request["learning_rate"]), float(request.get("momentum", 0.0))
    clip, noise = float(request["l2_norm_clip"]), float(request["noise_multiplier"])
    microbatches = request.get("num_microbatches")
    # DP optimizers clip per example, so their loss must stay a vector.
    reduction = (tf_keras.losses.Reduction.NONE if private and path != "fast_clipping"
                 else tf_keras.losses.Reduction.SUM_OVER_BATCH_SIZE)
    optimizer = tf_keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    saved = model  # what model.h5 and the outputs come from: a plain tf-keras Sequential
    if private and path == "fast_clipping":
        # Shares the layers (and so the weights) of ``saved``.
        model = dp_sequential(model, clip, noise, microbatches, seed)
        request_path = ("fast_clipping" if model._enable_fast_peg_computation  # noqa: SLF001
                        else "dp_model_vmap")
    elif private:
        from keras_mi._compat import import_tf_privacy
        if path == "vectorized":
            cls = import_tf_privacy("privacy.optimizers.dp_optimizer_keras_vectorized"
                                    ).VectorizedDPKerasSGDOptimizer
        else:
            cls = import_tf_privacy("privacy.optimizers.dp_optimizer_keras").DPKerasSGDOptimizer
        optimizer = cls(l2_norm_clip=clip, noise_multiplier=noise,
                        num_microbatches=microbatches, learning_rate=lr, momentum=momentum)
        request_path = path
    else:
        request_path = "plain"
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                         reduction=reduction)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    # Shuffled fixed-size batches; the last partial batch is dropped so every
    # step has exactly batch_size examples (as the accounting assumes).
    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
             .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
             .batch(batch_size, drop_remainder=True))
    validation = None
    if "x_test" in arrays:
        validation = (arrays["x_test"].astype("float32"), arrays["y_test"].astype("int64"))
    timer = _epoch_timer(tf_keras)
    history = model.fit(train, epochs=epochs, validation_data=validation,
                        callbacks=[timer], verbose=2 if verbose else 0)
    train_time = time.perf_counter() - start

    atomic_write(out_dir / "model.h5", saved.save, suffix=".h5")

    train_accuracy, test_accuracy = save_split_outputs(saved, (x_train, y_train), arrays,
                                                       out_dir)
    result = {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "epoch_time_s": timer.times,
        "steps": epochs * (len(x_train) // batch_size),
        "train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
        "wall_time_s": time.perf_counter() - start,
        "train_time_s": train_time,
        "tensorflow_version": tf.__version__,
        "tf_privacy_path": request_path,
    }
    if request.get("private", True):
        from keras_mi.baselines.accounting import privacy_report
        report = privacy_report(len(x_train), batch_size, float(request["noise_multiplier"]),
                                epochs, request.get("delta"), request.get("accountant", "rdp"),
                                request.get("num_microbatches"), steps=result["steps"])
        result["epsilon"] = report.epsilon
        result["delta"] = report.delta
    atomic_write_text(out_dir / "result.json", json.dumps(result, indent=2))
    if verbose:
        print(f"[dpsgd_worker] done in {result['wall_time_s']:.1f}s; "
              f"train acc {result['train_accuracy']:.3f}", flush=True)
    return result


def main(argv=None) -> int:
    """Entry point: ``python -m keras_mi.baselines.dpsgd_worker request.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m keras_mi.baselines.dpsgd_worker <request.json>",
              file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        request = json.load(f)
    run(request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
