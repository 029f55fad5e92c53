"""keras_mi.models: the paper's target architectures (Keras 3 and tf-keras builds).

Example:
  >>> from keras_mi.models import build_model
  >>> model = build_model("alexnet", (32, 32, 3), 10, seed=0)
"""

from keras_mi.models.architectures import (
    LayerSpec,
    architecture_spec,
    available_architectures,
    build_model,
)

__all__ = ["LayerSpec", "architecture_spec", "available_architectures", "build_model"]
