"""bench/defense_tune.py's pure helpers: the grid's specs and the selection rule."""


import pytest
from _bench_module import load_bench_module


@pytest.fixture(scope="module")
def tune():
    return load_bench_module("defense_tune")


def _row(defense, acc, tpr):
    return {"defense": defense, "held_out_accuracy": acc, "tpr_at_1%": tpr}


def _reference_choice(results, slack):
    """The rule written out by hand: a loop, no sorting tricks."""
    floor = results["none"]["held_out_accuracy"] - slack
    out = {}
    for defense in {r["defense"] for r in results.values()} - {"none"}:
        best = None
        for label, r in results.items():
            if r["defense"] != defense or r["held_out_accuracy"] < floor:
                continue
            if best is None or r["tpr_at_1%"] < results[best]["tpr_at_1%"]:
                best = label
        if best is not None:
            out[defense] = (best, True)
            continue
        for label, r in results.items():
            if r["defense"] == defense and (
                    best is None or r["held_out_accuracy"] > results[best]["held_out_accuracy"]):
                best = label
        out[defense] = (best, False)
    return out


def test_rule_prefers_private_within_slack_else_most_accurate(tune):
    results = {
        "none": _row("none", 0.55, 0.80),
        # Within 1 point: b leaks less than a; c leaks least but is 2 points down.
        "a": _row("d", 0.545, 0.50), "b": _row("d", 0.541, 0.40), "c": _row("d", 0.53, 0.05),
        # Nothing qualifies: the most accurate wins although it leaks most.
        "x": _row("e", 0.40, 0.10), "y": _row("e", 0.45, 0.30), "z": _row("e", 0.20, 0.01),
    }
    got = tune.choose(results)
    assert got == {"d": ("b", True), "e": ("y", False)}
    assert got == _reference_choice(results, 0.01)
    # A wider slack lets c in.
    assert tune.choose(results, slack=0.03)["d"] == ("c", True)


def test_rule_on_random_grids_matches_the_hand_written_loop(tune):
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(200):
        results = {"none": _row("none", float(rng.uniform(0.4, 0.6)), 0.8)}
        for d in range(3):
            for k in range(3):
                results[f"d{d}-{k}"] = _row(f"d{d}", float(rng.uniform(0.3, 0.65)),
                                            float(rng.uniform(0, 1)))
        assert tune.choose(results) == _reference_choice(results, 0.01)


def test_rule_needs_exactly_one_none_row(tune):
    with pytest.raises(ValueError, match="exactly one 'none'"):
        tune.choose({"a": _row("d", 0.5, 0.1)})


def test_grid_has_none_once_and_three_settings_per_defense(tune):
    specs = tune.grid_specs()
    defenses = [d for d, _ in specs.values()]
    assert defenses.count("none") == 1
    for d in set(defenses) - {"none"}:
        mine = [o for dd, o in specs.values() if dd == d]
        assert len(mine) == 3 and {} in mine, d  # the default plus two alternatives
    # Each spec survives the round trip through frontier_location's parser.
    for label, (defense, overrides) in specs.items():
        assert tune.grid_specs([tune.spec_text(label, defense, overrides)]) == {
            label: (defense, overrides)}
    with pytest.raises(ValueError, match="twice"):
        tune.grid_specs(["a=none", "a=mixup"])
