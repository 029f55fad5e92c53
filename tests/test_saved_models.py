"""The demo models in saved_models/: load safely, and match their cards on the recorded split."""

import json
import shutil

import numpy as np
import pytest

from keras_mi import saved_models
from keras_mi.data import MembershipSplit, load_dataset
from keras_mi.experiment.runner import _fingerprint as split_identity


def test_demo_models_are_listed():
    names = saved_models.available()
    assert {"location_none", "location_mmd", "location_mmd_mixup"} <= set(names)


@pytest.mark.parametrize("name", ["location_none", "location_mmd", "location_mmd_mixup"])
def test_saved_model_accuracy_matches_its_card(name, data_dir):
    model, card = saved_models.load(name)
    assert card.dataset == "location" and card.name == name
    x, y = load_dataset(card.dataset, data_dir=data_dir)
    # MembershipSplit.load refuses a split whose data fingerprint differs.
    split = MembershipSplit.load(saved_models.split_path(name), x, y)
    # The card's split fingerprint: pool fingerprint + the index sets.
    assert split_identity(split) == card.split_fingerprint
    for indices, expected in ((split.members, card.train_accuracy),
                              (split.test, card.test_accuracy)):
        logits = model.predict(x[indices], batch_size=1024, verbose=0)
        accuracy = float(np.mean(np.argmax(logits, axis=1) == y[indices]))
        # One record of 1,000 is 1e-3: allow for a borderline argmax on another CPU.
        assert accuracy == pytest.approx(expected, abs=1.5e-3)


def test_changed_model_file_is_refused(tmp_path):
    for suffix in (".keras", ".json", ".split.json"):
        shutil.copyfile(saved_models.default_directory() / f"location_none{suffix}",
                        tmp_path / f"location_none{suffix}")
    with open(tmp_path / "location_none.keras", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="SHA-256"):
        saved_models.load("location_none", directory=tmp_path)


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="location_none"):
        saved_models.load("no_such_model")


def test_card_rejects_unknown_fields(tmp_path):
    card = json.loads((saved_models.default_directory() / "location_none.json").read_text())
    card["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        saved_models.ModelCard.from_dict(card)
