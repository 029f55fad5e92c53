"""Small pretrained demo models with JSON cards.

Each demo model is three files in a folder (the repository's ``saved_models/``
by default): ``<name>.keras`` (a plain Keras model ending in logits; loads with
``safe_mode=True``), ``<name>.json`` (its card) and ``<name>.split.json`` (the
:class:`keras_mi.data.MembershipSplit` it was trained on, so anyone can
recompute its accuracy and attack it). No pickle anywhere. The card records
the dataset, the split fingerprint, the config, train/test accuracy, the
strongest attack's AUC, the package version and the model file's SHA-256; a
file that does not match its card is refused.

``python saved_models/regenerate.py`` rebuilds every model and card from the
configs in ``saved_models/configs/``.

Example:
  >>> from keras_mi import saved_models
  >>> model, card = saved_models.load("location_mmd_mixup")  # doctest: +SKIP
  >>> card.test_accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Any, Dict, List, Tuple

__all__ = ["ModelCard", "available", "default_directory", "load", "load_card", "sha256_of",
           "split_path"]

CARD_VERSION = 1


@dataclasses.dataclass
class ModelCard:
    """What a demo model is and how well it does (JSON on disk).

    Example:
      >>> card = ModelCard(name="m", dataset="location", defense="none",
      ...     split_fingerprint="ab", config={}, train_accuracy=1.0,
      ...     test_accuracy=0.6, strongest_attack="loss", strongest_auc=0.8,
      ...     package_version="0.1.0", keras_version="3.15.1", model_sha256="00")
      >>> ModelCard.from_dict(card.to_dict()) == card
      True
    """

    name: str
    dataset: str
    defense: str
    split_fingerprint: str
    config: Dict[str, Any]
    train_accuracy: float
    test_accuracy: float
    strongest_attack: str
    strongest_auc: float
    package_version: str
    keras_version: str
    model_sha256: str
    card_version: int = CARD_VERSION

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ModelCard":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"Unknown model-card fields: {sorted(unknown)}.")
        return cls(**data)


def default_directory() -> pathlib.Path:
    """The repository's ``saved_models/`` folder (next to the package)."""
    return pathlib.Path(__file__).resolve().parents[1] / "saved_models"


def _folder(directory) -> pathlib.Path:
    folder = pathlib.Path(directory) if directory is not None else default_directory()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No saved-models folder at {folder}; pass directory= (a keras-mi checkout's "
            "saved_models/).")
    return folder


def available(directory=None) -> List[str]:
    """Names of the demo models in ``directory`` (those with a card and a model file)."""
    folder = _folder(directory)
    return sorted(p.stem for p in folder.glob("*.json")
                  if not p.name.endswith(".split.json") and p.with_suffix(".keras").exists())


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_card(name: str, directory=None) -> ModelCard:
    """The card of demo model ``name``."""
    folder = _folder(directory)
    path = folder / f"{name}.json"
    if not path.exists():
        raise ValueError(f"No saved model '{name}' in {folder}; available: {available(folder)}.")
    return ModelCard.from_dict(json.loads(path.read_text()))


def load(name: str, directory=None) -> Tuple[Any, ModelCard]:
    """Loads demo model ``name`` (``safe_mode=True``) and its card.

    Raises:
      ValueError: unknown name, or a model file whose SHA-256 differs from
        its card's (a changed or corrupted file is never used silently).
    """
    import keras

    import keras_mi.layers  # noqa: F401  (registers keras_mi serializables)
    import keras_mi.training  # noqa: F401

    folder = _folder(directory)
    card = load_card(name, folder)
    path = folder / f"{name}.keras"
    actual = sha256_of(path)
    if actual != card.model_sha256:
        raise ValueError(f"{path} has SHA-256 {actual}, but its card says "
                         f"{card.model_sha256}; regenerate with saved_models/regenerate.py.")
    return keras.saving.load_model(path, safe_mode=True), card


def split_path(name: str, directory=None) -> pathlib.Path:
    """Path of the MembershipSplit JSON a demo model was trained on."""
    return _folder(directory) / f"{name}.split.json"
