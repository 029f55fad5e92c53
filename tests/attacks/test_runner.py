"""run(): attack selection, reference check, plug-in registry, JSON."""

import pytest

from keras_mi import attacks
from keras_mi.attacks import runner
from keras_mi.attacks.results import AttackReport, AttackType


def test_default_run_without_shadows_runs_global_attacks_and_reference_check(make_outputs):
    out = make_outputs(reference=True)
    report = attacks.run(out)
    member_rows = [r for r in report if r.positives == "members"]
    names = {r.name for r in member_rows}
    assert names >= {"gap", "loss", "confidence", "max_confidence", "entropy", "modified_entropy"}
    assert not any(r.attack_type.needs_shadow for r in report)
    ref_rows = [r for r in report if r.positives == "reference"]
    assert {r.name for r in ref_rows} == {"gap", *attacks.SCORE_NAMES}
    # Reference records come from the non-member distribution: no leak.
    assert all(abs(r.auc - 0.5) < 0.08 for r in ref_rows)
    assert report.get("loss").auc > 0.75
    assert report.strongest().positives == "members"
    assert report.metadata["splits"]["reference"] == 400


def test_reference_check_detects_a_leak(make_outputs):
    out = make_outputs(reference=True)
    leaky = type(out).from_arrays(members=out.get("members"), non_members=out.get("non_members"),
                                  reference=out.get("members"))
    report = attacks.run(leaky, ["loss"])
    assert report.get("loss", positives="reference").auc == pytest.approx(report.get("loss").auc)
    assert len(attacks.run(leaky, ["loss"], check_reference=False)) == 1


def test_class_attacks_run_with_shadows(make_outputs):
    report = attacks.run(make_outputs(seed=0), ["loss_class", "entropy"],
                         shadow_outputs=[make_outputs(seed=1), make_outputs(seed=2)])
    assert [r.name for r in report] == ["loss_class", "entropy"]
    assert report.get("loss_class").best_accuracy > 0.6


def test_errors_name_what_to_change(make_outputs):
    out = make_outputs()
    with pytest.raises(ValueError, match="Unknown attack"):
        attacks.run(out, ["lossy"])
    with pytest.raises(ValueError, match="need shadow_outputs"):
        attacks.run(out, ["loss_class"])
    with pytest.raises(TypeError, match="ModelOutputs"):
        attacks.run({"members": 1})
    with pytest.raises(ValueError, match="unknown attack"):
        attacks.run(out, ["loss"], options={"gapp": {}})
    assert len(attacks.run(out, ["loss"], options={"gap": {}})) == 1  # known, not run: ignored


def test_registered_plugin_receives_outputs_and_shadows(make_outputs):
    seen = {}

    def plugin(outputs, shadow_outputs=None, *, fpr_targets, keep_scores, scale=1.0):
        seen.update(shadow=shadow_outputs, scale=scale, fpr_targets=fpr_targets)
        m = outputs.logits["members"].max(1) * scale
        n = outputs.logits["non_members"].max(1) * scale
        return [attacks.evaluate_scores(m, n, name="plugin_a"),
                attacks.evaluate_scores(-m, -n, name="plugin_b")]

    runner.register_attack("test_plugin", plugin, needs_shadow=True, default=False)
    try:
        sh = make_outputs(seed=5)
        report = attacks.run(make_outputs(), ["test_plugin"], shadow_outputs=sh,
                             options={"test_plugin": {"scale": 2.0}}, fpr_targets=(0.05,))
        assert seen == {"shadow": sh, "scale": 2.0, "fpr_targets": (0.05,)}
        a, b = report.get("plugin_a"), report.get("plugin_b")
        assert a.auc == pytest.approx(1 - b.auc)
        assert a.attack_type is AttackType.CUSTOM and a.wall_time_s > 0
        default_names = [r.name for r in attacks.run(make_outputs(), shadow_outputs=sh)]
        assert "plugin_a" not in default_names  # default=False: only when asked
        assert "loss_class" in default_names  # shadows given: class attacks by default
    finally:
        runner.ATTACKS.pop("test_plugin")


def test_report_json_round_trip_from_run(make_outputs):
    report = attacks.run(make_outputs(reference=True), keep_scores=True)
    back = AttackReport.from_json(report.to_json())
    assert ([(r.name, r.positives, r.auc) for r in back]
            == [(r.name, r.positives, r.auc) for r in report])
    assert back.summary() == report.summary()
