"""DP-SGD baseline: TF-Privacy's optimizer on the same architectures, with ε.

TF-Privacy's DP Keras optimizers only run on tf-keras (Keras 2), selected by
``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported, so they cannot share
a process with Keras 3. :func:`train_dpsgd` therefore validates everything
here, writes the data to an npz in a work directory, runs
``python -m keras_mi.baselines.dpsgd_worker`` and reads back the logits
(:class:`keras_mi.outputs.ModelOutputs`) and a JSON summary. This module
imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Dict, List, Optional, Tuple

import numpy as np

from keras_mi.baselines.accounting import (
    PrivacyReport,
    noise_multiplier_for_epsilon,
    privacy_report,
    validate_dp_arguments,
)
from keras_mi.baselines.dpsgd_worker import TF_PRIVACY_OPTIMIZERS
from keras_mi.models.architectures import architecture_spec
from keras_mi.outputs import ModelOutputs

ArrayPair = Tuple[np.ndarray, np.ndarray]
_STDERR_TAIL_LINES = 60


@dataclasses.dataclass
class DPSGDResult:
    """What one DP-SGD (or plain, ``private=False``) training run produced.

    Attributes:
      outputs: logits and labels on every split passed in.
      epsilon: ε for ``delta`` (``inf`` without noise or when not private).
      delta: δ used for ε.
      noise_multiplier, l2_norm_clip, batch_size, epochs, num_microbatches:
        the DP-SGD hyperparameters.
      accountant: ``"rdp"`` or ``"pld"``.
      privacy: the full :class:`PrivacyReport` (steps, q, assumptions), or
        None when not private.
      train_accuracy, test_accuracy: accuracy on members / the test split.
      wall_time_s: child process wall time (imports, training, prediction).
      epoch_time_s: wall time of each epoch (the first includes tracing).
      history: Keras ``History.history`` of the child.
      model_path: the saved tf-keras ``.h5`` model, or None when the work
        directory was temporary.

    Example:
      >>> result = train_dpsgd((x, y), (x_out, y_out), input_shape=(446,),
      ...                      num_classes=30, target_epsilon=4.0)  # doctest: +SKIP
      >>> result.epsilon <= 4.0  # doctest: +SKIP
      True
    """

    outputs: ModelOutputs
    epsilon: float
    delta: Optional[float]
    noise_multiplier: float
    l2_norm_clip: float
    batch_size: int
    epochs: int
    num_microbatches: Optional[int]
    accountant: str
    privacy: Optional[PrivacyReport]
    train_accuracy: float
    test_accuracy: Optional[float]
    wall_time_s: float
    epoch_time_s: List[float]
    history: Dict[str, List[float]]
    model_path: Optional[str] = None

    @property
    def median_epoch_time_s(self) -> float:
        """Median epoch time, skipping the first (graph tracing) when possible."""
        times = self.epoch_time_s[1:] or self.epoch_time_s
        return float(np.median(times))


def _check_pair(name: str, pair, input_shape, num_classes) -> ArrayPair:
    if pair is None:
        return None
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"'{name}' must be an (x, y) pair of arrays.")
    x, y = np.asarray(pair[0], dtype="float32"), np.asarray(pair[1])
    if x.shape[1:] != tuple(input_shape):
        raise ValueError(f"'{name}': examples have shape {x.shape[1:]}, expected "
                         f"{tuple(input_shape)}.")
    if y.ndim != 1 or len(y) != len(x) or len(x) == 0:
        raise ValueError(f"'{name}': need a non-empty x and integer labels of shape "
                         f"(n,), got {x.shape} and {y.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"'{name}': x contains NaN or inf.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"'{name}': labels must be integers in [0, {num_classes}).")
    return x, y.astype("int64")


def _run_child(request_path: pathlib.Path, verbose: int, timeout: Optional[float],
               module: str = "keras_mi.baselines.dpsgd_worker",
               env_updates: Optional[Dict[str, str]] = None) -> None:
    """Runs ``python -m module request_path``; raises with its stderr tail on failure.

    ``env_updates`` replaces the default ``TF_USE_LEGACY_KERAS=1`` (what the
    TF-Privacy worker needs) with other variables.
    """
    package_root = str(pathlib.Path(__file__).resolve().parents[2])
    env = dict(os.environ, **(env_updates if env_updates is not None
                              else {"TF_USE_LEGACY_KERAS": "1"}))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, "-m", module, str(request_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1)
    tail = collections.deque(maxlen=_STDERR_TAIL_LINES)
    reader = threading.Thread(target=lambda: tail.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        for line in proc.stdout:
            if verbose:
                print(line, end="", flush=True)
        rc = proc.wait(timeout=timeout)
    except BaseException:  # Ctrl-C or timeout: do not leave the child running.
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=5)
    if rc != 0:
        raise RuntimeError(
            f"The DP-SGD worker failed (exit code {rc}). Its stderr ends with:\n"
            + "".join(tail))


def _write_job(work: pathlib.Path, members: ArrayPair,
               splits: Dict[str, Optional[ArrayPair]], request: dict) -> dict:
    """Writes one model's ``data.npz`` into ``work``; returns ``request`` with its paths.

    ``data.npz`` holds ``x_train``/``y_train`` and ``x_<split>``/``y_<split>``
    (``data_sha256`` their digest); the worker writes ``out/result.json`` and
    ``out/outputs.npz`` (see :func:`_read_job`).
    """
    work.mkdir(parents=True, exist_ok=True)
    arrays = {"x_train": members[0], "y_train": members[1]}
    for name, pair in splits.items():
        if pair is not None:
            arrays[f"x_{name}"], arrays[f"y_{name}"] = pair
    np.savez(work / "data.npz", **arrays)
    digest = hashlib.sha256()
    for name in sorted(arrays):  # what a resumed worker checks a finished job against
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return dict(data=str(work / "data.npz"), data_sha256=digest.hexdigest(),
                out_dir=str(work / "out"), **request)


def _read_job(request: dict):
    """``(summary, outputs, out_dir)`` of a finished job of :func:`_write_job`."""
    out_dir = pathlib.Path(request["out_dir"])
    summary = json.loads((out_dir / "result.json").read_text())
    return summary, ModelOutputs.load_npz(out_dir / "outputs.npz"), out_dir


def _run_worker(work: pathlib.Path, members: ArrayPair, splits: Dict[str, Optional[ArrayPair]],
                request: dict, verbose: int, timeout: Optional[float],
                module: str = "keras_mi.baselines.dpsgd_worker",
                env_updates: Optional[Dict[str, str]] = None):
    """Writes the data and the request into ``work``, runs a worker, reads its results.

    The one hand-off of both DP-SGD children (TF-Privacy's and the Keras 3 /
    JAX one): :func:`_write_job`, ``request.json``, the child, :func:`_read_job`.

    Returns:
      ``(summary, outputs, out_dir)``: the worker's JSON summary, its
      :class:`ModelOutputs` and the folder it wrote.
    """
    request = _write_job(work, members, splits, request)
    (work / "request.json").write_text(json.dumps(request, indent=2))
    _run_child(work / "request.json", verbose, timeout, module=module, env_updates=env_updates)
    return _read_job(request)


def _run_worker_many(work: pathlib.Path, requests: List[dict], verbose: int,
                     timeout: Optional[float], module: str,
                     env_updates: Optional[Dict[str, str]] = None):
    """Runs one worker over several jobs of :func:`_write_job`; reads each one's results.

    Writes ``work/requests.json`` (``{"requests": [...]}``), the request file
    a worker that trains several models in one process reads; starts no child
    when every job's results are there already (``dpsgd_keras_worker.is_done``).

    Returns:
      One ``(summary, outputs, out_dir)`` per request, in order.
    """
    from keras_mi.baselines.dpsgd_keras_worker import is_done  # numpy and stdlib only

    if not all(is_done(request) for request in requests):
        (work / "requests.json").write_text(json.dumps({"requests": requests}, indent=2))
        _run_child(work / "requests.json", verbose, timeout, module=module,
                   env_updates=env_updates)
    return [_read_job(request) for request in requests]


def train_dpsgd(members: ArrayPair, non_members: ArrayPair, *,
                input_shape, num_classes: int, architecture: str = "mlp_tanh",
                reference: Optional[ArrayPair] = None, test: Optional[ArrayPair] = None,
                shadow: Optional[ArrayPair] = None,
                noise_multiplier: Optional[float] = None,
                target_epsilon: Optional[float] = None, l2_norm_clip: float = 1.0,
                batch_size: int = 64, epochs: int = 20, learning_rate: float = 0.1,
                momentum: float = 0.0, num_microbatches: Optional[int] = None,
                delta: Optional[float] = None, accountant: str = "rdp",
                private: bool = True, seed: Optional[int] = 0,
                work_dir=None, verbose: int = 1,
                timeout: Optional[float] = None,
                tf_privacy_optimizer: str = "microbatched") -> DPSGDResult:
    """Trains ``architecture`` with DP-SGD (TF-Privacy) in a child process.

    Args:
      members: ``(x, y)`` training set (the attacked members).
      non_members: ``(x, y)`` held-out examples for the attack.
      input_shape, num_classes, architecture: passed to
        :func:`keras_mi.models.build_model` (``flavor="tf_keras"``).
      reference, test, shadow: optional extra splits to compute logits on
        (``test`` also gives ``test_accuracy`` and Keras validation metrics).
      noise_multiplier: Gaussian noise stddev / ``l2_norm_clip``. Give this
        or ``target_epsilon`` (then the smallest noise reaching it is found by
        bisection).
      l2_norm_clip: per-example (or per-microbatch) gradient clipping norm.
      batch_size, epochs, learning_rate, momentum: SGD settings; batches are
        shuffled, fixed-size, the last partial batch dropped.
      num_microbatches: None (per-example clipping, recommended) or a
        divisor of ``batch_size``.
      delta: δ < 1/n; default the largest power of ten below 1/n.
      accountant: ``"rdp"`` or ``"pld"``.
      private: False trains the same model with plain SGD in the same kind
        of process (a timing/accuracy control; ε is ``inf``).
      seed: seeds initialization and shuffling.
      work_dir: where request, data and results go (kept); None uses a
        temporary directory that is removed afterwards.
      verbose: forward the child's progress (one line per epoch).
      timeout: seconds before the child is killed.
      tf_privacy_optimizer: TF-Privacy's path, one of
        :data:`keras_mi.baselines.dpsgd_worker.TF_PRIVACY_OPTIMIZERS`:
        ``"microbatched"`` (``DPKerasSGDOptimizer``, the default),
        ``"vectorized"`` (``VectorizedDPKerasSGDOptimizer``) or
        ``"fast_clipping"`` (``DPSequential`` with the layer registry; fast
        for Dense-only models). The same update; only the speed differs.

    Returns:
      A :class:`DPSGDResult`.

    Raises:
      ValueError: bad hyperparameters or data (before any process starts).
      RuntimeError: the child failed; the message holds its stderr tail.

    Example:
      >>> r = train_dpsgd((x_in, y_in), (x_out, y_out), input_shape=(446,),
      ...                 num_classes=30, noise_multiplier=1.0, epochs=5)  # doctest: +SKIP
      >>> r.epsilon, r.outputs.num_classes  # doctest: +SKIP
    """
    input_shape = tuple(int(d) for d in input_shape)
    architecture_spec(architecture, input_shape, num_classes)  # validates early
    if tf_privacy_optimizer not in TF_PRIVACY_OPTIMIZERS:
        raise ValueError(f"tf_privacy_optimizer must be one of {TF_PRIVACY_OPTIMIZERS}, "
                         f"got '{tf_privacy_optimizer}'.")
    members = _check_pair("members", members, input_shape, num_classes)
    if non_members is None:
        raise ValueError("'non_members' is required (the attack needs held-out data).")
    splits = {"non_members": non_members, "reference": reference, "test": test,
              "shadow": shadow}
    splits = {k: _check_pair(k, v, input_shape, num_classes) for k, v in splits.items()}
    n = len(members[0])
    epochs = int(epochs)
    if private:
        if (noise_multiplier is None) == (target_epsilon is None):
            raise ValueError("Give exactly one of noise_multiplier and target_epsilon.")
        if target_epsilon is not None:
            # Calibrated on the steps actually taken (the last partial batch is dropped).
            noise_multiplier = noise_multiplier_for_epsilon(
                target_epsilon, n, batch_size, epochs, delta, accountant, num_microbatches,
                steps=epochs * (n // batch_size))
        delta = validate_dp_arguments(n, batch_size, float(noise_multiplier), epochs, delta,
                                      l2_norm_clip, num_microbatches, accountant)
        if n // batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) exceeds the training set ({n}).")
    else:
        noise_multiplier = 0.0
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")

    temporary = work_dir is None
    work = pathlib.Path(tempfile.mkdtemp(prefix="keras_mi_dpsgd_") if temporary
                        else work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        request = dict(
            architecture=architecture,
            input_shape=list(input_shape), num_classes=int(num_classes),
            private=bool(private), l2_norm_clip=float(l2_norm_clip),
            noise_multiplier=float(noise_multiplier), num_microbatches=num_microbatches,
            batch_size=int(batch_size), epochs=epochs, learning_rate=float(learning_rate),
            momentum=float(momentum), seed=seed, verbose=int(verbose), delta=delta,
            accountant=accountant, tf_privacy_optimizer=tf_privacy_optimizer)
        summary, outputs, out_dir = _run_worker(work, members, splits, request, verbose, timeout)
        report = (privacy_report(n, batch_size, noise_multiplier, epochs, delta, accountant,
                                 num_microbatches, steps=summary["steps"])
                  if private else None)
        return DPSGDResult(
            outputs=outputs, epsilon=report.epsilon if report else math.inf,
            delta=delta if private else None, noise_multiplier=float(noise_multiplier),
            l2_norm_clip=float(l2_norm_clip), batch_size=int(batch_size), epochs=epochs,
            num_microbatches=num_microbatches, accountant=accountant, privacy=report,
            train_accuracy=summary["train_accuracy"],
            test_accuracy=summary["test_accuracy"], wall_time_s=summary["wall_time_s"],
            epoch_time_s=summary["epoch_time_s"], history=summary["history"],
            model_path=None if temporary else str(out_dir / "model.h5"))
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
