"""Keras 3 / JAX DP-SGD (:func:`keras_mi.baselines.train_dpsgd_keras`) in a child process.

Keras chooses its backend once per process, and the experiment runner runs
TensorFlow; this trains in ``python -m keras_mi.baselines.dpsgd_keras_worker``
with ``KERAS_BACKEND=jax``, the way :func:`keras_mi.baselines.train_dpsgd`
runs TF-Privacy: validate here, write the data to an npz in a work
directory, run the child, read back the logits
(:class:`keras_mi.outputs.ModelOutputs`) and a JSON summary. This module
imports neither Keras nor JAX nor TensorFlow.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from typing import Optional

from keras_mi.baselines.accounting import (
    PrivacyReport,
    noise_multiplier_for_epsilon,
    validate_dp_arguments,
)
from keras_mi.baselines.dpsgd import ArrayPair, DPSGDResult, _check_pair, _run_worker
from keras_mi.baselines.dpsgd_keras import SAMPLINGS
from keras_mi.models.architectures import architecture_spec

WORKER = "keras_mi.baselines.dpsgd_keras_worker"


def train_dpsgd_keras_subprocess(
        members: ArrayPair, non_members: ArrayPair, *, input_shape, num_classes: int,
        architecture: str = "mlp_tanh", reference: Optional[ArrayPair] = None,
        test: Optional[ArrayPair] = None, shadow: Optional[ArrayPair] = None,
        noise_multiplier: Optional[float] = None, target_epsilon: Optional[float] = None,
        l2_norm_clip: float = 1.0, batch_size: int = 64, epochs: int = 20,
        learning_rate: float = 0.1, momentum: float = 0.0, sampling: str = "poisson",
        delta: Optional[float] = None, accountant: str = "rdp", seed: Optional[int] = 0,
        work_dir=None, verbose: int = 1, timeout: Optional[float] = None) -> DPSGDResult:
    """Trains ``architecture`` (Keras 3) with DP-SGD on JAX in a child process.

    Args:
      members: ``(x, y)`` training set (the attacked members).
      non_members: ``(x, y)`` held-out examples for the attack.
      input_shape, num_classes, architecture: passed to
        :func:`keras_mi.models.build_model` (Keras 3; no BatchNorm, no
        Dropout: :func:`~keras_mi.baselines.train_dpsgd_keras` refuses them).
      reference, test, shadow: optional extra splits to compute logits on.
      noise_multiplier: Gaussian noise stddev / ``l2_norm_clip``. Give this
        or ``target_epsilon`` (the smallest noise reaching it, calibrated on
        the steps taken, ``epochs * (n // batch_size)``).
      l2_norm_clip, batch_size, epochs, learning_rate, momentum: DP-SGD
        settings; ``batch_size`` is the *expected* size of a Poisson batch.
      sampling: ``"poisson"`` (default: what the accountant assumes) or
        ``"shuffle"``.
      delta: δ < 1/n; default the largest power of ten below 1/n.
      accountant: ``"rdp"`` or ``"pld"``.
      seed: seeds the initial weights, the sampler and the noise.
      work_dir: where request, data and results go (kept, with
        ``out/model.keras``); None uses a temporary directory, removed after.
      verbose: forward the child's progress (one line per epoch).
      timeout: seconds before the child is killed.

    Returns:
      A :class:`~keras_mi.baselines.dpsgd.DPSGDResult` (``num_microbatches``
      None; ``privacy.sampling_assumption`` names the sampler the ε assumes
      and whether training used it).

    Raises:
      ValueError: bad hyperparameters or data (before any process starts).
      RuntimeError: the child failed; the message holds its stderr tail.

    Warnings:
      The child needs JAX installed; it uses whatever device JAX finds
      (``JAX_PLATFORMS=cpu`` in the environment forces the CPU).

    Example:
      >>> r = train_dpsgd_keras_subprocess((x_in, y_in), (x_out, y_out), input_shape=(446,),
      ...                                  num_classes=30, target_epsilon=4.0)  # doctest: +SKIP
      >>> r.epsilon <= 4.0, r.privacy.sampling_assumption  # doctest: +SKIP
    """
    input_shape = tuple(int(d) for d in input_shape)
    architecture_spec(architecture, input_shape, num_classes)  # validates early
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got '{sampling}'.")
    members = _check_pair("members", members, input_shape, num_classes)
    if non_members is None:
        raise ValueError("'non_members' is required (the attack needs held-out data).")
    splits = {"non_members": non_members, "reference": reference, "test": test,
              "shadow": shadow}
    splits = {k: _check_pair(k, v, input_shape, num_classes) for k, v in splits.items()}
    n, epochs = len(members[0]), int(epochs)
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ValueError("Give exactly one of noise_multiplier and target_epsilon.")
    if target_epsilon is not None:
        noise_multiplier = noise_multiplier_for_epsilon(
            target_epsilon, n, batch_size, epochs, delta, accountant,
            steps=epochs * (n // batch_size))
    delta = validate_dp_arguments(n, batch_size, float(noise_multiplier), epochs, delta,
                                  l2_norm_clip, None, accountant)
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")

    temporary = work_dir is None
    work = pathlib.Path(tempfile.mkdtemp(prefix="keras_mi_dpsgd_jax_") if temporary
                        else work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        request = dict(
            architecture=architecture,
            input_shape=list(input_shape), num_classes=int(num_classes),
            l2_norm_clip=float(l2_norm_clip), noise_multiplier=float(noise_multiplier),
            batch_size=int(batch_size), epochs=epochs, learning_rate=float(learning_rate),
            momentum=float(momentum), sampling=sampling, delta=delta, accountant=accountant,
            seed=seed, verbose=int(verbose))
        summary, outputs, out_dir = _run_worker(work, members, splits, request, verbose,
                                                timeout, module=WORKER,
                                                env_updates={"KERAS_BACKEND": "jax"})
        report = PrivacyReport(**summary["privacy"])
        return DPSGDResult(
            outputs=outputs, epsilon=float(report.epsilon), delta=float(report.delta),
            noise_multiplier=float(noise_multiplier), l2_norm_clip=float(l2_norm_clip),
            batch_size=int(batch_size), epochs=epochs, num_microbatches=None,
            accountant=accountant, privacy=report,
            train_accuracy=summary["train_accuracy"], test_accuracy=summary["test_accuracy"],
            wall_time_s=summary["wall_time_s"], epoch_time_s=summary["epoch_time_s"],
            history=summary["history"],
            model_path=None if temporary else str(out_dir / "model.keras"))
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)

