"""Synthetic model outputs for attack tests."""

import numpy as np
import pytest

from keras_mi.outputs import ModelOutputs


def make_outputs(seed=0, n=400, num_classes=5, member_boost=2.0, reference=False,
                 dtype=np.float64):
    """Logits where members' true-class logit is boosted by ``member_boost``."""
    rng = np.random.default_rng(seed)

    def split(boost):
        y = rng.integers(0, num_classes, n)
        z = rng.normal(0, 1.5, (n, num_classes))
        z[np.arange(n), y] += 1.0 + boost * rng.uniform(0.5, 1.5, n)
        return z.astype(dtype), y

    splits = {"members": split(member_boost), "non_members": split(0.0)}
    if reference:
        splits["reference"] = split(0.0)
    return ModelOutputs.from_arrays(**splits)


@pytest.fixture
def outputs():
    return make_outputs()


@pytest.fixture(name="make_outputs")
def make_outputs_fixture():
    """The :func:`make_outputs` factory."""
    return make_outputs
