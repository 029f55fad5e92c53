"""DP-SGD for Keras 3 models on the JAX backend, with Poisson-sampled batches.

The same algorithm as TF-Privacy's ``DPKerasSGDOptimizer`` with per-example
clipping (Abadi et al., 2016), written against Keras 3's stateless API so it
runs without TensorFlow (e.g. on a GPU machine with only JAX installed):

1. draw a batch: every training example joins independently with
   probability ``q = batch_size / n`` (Poisson sampling), or, with
   ``sampling="shuffle"``, the next ``batch_size`` examples of a shuffled
   pass (what the TF-Privacy child process does);
2. per-example gradients of the cross-entropy, ``jax.vmap(jax.grad(...))``
   over ``model.stateless_call`` (or, for a ``Sequential`` of Dense layers,
   their norms from one backward pass; see :func:`make_clipped_gradient_sum`);
3. clip each to L2 norm ``l2_norm_clip`` (``g * C / max(||g||, C)``), sum;
4. add ``N(0, (noise_multiplier * l2_norm_clip)^2 I)`` and divide by the
   *expected* batch size ``q * n = batch_size`` (dividing by the realised
   size would leak it);
5. apply a Keras SGD optimizer through ``optimizer.stateless_apply``.

Poisson batches have a random size, but jitted steps want static shapes: the
drawn indices are padded to a fixed ``padded_batch_size`` and the padding is
masked out of the clipped sum. The cap is chosen so that, by a union bound
over all steps, the chance that any batch exceeds it is at most
``overflow_probability``. If one does, that step's batch is processed in
several padded chunks whose clipped sums are added before the noise: the
update is exactly the same (slower, never truncated), and the count is
reported in :attr:`DPSGDKerasResult.overflow_steps`.

ε comes from :func:`keras_mi.baselines.accounting.privacy_report`, the very
call the TF-Privacy path uses, with ``steps = epochs * (n // batch_size)``.
With ``sampling="poisson"`` the accountant's assumption (Poisson
subsampling, rate ``q``) is what the trainer does; with
``sampling="shuffle"`` it is the conventional estimate, as for TF-Privacy.
:attr:`DPSGDKerasResult.privacy` says which.

Importing this module imports neither Keras nor JAX nor TensorFlow; the
functions that need them import Keras (which must run the JAX backend) and
JAX when called, and never TensorFlow.

Warnings:
  Padded rows still run through the model (they are masked only in the
  sum), so a Poisson step costs ``padded_batch_size / batch_size`` times a
  fixed-size one. The noise comes from JAX's threefry PRNG in float32, like
  TF-Privacy's from TensorFlow's: neither is a cryptographically secure or
  floating-point-exact Gaussian mechanism (Mironov, 2012). ε assumes the
  data passed in is the whole training set and every step is taken.

References:
  Abadi et al., "Deep Learning with Differential Privacy", CCS 2016,
  https://arxiv.org/abs/1607.00133.
  Mironov, Talwar, Zhang, "Rényi Differential Privacy of the Sampled
  Gaussian Mechanism", 2019, https://arxiv.org/abs/1908.10530.
  Mironov, "On Significance of the Least Significant Bits for Differential
  Privacy", CCS 2012.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from keras_mi.baselines.accounting import (
    PrivacyReport,
    noise_multiplier_for_epsilon,
    privacy_report,
    validate_dp_arguments,
)

SAMPLINGS = ("poisson", "shuffle")

_POISSON_ASSUMPTION = (
    "Poisson subsampling with q = batch_size / num_examples, which is what the "
    "trainer does (padded, masked batches; overflow handled exactly)")
_SHUFFLE_ASSUMPTION = PrivacyReport.__dataclass_fields__["sampling_assumption"].default


@dataclasses.dataclass
class DPSGDKerasResult:
    """What one :func:`train_dpsgd_keras` run did (the model is trained in place).

    Attributes:
      epsilon: ε for ``delta`` (``inf`` when ``noise_multiplier == 0``).
      delta: δ used for ε.
      noise_multiplier, l2_norm_clip, batch_size, epochs, learning_rate,
        momentum: the DP-SGD settings.
      sampling: ``"poisson"`` or ``"shuffle"``.
      per_example_method: ``"vmap"`` or ``"dense"`` (how norms were found).
      steps: optimizer steps taken.
      privacy: the :class:`PrivacyReport` (steps, q, sampling assumption).
      padded_batch_size: static batch shape of a Poisson step (``batch_size``
        for shuffled batches).
      batch_sizes: realised number of examples in each step.
      overflow_steps: Poisson steps larger than ``padded_batch_size``
        (processed in several chunks, same update).
      epoch_time_s: wall time of each epoch (the first includes compilation).
      history: per epoch, ``loss`` (mean cross-entropy of the sampled
        examples before each step) and ``clipped_fraction`` (share of
        per-example gradients longer than ``l2_norm_clip``).
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    l2_norm_clip: float
    batch_size: int
    epochs: int
    learning_rate: float
    momentum: float
    sampling: str
    per_example_method: str
    steps: int
    privacy: PrivacyReport
    padded_batch_size: int
    batch_sizes: np.ndarray
    overflow_steps: int
    epoch_time_s: List[float]
    history: Dict[str, List[float]]

    @property
    def median_epoch_time_s(self) -> float:
        """Median epoch time, skipping the first (compilation) when possible."""
        times = self.epoch_time_s[1:] or self.epoch_time_s
        return float(np.median(times))


def check_jax_backend() -> None:
    """Raises unless Keras runs the JAX backend.

    Raises:
      RuntimeError: with how to select it (``KERAS_BACKEND=jax`` before
        Keras is first imported).
    """
    import keras  # pylint: disable=import-outside-toplevel
    backend = keras.backend.backend()
    if backend != "jax":
        raise RuntimeError(
            f"train_dpsgd_keras needs the JAX backend of Keras 3, but Keras runs "
            f"'{backend}'. Set KERAS_BACKEND=jax before Keras is first imported (in "
            f"a fresh process), or use keras_mi.baselines.train_dpsgd (TF-Privacy).")


def check_dp_model(model) -> None:
    """Refuses models that per-example clipping cannot train correctly.

    Args:
      model: a built Keras 3 model.

    Raises:
      ValueError: the model is not built, or contains a BatchNormalization
        layer (it mixes the examples of a batch, so one example's gradient
        depends on the others and clipping bounds nothing).
    """
    if not getattr(model, "built", False) or not model.trainable_variables:
        raise ValueError("The model must be built (e.g. start it with keras.Input) and "
                         "have trainable weights before DP-SGD training.")
    stack = list(getattr(model, "layers", []))
    while stack:  # nested models and layers that hold layers
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []) or [])
        if "BatchNormalization" in type(layer).__name__:
            raise ValueError(
                f"Layer '{layer.name}' is a BatchNormalization layer, which mixes "
                f"examples within a batch and breaks per-example gradient clipping. "
                f"Use an architecture without BatchNorm (or GroupNorm/LayerNorm).")


def poisson_batch_cap(num_examples: int, sampling_probability: float, steps: int,
                      overflow_probability: float = 1e-6) -> int:
    """Smallest padded batch size that any of ``steps`` Poisson batches exceeds
    with probability at most ``overflow_probability`` (union bound).

    Args:
      num_examples: training set size ``n``.
      sampling_probability: ``q``; a batch's size is Binomial(n, q).
      steps: number of batches drawn.
      overflow_probability: allowed chance of at least one overflow.

    Returns:
      ``k`` with ``steps * P[Binomial(n, q) > k] <= overflow_probability``.
    """
    from scipy import stats  # pylint: disable=import-outside-toplevel
    if not 0 < overflow_probability < 1:
        raise ValueError(f"overflow_probability must lie in (0, 1), got {overflow_probability}.")
    per_step = overflow_probability / max(int(steps), 1)
    cap = int(stats.binom.isf(per_step, num_examples, sampling_probability))
    while cap > 0 and stats.binom.sf(cap - 1, num_examples, sampling_probability) <= per_step:
        cap -= 1
    while stats.binom.sf(cap, num_examples, sampling_probability) > per_step:
        cap += 1
    return max(cap, 1)


def sample_batches(num_examples: int, batch_size: int, steps_per_epoch: int,
                   epochs: int, sampling: str, rng: np.random.Generator) -> List[np.ndarray]:
    """Index arrays of every step, in order.

    Args:
      num_examples: training set size ``n``.
      batch_size: fixed size (``"shuffle"``) or expected size ``q * n``
        (``"poisson"``).
      steps_per_epoch: batches per epoch.
      epochs: number of epochs.
      sampling: ``"poisson"``: each example joins each batch independently
        with probability ``batch_size / n``; ``"shuffle"``: a fresh
        permutation per epoch, cut into ``steps_per_epoch`` batches (the
        remainder is dropped).
      rng: the NumPy generator to draw from.

    Returns:
      ``epochs * steps_per_epoch`` sorted (Poisson) or shuffled int arrays.
    """
    batches = []
    q = batch_size / num_examples
    for _ in range(epochs):
        if sampling == "poisson":
            batches.extend(np.flatnonzero(rng.random(num_examples) < q)
                           for _ in range(steps_per_epoch))
        else:
            perm = rng.permutation(num_examples)
            batches.extend(perm[i * batch_size:(i + 1) * batch_size]
                           for i in range(steps_per_epoch))
    return batches


def _dense_plan(model):
    """The layers of a ``Sequential`` of plain ``Dense`` and weightless reshaping
    layers, as ``(layer, kernel index, bias index)`` (indices into
    ``model.trainable_variables``; ``None`` for a weightless layer); ``None``
    when the model is anything else."""
    import keras  # pylint: disable=import-outside-toplevel
    if not isinstance(model, keras.Sequential):
        return None
    weightless = (keras.layers.Flatten, keras.layers.Activation, keras.layers.Reshape,
                  keras.layers.Identity)
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    plan, covered = [], set()
    for layer in model.layers:
        if (type(layer) is keras.layers.Dense and not layer.lora_enabled
                and layer.quantization_mode is None):
            k = index.get(id(layer.kernel))
            b = index.get(id(layer.bias)) if layer.bias is not None else None
            if k is None or (layer.bias is not None and b is None):
                return None
            plan.append((layer, k, b))
            covered.update(i for i in (k, b) if i is not None)
        elif isinstance(layer, weightless) and not layer.weights:
            plan.append((layer, None, None))
        else:
            return None
    if covered != set(range(len(model.trainable_variables))):
        return None
    return plan


def _vmap_clipped_sum(model, clip):
    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

    def example_loss(trainable, non_trainable, x, y):
        logits, _ = model.stateless_call(trainable, non_trainable, x[None], training=True)
        return -jax.nn.log_softmax(logits[0].astype("float32"))[y]

    per_example = jax.vmap(jax.value_and_grad(example_loss), in_axes=(None, None, 0, 0))

    def clipped_sum(trainable, non_trainable, x, y, mask):
        losses, grads = per_example(trainable, non_trainable, x, y)
        sq = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in grads)
        norms = jnp.sqrt(sq)
        weights = mask * (clip / jnp.maximum(norms, clip))
        summed = [jnp.tensordot(weights, g, axes=1) for g in grads]
        return summed, jnp.sum(mask * losses), jnp.sum(mask * (norms > clip))

    return clipped_sum


def _dense_clipped_sum(plan, clip):
    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

    def forward(trainable, x, shifts):
        # Dense.call, with a zero shift on each pre-activation: the gradient
        # of the summed loss w.r.t. a shift is every example's own delta.
        a, inputs, j = x, [], 0
        for layer, k, b in plan:
            if k is None:
                a = layer(a)
                continue
            if a.ndim != 2:
                raise ValueError(f"Dense layer '{layer.name}' gets rank-{a.ndim} inputs; "
                                 f"use per_example='vmap'.")
            inputs.append(a)
            z = jnp.matmul(a, trainable[k]) + shifts[j]
            if b is not None:
                z = z + trainable[b]
            a = layer.activation(z) if layer.activation is not None else z
            j += 1
        return a, inputs

    def clipped_sum(trainable, non_trainable, x, y, mask):
        del non_trainable  # plain Dense layers have none
        dense = [(k, b) for _, k, b in plan if k is not None]
        shifts = [jnp.zeros((x.shape[0], trainable[k].shape[1]), trainable[k].dtype)
                  for k, _ in dense]

        def total_loss(shifts):
            logits, inputs = forward(trainable, x, shifts)
            losses = -jnp.take_along_axis(jax.nn.log_softmax(logits.astype("float32")),
                                          y[:, None], axis=1)[:, 0]
            return jnp.sum(losses), (losses, inputs)

        deltas, (losses, inputs) = jax.grad(total_loss, has_aux=True)(shifts)
        # Example i's kernel gradient is the outer product a_i delta_i^T, so its
        # squared norm is |a_i|^2 |delta_i|^2 (bias gradient: delta_i).
        sq = 0.0
        for (k, b), a, d in zip(dense, inputs, deltas):
            d2 = jnp.sum(d * d, axis=1)
            sq = sq + jnp.sum(a * a, axis=1) * d2 + (d2 if b is not None else 0.0)
        norms = jnp.sqrt(sq)
        weights = mask * (clip / jnp.maximum(norms, clip))
        summed = [None] * len(trainable)
        for (k, b), a, d in zip(dense, inputs, deltas):
            wd = d * weights[:, None]
            summed[k] = jnp.matmul(a.T, wd)
            if b is not None:
                summed[b] = jnp.sum(wd, axis=0)
        return summed, jnp.sum(mask * losses), jnp.sum(mask * (norms > clip))

    clipped_sum.forward = forward
    return clipped_sum


PER_EXAMPLE = ("auto", "vmap", "dense")


def make_clipped_gradient_sum(model, l2_norm_clip: float, per_example: str = "auto"):
    """Builds ``fn(trainable, non_trainable, x, y, mask)`` for one padded batch.

    Args:
      model: a built Keras 3 model ending in logits (JAX backend).
      l2_norm_clip: per-example L2 clipping norm ``C``.
      per_example: how per-example gradient norms are found. ``"vmap"``:
        ``jax.vmap(jax.grad(...))`` over ``model.stateless_call`` (any
        stateless model; materializes one gradient per example). ``"dense"``:
        for a ``Sequential`` of plain ``Dense`` layers (plus Flatten/
        Activation/Reshape), one backward pass to the pre-activations gives
        every example's delta, the norms follow from ``|a_i| |delta_i|``
        and the clipped sum from one matmul per layer (Goodfellow, 2015).
        ``"auto"``: ``"dense"`` when the model qualifies, else ``"vmap"``.

    Returns:
      ``(fn, method)``. ``fn`` is jittable and returns ``(clipped_sum,
      loss_sum, num_clipped)``: the sum over the examples with ``mask == 1``
      of each per-example gradient (a list like ``trainable``) scaled by
      ``C / max(||g||, C)``, the sum of their cross-entropies, and how many
      had ``||g|| > C``; ``||g||`` is the norm over all trainable weights.
      ``method`` is ``"vmap"`` or ``"dense"``.

    Raises:
      ValueError: ``per_example="dense"`` for a model that does not qualify.

    Warnings:
      Non-trainable state updated in training mode (Dropout seeds, BatchNorm
      statistics) is not carried forward; :func:`train_dpsgd_keras` refuses
      models that have any. The ``"dense"`` path re-implements
      ``Dense.call`` (matmul, bias, activation); :func:`train_dpsgd_keras`
      checks it against ``model.stateless_call`` before training.

    References:
      Goodfellow, "Efficient Per-Example Gradient Computations", 2015,
      https://arxiv.org/abs/1510.01799.
    """
    if per_example not in PER_EXAMPLE:
        raise ValueError(f"per_example must be one of {PER_EXAMPLE}, got '{per_example}'.")
    clip = float(l2_norm_clip)
    plan = _dense_plan(model) if per_example != "vmap" else None
    if per_example == "dense" and plan is None:
        raise ValueError("per_example='dense' needs a keras.Sequential of plain Dense layers "
                         "(and weightless Flatten/Activation/Reshape); use 'vmap'.")
    if plan is None:
        return _vmap_clipped_sum(model, clip), "vmap"
    return _dense_clipped_sum(plan, clip), "dense"


def _probe(model, x):
    """One training-mode call on two examples: (number of logits, state unchanged?)."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    logits, updated = model.stateless_call(trainable, non_trainable, x[:2], training=True)
    static = all(np.array_equal(np.asarray(a), np.asarray(b))
                 for a, b in zip(non_trainable, updated))
    return int(np.shape(logits)[-1]), static


def _check_dense_forward(model, forward, x):
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    expected, _ = model.stateless_call(trainable, non_trainable, x, training=True)
    shifts = [jnp.zeros((len(x), layer.units)) for layer in model.layers
              if hasattr(layer, "units")]
    got, _ = forward(trainable, jnp.asarray(x), shifts)
    if not np.allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5):
        raise RuntimeError("The 'dense' per-example path disagrees with the model's own "
                           "forward pass; use per_example='vmap'.")


def _check_data(x, y):
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or len(x) == 0:
        raise ValueError(f"Need non-empty x and integer labels of shape (n,), got "
                         f"{x.shape} and {y.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or inf.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"Labels must be integers, got dtype {y.dtype}.")
    return x, y.astype("int32")


def train_dpsgd_keras(model, x, y, *, noise_multiplier: Optional[float] = None,
                      target_epsilon: Optional[float] = None, l2_norm_clip: float = 1.0,
                      batch_size: int = 64, epochs: int = 20, learning_rate: float = 0.1,
                      momentum: float = 0.0, sampling: str = "poisson",
                      delta: Optional[float] = None, accountant: str = "rdp",
                      seed: int = 0, overflow_probability: float = 1e-6,
                      per_example: str = "auto", verbose: int = 0,
                      on_epoch_end: Optional[Callable[[int, dict], None]] = None
                      ) -> DPSGDKerasResult:
    """Trains a Keras 3 model (JAX backend) in place with DP-SGD.

    Args:
      model: a built Keras 3 model mapping a batch of ``x`` to logits; no
        BatchNorm, no other training-time state.
      x, y: training examples (float) and integer labels, shape ``(n,)``.
      noise_multiplier: Gaussian noise stddev / ``l2_norm_clip`` (0 allowed:
        no noise, ε = inf). Give this or ``target_epsilon``.
      target_epsilon: the smallest noise multiplier whose ε (for ``delta``,
        the steps taken, ``accountant``) is at most this is used.
      l2_norm_clip: per-example clipping norm ``C`` (> 0).
      batch_size: batch size (``"shuffle"``) or expected batch size
        ``q * n`` (``"poisson"``); at most ``n``.
      epochs: passes; each is ``n // batch_size`` steps.
      learning_rate, momentum: ``keras.optimizers.SGD`` settings.
      sampling: ``"poisson"`` (default; what the accountant assumes) or
        ``"shuffle"`` (fixed-size shuffled batches, as the TF-Privacy path).
      delta: δ in ``(0, 1/n)``; default the largest power of ten below 1/n.
      accountant: ``"rdp"`` or ``"pld"``.
      seed: seeds the batch sampler (NumPy) and the noise (JAX), not the
        model's initial weights.
      overflow_probability: chance, over the whole run, that some Poisson
        batch exceeds the padded shape (see the module docstring).
      per_example: ``"auto"``, ``"vmap"`` or ``"dense"``; see
        :func:`make_clipped_gradient_sum` (same update, different speed).
      verbose: 1 prints one line per epoch.
      on_epoch_end: called as ``on_epoch_end(epoch, logs)`` after each epoch
        (outside its timing) with ``logs`` holding that epoch's ``loss``,
        ``clipped_fraction`` and ``epoch_time_s``; the model's weights are not
        updated until training ends.

    Returns:
      A :class:`DPSGDKerasResult`; the model's weights hold the result.

    Raises:
      RuntimeError: Keras does not run the JAX backend.
      ValueError: bad settings or data, BatchNorm or other training-time
        state in the model (all before any training step).

    Example:
      >>> model = build_model("mlp_tanh", (446,), 30, seed=0)  # doctest: +SKIP
      >>> r = train_dpsgd_keras(model, x, y, target_epsilon=4.0,
      ...                       batch_size=128, epochs=10)  # doctest: +SKIP
      >>> r.epsilon <= 4.0  # doctest: +SKIP
      True

    References:
      Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
    """
    check_jax_backend()
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got '{sampling}'.")
    if per_example not in PER_EXAMPLE:
        raise ValueError(f"per_example must be one of {PER_EXAMPLE}, got '{per_example}'.")
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ValueError("Give exactly one of noise_multiplier and target_epsilon.")
    if target_epsilon is not None and not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise ValueError(f"target_epsilon must be a finite number > 0, got {target_epsilon}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
    check_dp_model(model)
    x, y = _check_data(x, y)
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs}.")
    n, epochs = len(x), int(epochs)
    delta = validate_dp_arguments(n, batch_size, 1.0 if noise_multiplier is None
                                  else float(noise_multiplier), epochs, delta,
                                  l2_norm_clip, None, accountant)
    num_classes, static = _probe(model, x)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"Labels must lie in [0, {num_classes}) (the model's number "
                         f"of logits), got [{y.min()}, {y.max()}].")
    if not static:
        raise ValueError(
            "The model changes non-trainable state in training mode (e.g. Dropout "
            "seeds or normalization statistics); per-example DP-SGD here supports "
            "stateless models only (e.g. keras_mi.models.build_model architectures).")
    steps_per_epoch = n // batch_size
    steps = epochs * steps_per_epoch
    if target_epsilon is not None:
        noise_multiplier = noise_multiplier_for_epsilon(
            target_epsilon, n, batch_size, epochs, delta, accountant, steps=steps)
    noise_multiplier = float(noise_multiplier)
    report = privacy_report(n, batch_size, noise_multiplier, epochs, delta, accountant,
                            steps=steps)
    report = dataclasses.replace(report, sampling_assumption=(
        _POISSON_ASSUMPTION if sampling == "poisson" else _SHUFFLE_ASSUMPTION))

    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    import keras  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(seed)
    batches = sample_batches(n, batch_size, steps_per_epoch, epochs, sampling, rng)
    cap = (poisson_batch_cap(n, batch_size / n, steps, overflow_probability)
           if sampling == "poisson" else batch_size)
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    optimizer.build(model.trainable_variables)
    clipped_sum, method = make_clipped_gradient_sum(model, l2_norm_clip, per_example)
    if method == "dense":
        try:
            _check_dense_forward(model, clipped_sum.forward, x[:4])
        except (ValueError, RuntimeError):
            if per_example == "dense":
                raise
            # e.g. Dense on rank-3 inputs: the |a||delta| identity does not hold.
            clipped_sum, method = make_clipped_gradient_sum(model, l2_norm_clip, "vmap")
    noise_std = noise_multiplier * float(l2_norm_clip)
    scale = 1.0 / float(batch_size)  # the expected batch size q * n

    # Noise: one RNG draw per large variable (faster to run on CPU) and one
    # flat draw for all the small ones (each draw adds seconds of compilation).
    sizes = [int(np.prod(v.shape)) for v in model.trainable_variables]
    own_draw = [size >= 65536 for size in sizes]
    small_total = sum(size for size, own in zip(sizes, own_draw) if not own)

    def gaussian(key):
        keys = jax.random.split(key, sum(own_draw) + 1)
        flat = jax.random.normal(keys[-1], (small_total,), "float32")
        out, offset, j = [], 0, 0
        for v, size, own in zip(model.trainable_variables, sizes, own_draw):
            if own:
                out.append(jax.random.normal(keys[j], v.shape, "float32"))
                j += 1
            else:
                out.append(flat[offset:offset + size].reshape(v.shape))
                offset += size
        return out

    def noisy_update(trainable, opt_vars, summed, key):
        if noise_std == 0:  # no RNG in the graph: exactly the clipped mean
            return optimizer.stateless_apply(opt_vars, [s * scale for s in summed], trainable)
        grads = [(s + noise_std * z.astype(s.dtype)) * scale
                 for s, z in zip(summed, gaussian(key))]
        return optimizer.stateless_apply(opt_vars, grads, trainable)

    def gathered_sum(trainable, non_trainable, x_all, y_all, idx, mask):
        return clipped_sum(trainable, non_trainable, x_all[idx], y_all[idx], mask)

    def fused_step(trainable, non_trainable, opt_vars, x_all, y_all, idx, mask, key):
        summed, loss, clipped = gathered_sum(trainable, non_trainable, x_all, y_all, idx, mask)
        trainable, opt_vars = noisy_update(trainable, opt_vars, summed, key)
        return trainable, opt_vars, loss, clipped

    fused_step = jax.jit(fused_step, donate_argnums=(0, 2))
    chunk_sum = jax.jit(gathered_sum)
    apply_sum = jax.jit(noisy_update, donate_argnums=(0, 1))

    x_all, y_all = jnp.asarray(x), jnp.asarray(y)
    # Copies: the step donates its input buffers, the model's own must survive.
    trainable = [jnp.array(v.value, copy=True) for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    opt_vars = [jnp.array(v.value, copy=True) for v in optimizer.variables]
    base_key = jax.random.PRNGKey(seed)

    def padded(chunk):
        idx = np.zeros(cap, dtype="int32")
        mask = np.zeros(cap, dtype="float32")
        idx[:len(chunk)] = chunk
        mask[:len(chunk)] = 1.0
        return idx, mask

    history = {"loss": [], "clipped_fraction": []}
    epoch_times, overflow_steps = [], 0
    for epoch in range(epochs):
        start = time.perf_counter()
        losses, clipped_counts = [], []
        for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
            batch = batches[step]
            key = jax.random.fold_in(base_key, step)
            if len(batch) <= cap:
                idx, mask = padded(batch)
                trainable, opt_vars, loss, clipped = fused_step(
                    trainable, non_trainable, opt_vars, x_all, y_all, idx, mask, key)
            else:  # Poisson overflow: same update from several padded chunks.
                overflow_steps += 1
                summed, loss, clipped = None, 0.0, 0.0
                for lo in range(0, len(batch), cap):
                    idx, mask = padded(batch[lo:lo + cap])
                    part, part_loss, part_clipped = chunk_sum(
                        trainable, non_trainable, x_all, y_all, idx, mask)
                    summed = part if summed is None else [a + b for a, b in zip(summed, part)]
                    loss, clipped = loss + part_loss, clipped + part_clipped
                trainable, opt_vars = apply_sum(trainable, opt_vars, summed, key)
            losses.append(loss)
            clipped_counts.append(clipped)
        jax.block_until_ready(trainable)
        epoch_times.append(time.perf_counter() - start)
        seen = sum(len(b) for b in batches[epoch * steps_per_epoch:(epoch + 1) * steps_per_epoch])
        history["loss"].append(float(sum(float(v) for v in losses)) / max(seen, 1))
        history["clipped_fraction"].append(
            float(sum(float(v) for v in clipped_counts)) / max(seen, 1))
        if verbose:
            print(f"[dpsgd_keras] epoch {epoch + 1}/{epochs} loss "
                  f"{history['loss'][-1]:.4f} clipped {history['clipped_fraction'][-1]:.2f} "
                  f"{epoch_times[-1]:.2f}s", flush=True)
        if on_epoch_end is not None:
            on_epoch_end(epoch, {"loss": history["loss"][-1], "epoch_time_s": epoch_times[-1],
                                 "clipped_fraction": history["clipped_fraction"][-1]})

    for variable, value in zip(model.trainable_variables, trainable):
        variable.assign(value)
    return DPSGDKerasResult(
        epsilon=report.epsilon, delta=delta, noise_multiplier=noise_multiplier,
        l2_norm_clip=float(l2_norm_clip), batch_size=int(batch_size), epochs=epochs,
        learning_rate=float(learning_rate), momentum=float(momentum), sampling=sampling,
        per_example_method=method,
        steps=steps, privacy=report, padded_batch_size=int(cap),
        batch_sizes=np.array([len(b) for b in batches]), overflow_steps=overflow_steps,
        epoch_time_s=epoch_times, history=history)
