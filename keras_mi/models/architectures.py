"""The paper's target architectures, from one spec, for Keras 3 and tf-keras.

Each architecture is a list of :class:`LayerSpec` (a layer kind plus its
arguments). One builder turns that list into a ``Sequential`` model using the
layer classes of either Keras 3 (``flavor="keras"``) or tf-keras, i.e. Keras 2
(``flavor="tf_keras"``, which TF-Privacy's DP optimizers need). Both flavors
read the same list, so the defended models and the DP-SGD baseline cannot
drift apart. Every model ends in logits (no softmax).

Architectures (channels-last inputs):

* ``"alexnet"`` -- the CIFAR AlexNet of ``bearpaw/pytorch-classification``
  (``models/cifar/alexnet.py``, "FC layers are removed. Paddings are
  adjusted."), which the paper's models follow: conv 64 k11 s4 p5, relu,
  maxpool 2, conv 192 k5 p2, relu, maxpool 2, conv 384 k3 p1, relu,
  conv 256 k3 p1, relu, conv 256 k3 p1, relu, maxpool 2, linear to classes.
  PyTorch's symmetric padding is reproduced with ``ZeroPadding2D`` followed
  by a ``"valid"`` convolution (Keras' ``"same"`` pads asymmetrically for
  stride 4). A 32x32 input reaches the classifier as 1x1x256.
* ``"mlp_tanh"`` -- fully connected 1024-512-256 with tanh, then linear to
  classes (the Purchase/Texas/Location model of Nasr et al., used by the
  paper).
* ``"small_cnn"`` -- the MNIST CNN of TF-Privacy's DP-SGD tutorial: conv 16
  k8 s2 same, relu, maxpool 2 s1, conv 32 k4 s2 valid, relu, maxpool 2 s1,
  dense 32 relu, linear to classes.
* ``"linear"`` -- softmax regression: (flatten,) linear to classes. The
  DP-SGD baseline's small model: under DP the noise grows with the number
  of weights, and smaller models often win (Ponomareva et al., 2023).

No BatchNorm anywhere, so all four work with per-example clipping.

Importing this module imports Keras 3 only; tf-keras (and so TensorFlow) is
imported lazily when ``flavor="tf_keras"`` is requested.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

FLAVORS = ("keras", "tf_keras")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One layer of an architecture, independent of the Keras flavor.

    Attributes:
      kind: one of ``"pad"``, ``"conv"``, ``"maxpool"``, ``"flatten"``,
        ``"dense"``.
      name: layer name, identical in both flavors.
      args: keyword arguments; ``conv``: ``filters, kernel_size, strides,
        padding, activation``; ``pad``: ``padding``; ``maxpool``:
        ``pool_size, strides``; ``dense``: ``units, activation``.

    Example:
      >>> LayerSpec("dense", "logits", {"units": 10, "activation": None}).kind
      'dense'
    """

    kind: str
    name: str
    args: Dict[str, Any] = dataclasses.field(default_factory=dict)


def _conv(name, filters, kernel_size, strides=1, padding="valid", activation="relu"):
    return LayerSpec("conv", name, dict(filters=filters, kernel_size=kernel_size,
                                        strides=strides, padding=padding,
                                        activation=activation))


def _dense(name, units, activation=None):
    return LayerSpec("dense", name, dict(units=units, activation=activation))


def _pool(name, pool_size=2, strides=None):
    return LayerSpec("maxpool", name, dict(pool_size=pool_size,
                                           strides=strides or pool_size))


def _alexnet(input_shape, num_classes) -> List[LayerSpec]:
    return [
        LayerSpec("pad", "pad1", dict(padding=5)),
        _conv("conv1", 64, 11, strides=4),
        _pool("pool1"),
        _conv("conv2", 192, 5, padding="same"),  # == PyTorch padding=2
        _pool("pool2"),
        _conv("conv3", 384, 3, padding="same"),  # == PyTorch padding=1
        _conv("conv4", 256, 3, padding="same"),
        _conv("conv5", 256, 3, padding="same"),
        _pool("pool3"),
        LayerSpec("flatten", "flatten"),
        _dense("logits", num_classes),
    ]


def _mlp_tanh(input_shape, num_classes) -> List[LayerSpec]:
    head = [LayerSpec("flatten", "flatten")] if len(input_shape) > 1 else []
    return head + [
        _dense("dense1", 1024, "tanh"),
        _dense("dense2", 512, "tanh"),
        _dense("dense3", 256, "tanh"),
        _dense("logits", num_classes),
    ]


def _small_cnn(input_shape, num_classes) -> List[LayerSpec]:
    return [
        _conv("conv1", 16, 8, strides=2, padding="same"),
        _pool("pool1", 2, strides=1),
        _conv("conv2", 32, 4, strides=2, padding="valid"),
        _pool("pool2", 2, strides=1),
        LayerSpec("flatten", "flatten"),
        _dense("dense1", 32, "relu"),
        _dense("logits", num_classes),
    ]


def _linear(input_shape, num_classes) -> List[LayerSpec]:
    head = [LayerSpec("flatten", "flatten")] if len(input_shape) > 1 else []
    return head + [_dense("logits", num_classes)]


# name -> (spec function, required input rank)
_ARCHITECTURES: Dict[str, Tuple[Callable[..., List[LayerSpec]], Optional[int]]] = {
    "alexnet": (_alexnet, 3),
    "linear": (_linear, None),
    "mlp_tanh": (_mlp_tanh, None),
    "small_cnn": (_small_cnn, 3),
}


def available_architectures() -> List[str]:
    """Names accepted by :func:`build_model`.

    Example:
      >>> available_architectures()
      ['alexnet', 'linear', 'mlp_tanh', 'small_cnn']
    """
    return sorted(_ARCHITECTURES)


def _spatial_out(size: int, spec: LayerSpec) -> int:
    a = spec.args
    if spec.kind == "pad":
        return size + 2 * a["padding"]
    if spec.kind == "conv":
        k, s = a["kernel_size"], a["strides"]
        return -(-size // s) if a["padding"] == "same" else (size - k) // s + 1
    if spec.kind == "maxpool":
        return (size - a["pool_size"]) // a["strides"] + 1
    return size


def architecture_spec(name: str, input_shape: Sequence[int],
                      num_classes: int) -> List[LayerSpec]:
    """The flavor-independent layer list of an architecture, after checks.

    Raises:
      ValueError: unknown name, ``num_classes < 2``, an input of the wrong
        rank, or an image too small for the architecture's downsampling.

    Example:
      >>> [s.name for s in architecture_spec("mlp_tanh", (446,), 30)]
      ['dense1', 'dense2', 'dense3', 'logits']
    """
    if name not in _ARCHITECTURES:
        raise ValueError(f"Unknown architecture '{name}'; choose one of "
                         f"{available_architectures()}.")
    input_shape = tuple(int(d) for d in input_shape)
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    if not input_shape or any(d < 1 for d in input_shape):
        raise ValueError(f"input_shape must be positive, without the batch "
                         f"axis, got {input_shape}.")
    make, rank = _ARCHITECTURES[name]
    if rank is not None and len(input_shape) != rank:
        raise ValueError(
            f"'{name}' needs channels-last images (height, width, channels), "
            f"got input_shape={input_shape}.")
    specs = make(input_shape, int(num_classes))
    if rank == 3:
        h, w = input_shape[:2]
        for spec in specs:
            h, w = _spatial_out(h, spec), _spatial_out(w, spec)
            if h < 1 or w < 1:
                raise ValueError(
                    f"Input {input_shape[:2]} is too small for '{name}': it "
                    f"vanishes at layer '{spec.name}'. Resize the images "
                    f"(e.g. to 32x32 for alexnet).")
    return specs


def _layer_module(flavor: str):
    if flavor == "keras":
        import keras
        return keras
    if flavor == "tf_keras":
        try:
            import tf_keras
        except ImportError as err:
            raise ImportError(
                "flavor='tf_keras' needs the tf-keras package (pip install "
                "tf-keras==2.21.0); it is only used for the DP-SGD baseline."
            ) from err
        return tf_keras
    raise ValueError(f"flavor must be one of {FLAVORS}, got '{flavor}'.")


def _make_layer(k, spec: LayerSpec, seed: Optional[int]):
    a = dict(spec.args)
    if spec.kind == "pad":
        return k.layers.ZeroPadding2D(a["padding"], name=spec.name)
    if spec.kind == "maxpool":
        return k.layers.MaxPooling2D(a["pool_size"], strides=a["strides"],
                                     name=spec.name)
    if spec.kind == "flatten":
        return k.layers.Flatten(name=spec.name)
    init = k.initializers.GlorotUniform(seed=seed)
    if spec.kind == "conv":
        return k.layers.Conv2D(a["filters"], a["kernel_size"], strides=a["strides"],
                               padding=a["padding"], activation=a["activation"],
                               kernel_initializer=init, name=spec.name)
    if spec.kind == "dense":
        return k.layers.Dense(a["units"], activation=a["activation"],
                              kernel_initializer=init, name=spec.name)
    raise ValueError(f"Unknown layer kind '{spec.kind}'.")


def build_model(name: str, input_shape: Sequence[int], num_classes: int,
                flavor: str = "keras", seed: Optional[int] = None):
    """Builds an uncompiled ``Sequential`` model ending in logits.

    Args:
      name: one of :func:`available_architectures`.
      input_shape: shape of one example, without the batch axis (images are
        channels-last, e.g. ``(32, 32, 3)``).
      num_classes: number of output logits.
      flavor: ``"keras"`` (Keras 3, any backend; does not import TensorFlow
        under JAX) or ``"tf_keras"`` (Keras 2 via the tf-keras package, for
        TF-Privacy's DP optimizers).
      seed: seeds the weight initializers (layer ``i`` gets ``seed + i``), so
        two builds with the same seed and flavor start identical. ``None``
        draws fresh weights.

    Returns:
      A built, uncompiled model; train it with a from-logits loss.

    Example:
      >>> model = build_model("mlp_tanh", (446,), 30, seed=0)
      >>> model.output_shape
      (None, 30)
    """
    specs = architecture_spec(name, input_shape, num_classes)
    k = _layer_module(flavor)
    layers = [_make_layer(k, spec, None if seed is None else int(seed) + i)
              for i, spec in enumerate(specs)]
    model = k.Sequential([k.Input(shape=tuple(int(d) for d in input_shape))] + layers,
                         name=name)
    return model
