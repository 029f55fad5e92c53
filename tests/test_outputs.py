"""predict_logits: keras-mi's one way to get logits from a model (it refuses softmax)."""

import warnings

import numpy as np
import pytest

from keras_mi.attacks import shadow_jobs
from keras_mi.outputs import ModelOutputs, predict_logits, probabilities_to_logits


class _Predictor:
    def __init__(self, out):
        self.out, self.calls = out, []

    def predict(self, x, batch_size=None, verbose=0):
        self.calls.append(batch_size)
        return self.out[: len(x)]


def _probs(n=6, k=3, seed=0):
    z = np.random.default_rng(seed).normal(size=(n, k))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return z, e / e.sum(axis=1, keepdims=True)


def test_logits_pass_through_unchanged():
    z, _ = _probs()
    model = _Predictor(z)
    np.testing.assert_array_equal(predict_logits(model, np.zeros((6, 2)), batch_size=7), z)
    assert model.calls == [7]
    assert predict_logits(lambda v: z, np.zeros((6, 2)), dtype=np.float32).dtype == np.float32


def test_softmax_outputs_are_refused_warned_or_ignored_as_asked():
    _, p = _probs()
    with pytest.raises(ValueError, match="ends in softmax"):
        predict_logits(lambda v: p, np.zeros((6, 2)))
    with pytest.warns(UserWarning, match="probabilities|softmax"):
        predict_logits(lambda v: p, np.zeros((6, 2)), on_probabilities="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            predict_logits(lambda v: p, np.zeros((6, 2)), on_probabilities="ignore"), p)
    with pytest.raises(ValueError, match="on_probabilities"):
        predict_logits(lambda v: p, np.zeros((6, 2)), on_probabilities="maybe")


def test_bad_outputs_are_refused():
    with pytest.raises(ValueError, match=r"\(n, classes\)"):
        predict_logits(lambda v: np.zeros(len(v)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        predict_logits(lambda v: np.full((4, 2), np.nan), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="predict"):
        predict_logits(object(), np.zeros((4, 2)))


def test_from_model_refuses_softmax_unless_told_and_then_takes_log():
    z, p = _probs()
    x, y = np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="from_logits=False"):
        ModelOutputs.from_model(_Predictor(p), members=(x[:3], y[:3]), non_members=(x, y))
    out = ModelOutputs.from_model(_Predictor(p), from_logits=False, members=(x[:3], y[:3]),
                                  non_members=(x, y))
    np.testing.assert_allclose(out.logits["non_members"], np.log(p), rtol=1e-6)
    np.testing.assert_array_equal(out.logits["members"], probabilities_to_logits(p[:3]))
    got = ModelOutputs.from_model(_Predictor(z), members=(x[:3], y[:3]), non_members=(x, y))
    np.testing.assert_array_equal(got.logits["non_members"], z)


def test_shadow_models_keep_their_warning_and_float32():
    _, p = _probs()
    with pytest.warns(UserWarning, match="probabilities|softmax"):
        out = shadow_jobs.predict_logits(lambda v: p, np.zeros((6, 2)))
    assert out.dtype == np.float32
