"""Child process that trains a Keras 3 model with DP-SGD on the JAX backend.

Run as ``KERAS_BACKEND=jax python -m keras_mi.baselines.dpsgd_keras_worker
<request.json>``; the parent
(:func:`keras_mi.baselines.dpsgd_keras_subprocess.train_dpsgd_keras_subprocess`)
writes the request and reads the results. A process of its own because
Keras picks its backend once per process, and the caller usually runs
TensorFlow. Importing this module imports nothing but the standard library
and numpy; Keras and JAX are imported in :func:`run`.

Request (JSON): ``data`` (npz with ``x_train``, ``y_train`` and optional
``x_<split>``/``y_<split>`` for the splits of :mod:`keras_mi.outputs`),
``out_dir``, ``architecture``, ``input_shape``, ``num_classes``,
``noise_multiplier``, ``l2_norm_clip``, ``batch_size``, ``epochs``,
``learning_rate``, ``momentum``, ``sampling``, ``delta``, ``accountant``,
``seed``, ``verbose``.

Writes into ``out_dir``: ``model.keras``, ``outputs.npz``
(:meth:`keras_mi.outputs.ModelOutputs.save_npz`) and ``result.json``
(ε, the :class:`~keras_mi.baselines.accounting.PrivacyReport` as a dict,
history, accuracies, times, the request), all atomically.

A request file ``{"requests": [request, ...]}`` trains several models in
this one process (a bank: the imports and the child's start-up are paid
once), one after the other; a model whose ``result.json`` already holds the
same request is skipped, so an interrupted bank resumes.

Example:
  >>> run({"data": "data.npz", "out_dir": "out", ...})  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

import numpy as np

from keras_mi._atomic import atomic_write, atomic_write_text
from keras_mi.baselines.dpsgd_worker import save_split_outputs


def run(request: dict) -> dict:
    """Trains per ``request`` and writes the outputs.

    Args:
      request: the fields listed in the module docstring.

    Returns:
      The dict written to ``result.json``.

    Raises:
      RuntimeError: Keras does not run the JAX backend.
    """
    start = time.perf_counter()
    import keras  # pylint: disable=import-outside-toplevel

    from keras_mi.baselines.dpsgd_keras import train_dpsgd_keras  # pylint: disable=import-outside-toplevel
    from keras_mi.models.architectures import build_model  # pylint: disable=import-outside-toplevel

    out_dir = pathlib.Path(request["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = int(request.get("seed") or 0)
    keras.utils.set_random_seed(seed)
    with np.load(request["data"], allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    x_train, y_train = arrays["x_train"].astype("float32"), arrays["y_train"].astype("int64")
    model = build_model(request["architecture"], request["input_shape"],
                        request["num_classes"], seed=seed)
    result = train_dpsgd_keras(
        model, x_train, y_train, noise_multiplier=float(request["noise_multiplier"]),
        l2_norm_clip=float(request["l2_norm_clip"]), batch_size=int(request["batch_size"]),
        epochs=int(request["epochs"]), learning_rate=float(request["learning_rate"]),
        momentum=float(request.get("momentum", 0.0)),
        sampling=request.get("sampling", "poisson"), delta=request.get("delta"),
        accountant=request.get("accountant", "rdp"), seed=seed,
        verbose=int(request.get("verbose", 0)))
    train_time = time.perf_counter() - start
    atomic_write(out_dir / "model.keras", model.save, suffix=".keras")

    train_accuracy, test_accuracy = save_split_outputs(model, (x_train, y_train), arrays,
                                                       out_dir)
    summary = {
        "epsilon": result.epsilon, "delta": result.delta,
        "noise_multiplier": result.noise_multiplier, "steps": result.steps,
        "sampling": result.sampling, "per_example_method": result.per_example_method,
        "padded_batch_size": result.padded_batch_size,
        "overflow_steps": result.overflow_steps,
        "privacy": dataclasses.asdict(result.privacy),
        "history": result.history, "epoch_time_s": result.epoch_time_s,
        "train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
        "wall_time_s": time.perf_counter() - start, "train_time_s": train_time,
        "keras_version": keras.__version__, "backend": keras.backend.backend(),
        "request": request,
    }
    atomic_write_text(out_dir / "result.json", json.dumps(summary, indent=2))
    if request.get("verbose"):
        print(f"[dpsgd_keras_worker] done in {summary['wall_time_s']:.1f}s; "
              f"train acc {summary['train_accuracy']:.3f}", flush=True)
    return summary


def is_done(request: dict) -> bool:
    """Whether ``request``'s ``result.json`` exists and was written for this same request.

    Example:
      >>> is_done({"out_dir": "/nonexistent", "data": "d.npz"})
      False
    """
    path = pathlib.Path(request["out_dir"]) / "result.json"
    try:
        return json.loads(path.read_text()).get("request") == request
    except (OSError, ValueError):
        return False


def run_many(requests: list) -> None:
    """Runs each request in turn in this process, skipping those already done.

    Example:
      >>> run_many(json.load(open("requests.json"))["requests"])  # doctest: +SKIP
    """
    import keras  # pylint: disable=import-outside-toplevel

    for i, request in enumerate(requests):
        if is_done(request):
            if request.get("verbose"):
                print(f"[dpsgd_keras_worker] model {i + 1} of {len(requests)}: already done",
                      flush=True)
            continue
        if request.get("verbose"):
            print(f"[dpsgd_keras_worker] model {i + 1} of {len(requests)}", flush=True)
        run(request)
        keras.backend.clear_session()  # free the finished model's graph and traces


def main(argv=None) -> int:
    """Entry point: ``python -m keras_mi.baselines.dpsgd_keras_worker request.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: KERAS_BACKEND=jax python -m keras_mi.baselines.dpsgd_keras_worker "
              "<request.json>", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        request = json.load(f)
    if "requests" in request:
        run_many(request["requests"])
    else:
        run(request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
