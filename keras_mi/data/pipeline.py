"""tf.data helpers: a shuffled, batched, mixup-augmented training stream.

TensorFlow is imported inside the functions, so ``import keras_mi.data`` works
without it; the returned `tf.data.Dataset` feeds ``model.fit`` under every
Keras backend (the mixing runs as TensorFlow ops inside the pipeline).
"""

import numpy as np

from keras_mi.layers.mix_up import MixUp, check_values


def mixup_dataset(
    x,
    y,
    num_classes,
    alpha=1.0,
    batch_size=128,
    seed=None,
    shuffle=True,
    drop_remainder=False,
    per_example=False,
):
    """A `tf.data.Dataset` of mixup batches ``(x_mixed, y_soft)``.

    Each pass reshuffles (when ``shuffle``), batches, and mixes every batch
    with `keras_mi.layers.MixUp` (one ``lam ~ Beta(alpha, alpha)`` per batch
    by default, as in the paper). Labels come out as float soft labels of
    width ``num_classes`` whose rows sum to 1. A given ``seed`` fixes both
    the shuffling and the mixing, so two datasets built alike yield the same
    batches (under any Keras backend).

    Args:
      x: array of inputs, first axis = examples.
      y: integer class indices ``(n,)`` / ``(n, 1)`` or one-hot/soft ``(n, num_classes)``.
      num_classes: number of classes.
      alpha: Beta concentration, > 0 (the paper uses 1.0).
      batch_size: examples per batch, >= 2.
      seed: integer seed, or ``None`` for a random one.
      shuffle: reshuffle the examples on every pass.
      drop_remainder: drop the last, smaller batch. With ``False``, a
        final batch of a single example (``len(x) % batch_size == 1``)
        cannot be mixed and raises here, before training starts.
      per_example: one ``lam`` per example instead of per batch.

    Returns:
      A `tf.data.Dataset` of ``(float32 inputs, float32 soft labels)``.

    Example:
      >>> import numpy as np
      >>> x = np.random.rand(100, 8).astype("float32")
      >>> y = np.random.randint(0, 3, size=100)
      >>> ds = mixup_dataset(x, y, num_classes=3, batch_size=32, seed=0)
      >>> xb, yb = next(iter(ds))
      >>> tuple(yb.shape)
      (32, 3)
    """
    import tensorflow as tf

    x = np.asarray(x)
    y = np.asarray(y)
    n = x.shape[0] if x.ndim else 0
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(
            f"mixup_dataset: {n} inputs but {y.shape[0] if y.ndim else 0} labels; "
            "pass exactly one label per example.")
    if n < 2:
        raise ValueError(f"mixup_dataset needs at least 2 examples to mix; got {n}.")
    if int(batch_size) != batch_size or batch_size < 2:
        raise ValueError(f"mixup_dataset: `batch_size` must be an integer >= 2 (mixup pairs "
                         f"examples within a batch). Received: {batch_size!r}")
    if not drop_remainder and n % batch_size == 1:
        raise ValueError(
            f"mixup_dataset: {n} examples in batches of {batch_size} leave a last batch of one "
            "example, which cannot be mixed. Pass drop_remainder=True or another batch_size.")
    if drop_remainder and n < batch_size:
        raise ValueError(f"mixup_dataset: drop_remainder=True with {n} examples < batch_size="
                         f"{batch_size} would yield no batch at all.")
    # The layer checks alpha and num_classes; the labels are checked once here, on NumPy.
    seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
    states = np.random.SeedSequence(seed).generate_state(2) % 2**31
    shuffle_seed, mix_seed = (int(s) for s in states)
    layer = MixUp(alpha=alpha, num_classes=num_classes, seed=mix_seed, per_example=per_example)
    check_values(x, y, layer.num_classes)

    if np.issubdtype(x.dtype, np.floating) and x.dtype != np.float32:
        x = x.astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size), drop_remainder=bool(drop_remainder))
    # Sequential map: the mixing stream advances in batch order (reproducible).
    ds = ds.map(lambda xb, yb: layer(xb, yb, training=True))
    return ds.prefetch(tf.data.AUTOTUNE)
