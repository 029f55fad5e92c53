"""Every docstring example of every keras_mi module runs and holds.

Examples see ``np`` (NumPy) besides their module's own names. An example that
needs real data, a trained model or files marks every line that needs them
with ``# doctest: +SKIP`` (not only the first).
"""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import keras_mi

MODULES = ["keras_mi"] + sorted(
    m.name for m in pkgutil.walk_packages(keras_mi.__path__, prefix="keras_mi."))


def test_every_module_is_collected():
    # A module that fails to import must fail here, not silently drop its examples.
    assert {"keras_mi.attacks.scores", "keras_mi.data.splits", "keras_mi.outputs"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    from keras_mi.attacks import runner

    module = importlib.import_module(name)  # may register attacks (shadow, lira): keep those
    before = set(runner.ATTACKS)
    try:
        result = doctest.testmod(module, extraglobs={"np": np}, report=True, verbose=False)
    finally:  # an example that registers an attack must not leak it into other tests
        for extra in set(runner.ATTACKS) - before:
            runner.ATTACKS.pop(extra)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def _names(source, ctx):
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def test_a_skipped_example_skips_every_line_that_uses_what_it_made():
    """``x = load(...)  # doctest: +SKIP`` then ``x.shape`` must skip too (found statically)."""
    import ast

    finder, bad = doctest.DocTestFinder(), []
    for name in MODULES:
        for test in finder.find(importlib.import_module(name)):
            made, defined = set(), set()
            for example in test.examples:
                skipped = example.options.get(doctest.SKIP, False)
                if skipped:
                    made |= _names(example.source, ast.Store) - defined
                    continue
                used = _names(example.source, ast.Load) & made
                if used:
                    bad.append(f"{test.name} (line {test.lineno + example.lineno + 1}): "
                               f"uses {sorted(used)} from a skipped line")
                defined |= _names(example.source, ast.Store)
                made -= defined
    assert not bad, "\n".join(bad)
