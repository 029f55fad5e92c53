"""Keras 3 / JAX DP-SGD (:func:`keras_mi.baselines.train_dpsgd_keras`) in a child process.

Keras chooses its backend once per process, and the experiment runner runs
TensorFlow; this trains in ``python -m keras_mi.baselines.dpsgd_keras_worker``
with ``KERAS_BACKEND=jax``, the way :func:`keras_mi.baselines.train_dpsgd`
runs TF-Privacy: validate here, write the data to an npz in a work
directory, run the child, read back the logits
(:class:`keras_mi.outputs.ModelOutputs`) and a JSON summary.
:func:`train_dpsgd_keras_subprocess_many` trains several models (a bank) in
one child. This module imports neither Keras nor JAX nor TensorFlow.
"""

from __future__ import annotations

import inspect
import pathlib
import shutil
import tempfile
from typing import List, Optional, Sequence

from keras_mi.baselines.accounting import (
    PrivacyReport,
    noise_multiplier_for_epsilon,
    validate_dp_arguments,
)
from keras_mi.baselines.dpsgd import (
    ArrayPair,
    DPSGDResult,
    _check_pair,
    _run_worker,
    _run_worker_many,
    _write_job,
)
from keras_mi.baselines.dpsgd_keras import SAMPLINGS
from keras_mi.models.architectures import architecture_spec

WORKER = "keras_mi.baselines.dpsgd_keras_worker"
#: Arguments of the whole call, not of one model (a job of the ``_many`` call).
_CALL_ARGUMENTS = ("work_dir", "verbose", "timeout")


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
    arguments = dict(locals())  # first statement: exactly the arguments
    job = _prepare({k: v for k, v in arguments.items() if k not in _CALL_ARGUMENTS}, verbose)
    temporary = work_dir is None
    work = pathlib.Path(tempfile.mkdtemp(prefix="keras_mi_dpsgd_jax_") if temporary
                        else work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        members, splits, request = job
        summary, outputs, out_dir = _run_worker(work, members, splits, request, verbose,
                                                timeout, module=WORKER,
                                                env_updates={"KERAS_BACKEND": "jax"})
        return _result(request, summary, outputs, None if temporary else out_dir)
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


def train_dpsgd_keras_subprocess_many(jobs: Sequence[dict], work_dir, *,
                                      names: Optional[Sequence[str]] = None, verbose: int = 1,
                                      timeout: Optional[float] = None) -> List[DPSGDResult]:
    """Trains several models, as :func:`train_dpsgd_keras_subprocess` each, in one child.

    A bank of DP models pays the child's start-up (Python, Keras and JAX
    imports) once instead of once per model. Every job is validated before
    the child starts; the models train one after the other, and each writes
    its results atomically into ``work_dir/<name>/out``, so a call
    interrupted part-way resumes: a job whose results were written for the
    same request and data is not trained again.

    Args:
      jobs: one dict of keyword arguments of
        :func:`train_dpsgd_keras_subprocess` per model (``members``,
        ``non_members``, ``input_shape``, ``num_classes``, ``target_epsilon``
        ...; not ``work_dir``, ``verbose`` or ``timeout``).
      work_dir: the folder for the jobs' data and results (kept, with each
        job's ``out/model.keras``).
      names: each job's sub-folder of ``work_dir`` (default ``job_0000``,
        ``job_0001``...); a name that stays with its model across calls
        (e.g. its seed) lets a later call resume it.
      verbose: forward the child's progress (a line per model and epoch).
      timeout: seconds before the child (all jobs together) is killed.

    Returns:
      One :class:`~keras_mi.baselines.dpsgd.DPSGDResult` per job, in order.

    Raises:
      ValueError: a bad job (before any process starts), naming its index.
      RuntimeError: the child failed; the message holds its stderr tail.

    Example:
      >>> jobs = [dict(members=half, non_members=pool, input_shape=(446,), num_classes=30,
      ...              target_epsilon=4.0, seed=s) for half, s in halves]  # doctest: +SKIP
      >>> results = train_dpsgd_keras_subprocess_many(jobs, "runs/dp_bank")  # doctest: +SKIP
    """
    signature = inspect.signature(train_dpsgd_keras_subprocess)
    prepared = []
    for i, job in enumerate(jobs):
        extra = set(_CALL_ARGUMENTS) & set(job)
        if extra:
            raise ValueError(f"DP-SGD job {i}: {sorted(extra)} are arguments of the whole "
                             "call, not of a job.")
        try:
            bound = signature.bind(**job)  # the single-model call's defaults, and its checks
            bound.apply_defaults()
            settings = {k: v for k, v in bound.arguments.items() if k not in _CALL_ARGUMENTS}
            prepared.append(_prepare(settings, verbose))
        except (TypeError, ValueError) as err:
            raise ValueError(f"DP-SGD job {i}: {err}") from err
    names = [f"job_{i:04d}" for i in range(len(prepared))] if names is None else \
        [str(name) for name in names]
    if len(names) != len(prepared) or len(set(names)) != len(names) or \
            any(not name or pathlib.Path(name).name != name for name in names):
        raise ValueError(f"names must be {len(prepared)} distinct folder names, one per job; "
                         f"got {names}.")
    if not prepared:
        return []
    work = pathlib.Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    requests = [_write_job(work / name, members, splits, request)
                for name, (members, splits, request) in zip(names, prepared)]
    done = _run_worker_many(work, requests, verbose, timeout, module=WORKER,
                            env_updates={"KERAS_BACKEND": "jax"})
    return [_result(request, summary, outputs, out_dir)
            for request, (summary, outputs, out_dir) in zip(requests, done)]


def _prepare(settings: dict, verbose: int):
    """Checks one model's settings, calibrates its noise; ``(members, splits, request)``.

    ``settings``: the arguments of :func:`train_dpsgd_keras_subprocess` but
    ``work_dir``, ``verbose`` and ``timeout``, every one given.
    """
    members, non_members = settings["members"], settings["non_members"]
    input_shape = tuple(int(d) for d in settings["input_shape"])
    num_classes, architecture = settings["num_classes"], settings["architecture"]
    sampling, delta, accountant = settings["sampling"], settings["delta"], settings["accountant"]
    noise_multiplier, target_epsilon = settings["noise_multiplier"], settings["target_epsilon"]
    batch_size, l2_norm_clip = settings["batch_size"], settings["l2_norm_clip"]
    learning_rate = settings["learning_rate"]
    architecture_spec(architecture, input_shape, num_classes)  # validates early
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got '{sampling}'.")
    members = _check_pair("members", members, input_shape, num_classes)
    if non_members is None:
        raise ValueError("'non_members' is required (the attack needs held-out data).")
    splits = {k: _check_pair(k, settings[k] if k != "non_members" else non_members,
                             input_shape, num_classes)
              for k in ("non_members", "reference", "test", "shadow")}
    n, epochs = len(members[0]), int(settings["epochs"])
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
    request = dict(
        architecture=architecture,
        input_shape=list(input_shape), num_classes=int(num_classes),
        l2_norm_clip=float(l2_norm_clip), noise_multiplier=float(noise_multiplier),
        batch_size=int(batch_size), epochs=epochs, learning_rate=float(learning_rate),
        momentum=float(settings["momentum"]), sampling=sampling, delta=delta,
        accountant=accountant, seed=settings["seed"], verbose=int(verbose))
    return members, splits, request


def _result(request: dict, summary: dict, outputs, out_dir) -> DPSGDResult:
    """The :class:`DPSGDResult` of one finished job (``out_dir`` None: model not kept)."""
    report = PrivacyReport(**summary["privacy"])
    return DPSGDResult(
        outputs=outputs, epsilon=float(report.epsilon), delta=float(report.delta),
        noise_multiplier=float(request["noise_multiplier"]),
        l2_norm_clip=float(request["l2_norm_clip"]), batch_size=int(request["batch_size"]),
        epochs=int(request["epochs"]), num_microbatches=None,
        accountant=request["accountant"], privacy=report,
        train_accuracy=summary["train_accuracy"], test_accuracy=summary["test_accuracy"],
        wall_time_s=summary["wall_time_s"], epoch_time_s=summary["epoch_time_s"],
        history=summary["history"],
        model_path=None if out_dir is None else str(pathlib.Path(out_dir) / "model.keras"))
