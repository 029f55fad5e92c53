"""The old module path of the paper schedule still works, with a DeprecationWarning."""

import importlib
import sys

import pytest


def test_schedules_module_warns_and_reexports():
    sys.modules.pop("keras_mi.training.schedules", None)
    with pytest.warns(DeprecationWarning, match="paper_schedule"):
        old = importlib.import_module("keras_mi.training.schedules")
    from keras_mi.training import paper_schedule

    assert old.PaperSchedule is paper_schedule.PaperSchedule
    assert old.iterate_batches is paper_schedule.iterate_batches
