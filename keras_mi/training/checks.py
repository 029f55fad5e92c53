"""Checks `MMDModel.fit` runs before training, so bad input fails early."""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_mi.outputs import looks_like_probabilities
from keras_mi.training.callbacks import ACCURACY_NAMES
from keras_mi.training.reference import ReferenceSet, labels_to_int

__all__ = ["accuracy_metric_name", "check_before_fit"]


def accuracy_metric_name(model):
    """The log key of the accuracy metric compiled into ``model``, or None.

    Example:
      >>> accuracy_metric_name(model)  # after compile(metrics=["accuracy"])  # doctest: +SKIP
      'accuracy'
    """
    config = model.get_compile_config() or {}
    names = []

    def collect(spec):
        if isinstance(spec, (list, tuple)):
            for s in spec:
                collect(s)
        elif isinstance(spec, dict) and "class_name" in spec:
            names.append((spec.get("config") or {}).get("name"))
        elif isinstance(spec, dict):  # per-output metrics
            for s in spec.values():
                collect(s)
        else:
            names.append(spec if isinstance(spec, str) else getattr(spec, "name", None))

    collect([config.get("metrics"), config.get("weighted_metrics")])
    return next((n for n in names if n in ACCURACY_NAMES), None)


def _is_tf_dataset(x) -> bool:
    mod = type(x).__module__
    return mod.startswith("tensorflow") and hasattr(x, "element_spec")


def _ensure_built(model):
    """Builds the wrapped model on a few reference rows and checks its outputs.

    Measures the output width of models without a static output shape
    (subclassed models) and refuses softmax outputs when the wrapper was
    told to expect logits.
    """
    rows = keras.tree.map_structure(lambda t: t[:8], model.reference.x)
    out = model.model(rows, training=False)
    if model.num_classes is None and len(out.shape) == 2 and out.shape[-1] is not None:
        model._output_width = int(out.shape[-1])
    # The wrapper owns no weights: it is built when the wrapped model is.
    model.built = model.built or model.model.built
    k = model.num_classes
    if k is None:
        raise ValueError(
            "Cannot infer the number of classes: the wrapped model must output (batch, classes); "
            f"on reference rows it returned shape {tuple(out.shape)}."
        )
    if model.from_logits and looks_like_probabilities(keras.ops.convert_to_numpy(out)):
        raise ValueError(
            "The wrapped model's outputs are non-negative and sum to 1 per row: it ends in "
            "softmax, but MMDModel expects logits (from_logits=True). Pass "
            "MMDModel(..., from_logits=False) and a loss with from_logits=False, or remove the "
            "final softmax."
        )
    if model.reference.num_classes != k:
        ref = model.reference
        if ref.num_classes > k:
            raise ValueError(
                f"Reference labels go up to class {ref.num_classes - 1} "
                f"but the model has {k} outputs."
            )
        model._use_reference(ReferenceSet.create(
            ref.x, keras.ops.convert_to_numpy(ref.labels), num_classes=k, seed=model.seed
        ))
    return k


def _check_shapes(what, shapes, ref_shapes):
    if len(shapes) != len(ref_shapes):
        raise ValueError(
            f"{what} have {len(shapes)} input tensors but the reference set has {len(ref_shapes)}."
        )
    for got, want in zip(shapes, ref_shapes):
        got = tuple(got)
        if len(got) != len(want) or any(g is not None and g != w for g, w in zip(got, want)):
            raise ValueError(
                f"{what} have per-example shape {got} but the reference inputs have {tuple(want)}; "
                "the reference set must be preprocessed exactly like the training data."
            )


def check_before_fit(model, x, y, fit_kwargs):
    """Validates the reference set against the model and the training data.

    Raises `RuntimeError` when the model has no reference set and
    `ValueError` when: the reference misses a class (for arrays: a class of
    the training labels; otherwise: any class of the model's output), a
    training batch is larger than the whole reference set, feature shapes
    differ, or labels are out of range / of the wrong one-hot width.
    """
    if model.reference is None:
        raise RuntimeError(
            "MMDModel has no reference set; pass reference=(x_ref, y_ref) to the constructor or "
            "call model.set_reference(x_ref, y_ref) before fit (reference sets are not saved)."
        )
    k = _ensure_built(model)
    ref = model.reference
    counts = ref.class_counts
    if _is_tf_dataset(x):
        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            raise ValueError(
                "A tf.data.Dataset for MMDModel.fit must yield (x, y) or (x, y, sample_weight)."
            )
        x_spec, y_spec = spec[0], spec[1]
        _check_shapes(
            "Training inputs", [s.shape[1:] for s in keras.tree.flatten(x_spec)], ref.feature_shapes
        )
        y_shape = tuple(y_spec.shape)
        if len(y_shape) == 2 and y_shape[-1] not in (None, 1, k):
            raise ValueError(
                f"Dataset labels are rows of width {y_shape[-1]} but the model has {k} outputs; "
                f"use int labels or one-hot/soft rows of width {k}."
            )
        batch = x_spec.shape[0] if hasattr(x_spec, "shape") else None
        needed = np.arange(k)
    elif x is not None and y is not None and not _is_py_dataset(x):
        shapes = [tuple(np.shape(t)[1:]) for t in keras.tree.flatten(x)]
        _check_shapes("Training inputs", shapes, ref.feature_shapes)
        labels = labels_to_int(y, num_classes=k, what="Training labels")
        needed = np.unique(labels)
        batch = fit_kwargs.get("batch_size") or 32
        batch = min(batch, labels.shape[0])
        if not model.replace and labels.size:
            expected = batch * np.bincount(labels, minlength=k) / labels.size
            short = np.nonzero((expected > counts) & (counts > 0))[0]
            if short.size:
                warnings.warn(
                    f"Classes {short.tolist()} have fewer reference examples than a training batch "
                    "holds on average; their reference draws will repeat within a batch.",
                    stacklevel=3,
                )
    else:
        batch = None
        needed = np.arange(k)
    missing = [int(c) for c in needed if counts[c] == 0]
    if missing:
        raise ValueError(
            f"The reference set has no examples of classes {missing}, which "
            + ("the training labels contain" if needed.size < k else "the model predicts")
            + "; a class-matched reference batch needs at least one example of each. "
            "Stratify the reference split."
        )
    if batch is not None and batch > ref.num_examples:
        raise ValueError(
            f"A training batch holds {batch} examples "
            f"but the reference set only {ref.num_examples}; "
            "use a smaller batch_size or a larger reference set."
        )


def _is_py_dataset(x) -> bool:
    return isinstance(x, keras.utils.PyDataset)
