"""The docstring examples of the NumPy-only attack modules run and hold."""

import doctest
import importlib

import numpy as np
import pytest

from keras_mi.attacks import evaluate_scores, runner
from keras_mi.outputs import ModelOutputs


@pytest.mark.parametrize("module", ["metrics", "results", "scores", "threshold", "runner",
                                    "bank", "rmia"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"keras_mi.attacks.{module}")
    try:
        result = doctest.testmod(mod, extraglobs={"np": np, "ModelOutputs": ModelOutputs,
                                                  "evaluate_scores": evaluate_scores})
    finally:  # the runner's example registers a demo attack; unregister it
        runner.ATTACKS.pop("zero_score", None)
    assert result.attempted > 0 and result.failed == 0
