"""The ``dpsgd`` entry's training and checks: DP-SGD in a child process.

DP-SGD is an entry of its own kind: it trains outside this process
(TF-Privacy + tf-keras, or Keras 3 on JAX) and hands back model outputs,
not a Keras model (``trains_in_subprocess``). ``dpsgd:<epsilon>`` asks for
that ε instead of ``config.dpsgd.epsilon``. Imports neither Keras nor
TensorFlow; the baselines load when a model trains.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple


def parse_epsilon(text: str) -> float:
    """The ``<epsilon>`` of ``dpsgd:<epsilon>``: a positive finite number.

    Example:
      >>> parse_epsilon("8")
      8.0
    """
    try:
        eps = float(text)
    except ValueError:
        eps = -1.0
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"Defense 'dpsgd:{text}': epsilon must be a positive number, "
                         "e.g. dpsgd:4.")
    return eps


def accountant_epsilon(config, argument: Optional[float]) -> float:
    """The ε the noise is calibrated to: the name's, else ``config.dpsgd.epsilon``."""
    return float(argument if argument is not None else config.dpsgd.epsilon)


def train_outputs(config, data: Dict[str, Any], input_shape, num_classes: int,
                  architecture: str, seed: int, verbose: int,
                  argument: Optional[float]) -> Tuple[Any, Dict[str, Any]]:
    """DP-SGD at the requested ε, in a child process; returns ``(outputs, extras)``.

    ``config.dpsgd.implementation`` picks the child: ``"tf_privacy"``
    (TF-Privacy + tf-keras, :func:`keras_mi.baselines.train_dpsgd`; the model
    is kept as ``out/model.h5`` in ``data["work_dir"]``) or ``"keras_jax"``
    (:func:`keras_mi.baselines.train_dpsgd_keras` with ``KERAS_BACKEND=jax``
    and Poisson batches; ``out/model.keras``). The noise multiplier is the
    smallest that reaches ε for the run's member count, batch size and
    epochs (``noise_multiplier_for_epsilon`` with ``dpsgd.accountant``).
    The extras record the implementation; for ``keras_jax`` also the
    sampler and the accountant's ``sampling_assumption``.

    Args:
      config: the experiment config (``config.dpsgd``, ``config.training``).
      data: ``{"eval": {"members": (x, y), "non_members": ..., "reference":
        ..., "test": ...}, "work_dir": folder or None}``.
      input_shape, num_classes, architecture: what to build.
      seed: this model's seed.
      verbose: child verbosity.
      argument: ε from ``dpsgd:<epsilon>``, or None.
    """
    from keras_mi import baselines  # pylint: disable=import-outside-toplevel

    dp = config.dpsgd
    epsilon = accountant_epsilon(config, argument)
    recipe = config.training
    epochs = dp.epochs or recipe.epochs
    splits = data["eval"]
    batch_size = dp.batch_for(len(splits["members"][0]), recipe.batch_size)
    architecture = dp.architecture or architecture  # the DP model may be a smaller one
    if dp.implementation == "keras_jax":
        # pylint: disable-next=import-outside-toplevel
        from keras_mi.baselines.dpsgd_keras_subprocess import train_dpsgd_keras_subprocess

        result = train_dpsgd_keras_subprocess(
            **_keras_jax_job(config, epsilon, splits, input_shape, num_classes, architecture,
                             seed), work_dir=data.get("work_dir"), verbose=1 if verbose else 0)
        return result.outputs, _keras_jax_extras(result, epsilon, architecture)
    # train_dpsgd calibrates the noise multiplier to ε on the steps it takes
    # (baselines.noise_multiplier_for_epsilon), so the ε reported is met.
    result = baselines.train_dpsgd(
        splits["members"], splits["non_members"], input_shape=tuple(input_shape),
        num_classes=num_classes, architecture=architecture, reference=splits.get("reference"),
        test=splits.get("test"), target_epsilon=epsilon, l2_norm_clip=dp.l2_norm_clip,
        batch_size=batch_size, epochs=epochs, learning_rate=dp.learning_rate,
        momentum=dp.momentum, num_microbatches=dp.num_microbatches, delta=dp.delta, seed=seed,
        work_dir=data.get("work_dir"), verbose=1 if verbose else 0,
        tf_privacy_optimizer=dp.tf_privacy_optimizer, accountant=dp.accountant)
    return result.outputs, {
        "epsilon": float(result.epsilon), "target_epsilon": float(epsilon),
        "delta": None if result.delta is None else float(result.delta),
        "noise_multiplier": float(result.noise_multiplier),
        "l2_norm_clip": float(result.l2_norm_clip), "epochs": int(result.epochs),
        "batch_size": int(result.batch_size), "num_microbatches": result.num_microbatches,
        "accountant": result.accountant, "architecture": architecture,
        "tf_privacy_optimizer": dp.tf_privacy_optimizer}


def train_outputs_many(config, datas: List[Dict[str, Any]], input_shape, num_classes: int,
                       architecture: str, seeds: List[int], verbose: int,
                       argument: Optional[float], work_dir) -> List[Tuple[Any, Dict[str, Any]]]:
    """:func:`train_outputs` for several models (a bank) in one child, on ``keras_jax``.

    With ``dpsgd.implementation = "keras_jax"`` every model trains in one
    JAX child process
    (:func:`keras_mi.baselines.dpsgd_keras_subprocess.train_dpsgd_keras_subprocess_many`,
    resumable in ``work_dir``). TF-Privacy's child trains one model, so this
    returns None there and the bank calls :func:`train_outputs` per model
    (each saved as soon as it is trained).

    Args:
      datas: one ``data`` dict of :func:`train_outputs` per model (its
        ``work_dir`` is ignored on ``keras_jax``: ``work_dir`` holds them all).
      seeds: each model's seed.
      work_dir: the folder the child works in (kept; the caller removes it).
      config, input_shape, num_classes, architecture, verbose, argument: as
        for :func:`train_outputs`.

    Returns:
      One ``(outputs, extras)`` per model, in order; None on ``tf_privacy``.

    Example:
      >>> pairs = train_outputs_many(config, [data_0, data_1], (446,), 30, "linear",
      ...                            [11, 12], 0, None, "runs/x/banks/dpsgd_work")  # doctest: +SKIP
      >>> outputs, extras = pairs[0]  # doctest: +SKIP
    """
    if config.dpsgd.implementation != "keras_jax":
        return None
    # pylint: disable-next=import-outside-toplevel
    from keras_mi.baselines.dpsgd_keras_subprocess import train_dpsgd_keras_subprocess_many

    epsilon = accountant_epsilon(config, argument)
    architecture = config.dpsgd.architecture or architecture
    jobs = [_keras_jax_job(config, epsilon, data["eval"], input_shape, num_classes,
                           architecture, seed) for data, seed in zip(datas, seeds)]
    results = train_dpsgd_keras_subprocess_many(jobs, work_dir,
                                                names=[f"seed_{int(s)}" for s in seeds],
                                                verbose=1 if verbose else 0)
    return [(r.outputs, _keras_jax_extras(r, epsilon, architecture)) for r in results]


def _keras_jax_job(config, epsilon, splits, input_shape, num_classes, architecture, seed):
    """The keyword arguments of the Keras 3 / JAX trainer for one model (Poisson batches)."""
    dp = config.dpsgd
    return dict(
        members=splits["members"], non_members=splits["non_members"],
        input_shape=tuple(input_shape), num_classes=num_classes, architecture=architecture,
        reference=splits.get("reference"), test=splits.get("test"), target_epsilon=epsilon,
        l2_norm_clip=dp.l2_norm_clip,
        batch_size=dp.batch_for(len(splits["members"][0]), config.training.batch_size),
        epochs=dp.epochs or config.training.epochs, learning_rate=dp.learning_rate,
        momentum=dp.momentum, sampling="poisson", delta=dp.delta, accountant=dp.accountant,
        seed=seed)


def _keras_jax_extras(result, epsilon, architecture) -> Dict[str, Any]:
    """What a report row records of one Keras 3 / JAX DP model."""
    return {
        "epsilon": float(result.epsilon), "target_epsilon": float(epsilon),
        "delta": float(result.delta), "noise_multiplier": float(result.noise_multiplier),
        "l2_norm_clip": float(result.l2_norm_clip), "epochs": int(result.epochs),
        "batch_size": int(result.batch_size), "num_microbatches": None,
        "accountant": result.accountant, "implementation": "keras_jax", "sampling": "poisson",
        "sampling_assumption": result.privacy.sampling_assumption, "architecture": architecture}


def check_data(config, facts, argument: Optional[float]) -> List[str]:
    """DP-SGD's accounting inputs for this dataset, checked as the baseline will.

    The target trains on the members, a bank model on half of members +
    non-members; an ε no noise level reaches fails in the baseline's
    calibration, so that calibration (seconds) runs here too, before the
    output folder is claimed.
    """
    # pylint: disable-next=import-outside-toplevel
    from keras_mi.baselines.accounting import noise_multiplier_for_epsilon, validate_dp_arguments

    dp, errors = config.dpsgd, []
    if dp.architecture is not None:  # the DP model's own input checks, without building it
        from keras_mi.models.architectures import architecture_spec
        try:
            architecture_spec(dp.architecture, facts.input_shape, facts.num_classes)
        except ValueError as err:
            errors.append(f"dpsgd.architecture '{dp.architecture}' on inputs "
                          f"{tuple(facts.input_shape)}: {err}")
    epochs = dp.epochs or config.training.epochs
    sets = [("split.members", config.split.members)]
    if config.bank.size:
        sets.append(("a bank model's half", (config.split.members + config.split.non_members) // 2))
    for what, n in sets:
        batch = dp.batch_for(n, config.training.batch_size)
        try:
            validate_dp_arguments(n, batch, 1.0, epochs, dp.delta, dp.l2_norm_clip,
                                  dp.num_microbatches)
        except ValueError as err:
            errors.append(f"dpsgd on {what} ({n} records): {err}")
    if errors:
        return errors
    n, eps = config.split.members, accountant_epsilon(config, argument)
    batch = dp.batch_for(n, config.training.batch_size)
    try:
        noise_multiplier_for_epsilon(eps, n, batch, epochs, dp.delta, dp.accountant,
                                     dp.num_microbatches, steps=epochs * (n // batch))
    except ValueError as err:
        errors.append(f"dpsgd at epsilon {eps:g}: {err}")
    return errors
