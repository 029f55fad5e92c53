"""The main job: train one target per defense, attack each, write a report.

:func:`run_experiment` is what ``keras-mi evaluate`` calls. It checks the
whole config (names, sizes, output folder) before training anything, then
works through a list of steps (split, one model per defense, the shadow
models the attacks need, the attacks) and saves each result as soon as it
exists (see :mod:`keras_mi.experiment.store`). Re-running the same call
skips finished steps, and every model is seeded from ``(seed, its tag)``
alone, so an interrupted-then-resumed run writes the same ``report.json``
as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from keras_mi.experiment import steps, store
from keras_mi.experiment.config import ExperimentConfig


@dataclasses.dataclass
class DatasetFacts:
    """What the runner needs to know about the pool."""

    name: str
    input_shape: Tuple[int, ...]
    num_classes: int
    architecture: str
    pool_size: int


def available_attacks() -> List[str]:
    """Attack names ``--attacks`` accepts (``keras_mi.attacks`` registry).

    Example:
      >>> "loss" in available_attacks()
      True
    """
    from keras_mi.attacks import runner as attack_runner

    return list(attack_runner.available_attacks())


def needs_shadows(config: ExperimentConfig) -> bool:
    """True when the run trains shadow models.

    Explicit attacks: when one of them needs shadows. ``attacks=None`` (every
    default attack): when the config provides a shadow pool and models.
    """
    from keras_mi.attacks import runner as attack_runner

    if config.attacks is None:
        return config.split.shadow > 0 and config.num_shadow_models > 0
    attack_runner.available_attacks()
    return any(attack_runner.ATTACKS[a].needs_shadow for a in config.attacks)


def validate_names(config: ExperimentConfig, data_given: bool = False) -> None:
    """Checks dataset, architecture, defense and attack names; lists valid ones."""
    config.validate()
    errors = []
    if not data_given:
        from keras_mi import data as kdata

        names = list(kdata.available_datasets())
        if config.dataset not in names:
            errors.append(f"Unknown dataset '{config.dataset}'; "
                          f"valid datasets: {', '.join(names)}.")
    if config.architecture is not None:
        from keras_mi.models import available_architectures

        archs = list(available_architectures())
        if config.architecture not in archs:
            errors.append(f"Unknown architecture '{config.architecture}'; "
                          f"valid: {', '.join(archs)}.")
    if config.attacks is not None:
        valid = available_attacks()
        bad = [a for a in config.attacks if a not in valid]
        if bad:
            errors.append(f"Unknown attack(s) {bad}; valid attacks: {', '.join(valid)}.")
        if not config.attacks:
            errors.append("attacks is an empty list; name at least one (or null for all).")
    if not errors and needs_shadows(config):
        from keras_mi.attacks import runner as attack_runner

        shadowed = [a for a in config.attacks or [] if attack_runner.ATTACKS[a].needs_shadow]
        k = config.num_shadow_models
        if config.split.shadow < 1 or k < 1:
            errors.append(f"attack(s) {shadowed} need shadow models: set split.shadow > 0 "
                          f"and num_shadow_models >= 1 (now {config.split.shadow} and {k}), "
                          "or drop them.")
        elif config.split.shadow < 2 * k:
            errors.append(f"split.shadow ({config.split.shadow}) is too small for "
                          f"{k} shadow models: each needs records to train on and as many "
                          f"held out; give it at least {2 * k}.")
    if errors:
        raise ValueError("Invalid experiment config:\n  - " + "\n  - ".join(errors))


def load_pool(config: ExperimentConfig, data=None) -> Tuple[np.ndarray, np.ndarray, DatasetFacts]:
    """The pool ``(x, y)`` and its facts, from the registry or from ``data``."""
    if data is not None:
        x, y = np.asarray(data[0]), np.asarray(data[1]).astype(np.int64)
        arch = config.architecture or ("mlp_tanh" if x.ndim == 2 else "small_cnn")
        facts = DatasetFacts(config.dataset, tuple(int(d) for d in x.shape[1:]),
                             int(y.max()) + 1, arch, len(x))
        return x, y, facts
    from keras_mi import data as kdata

    info = kdata.get_info(config.dataset)
    x, y = kdata.load_dataset(config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir)
    facts = DatasetFacts(config.dataset, tuple(int(d) for d in info.input_shape),
                         int(info.num_classes), config.architecture or info.architecture, len(x))
    return x, y, facts


def check_sizes(config: ExperimentConfig, facts: DatasetFacts) -> None:
    """The config against the data: sizes, input shape, classes, DP-SGD's accounting.

    Split sizes must fit in the pool (the message says by how much they do
    not), the bank in members + non-members; augmentation, architecture and
    bank queries must suit the inputs. Every problem is listed at once;
    checked before the output folder is claimed.
    """
    s = config.split
    errors = []
    if facts.num_classes < 2:
        errors.append(f"dataset '{config.dataset}' has {facts.num_classes} class(es); "
                      "membership inference needs at least 2.")
    cropped = [d for d in config.defenses
               if config.for_defense(d).training.augmentation == "crop_flip"]
    if cropped and len(facts.input_shape) != 3:
        errors.append(f"training.augmentation 'crop_flip' (for {', '.join(cropped)}) needs "
                      f"images (H, W, C); dataset '{config.dataset}' has inputs "
                      f"{facts.input_shape}; set it to 'none'.")
    if config.bank.queries == "flip_shift" and len(facts.input_shape) == 3 and \
            config.bank.query_shift >= min(facts.input_shape[:2]):
        errors.append(f"bank.query_shift ({config.bank.query_shift}) must be smaller than the "
                      f"images ({facts.input_shape[0]}x{facts.input_shape[1]}).")
    errors.extend(_architecture_errors(config, facts))
    errors.extend(_defense_errors(config, facts))
    if s.total > facts.pool_size:
        errors.append(
            f"Split sizes need {s.total} records (members {s.members} + non_members "
            f"{s.non_members} + reference {s.reference} + test {s.test} + shadow {s.shadow}) but "
            f"dataset '{config.dataset}' has {facts.pool_size}; shrink them by "
            f"{s.total - facts.pool_size}.")
    if config.bank.size:
        pool = s.members + s.non_members
        if pool // 2 < 2 * facts.num_classes:
            errors.append(
                f"The bank pool (members + non_members = {pool}) is too small for "
                f"{facts.num_classes} classes: each bank model trains on half of it, which "
                f"needs at least {4 * facts.num_classes} records.")
        if config.bank.queries == "flip_shift" and len(facts.input_shape) != 3:
            errors.append(f"bank.queries 'flip_shift' needs images (H, W, C); dataset "
                          f"'{config.dataset}' has inputs {facts.input_shape}; use none.")
    if len(errors) == 1:
        raise ValueError(errors[0])
    if errors:
        raise ValueError("Invalid experiment config for this dataset:\n  - "
                         + "\n  - ".join(errors))


def _architecture_errors(config: ExperimentConfig, facts: DatasetFacts) -> List[str]:
    """The architecture's own checks (input rank, image size), without building it."""
    from keras_mi.models.architectures import architecture_spec

    try:
        architecture_spec(facts.architecture, facts.input_shape, facts.num_classes)
    except ValueError as err:
        return [f"architecture '{facts.architecture}' on dataset '{config.dataset}' "
                f"(inputs {facts.input_shape}, {facts.num_classes} classes): {err}"]
    return []


def _defense_errors(config: ExperimentConfig, facts: DatasetFacts) -> List[str]:
    """Each listed defense's own checks against the data (registry ``check_data``).

    E.g. class-matched reference batches (MMD), DP-SGD's accounting inputs
    and noise calibration. A message two defenses share is listed once.
    """
    from keras_mi.defenses import resolve_defense

    errors: List[str] = []
    for name in config.defenses:
        entry, argument = resolve_defense(name)
        for err in entry.data_errors(config.for_defense(name), facts, argument):
            if err not in errors:
                errors.append(err)
    return errors


def _verbosity(verbose: int) -> int:
    if verbose <= 0:
        return 0
    return 1 if sys.stdout.isatty() else 2


def prepare(config: ExperimentConfig, out_dir, data=None):
    """Every check of a run that writes nothing; returns ``(x, y, facts, split)``.

    Names and bounds (:func:`validate_names`), the output folder, the data
    (loaded), the config against the data (:func:`check_sizes`) and the
    split itself, made in memory: whatever fails here fails before the
    folder is claimed.
    """
    validate_names(config, data_given=data is not None)
    store.check_writable(out_dir, create=False)
    x, y, facts = load_pool(config, data)
    check_sizes(config, facts)
    return x, y, facts, steps.plan_split(config, x, y)


def run_experiment(config: ExperimentConfig, out_dir, *, overwrite: bool = False,
                   verbose: int = 1, data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                   on_step_saved: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Runs (or resumes) an experiment and writes its report to ``out_dir``.

    Args:
      config: the :class:`ExperimentConfig`.
      out_dir: output folder (created); see :mod:`keras_mi.experiment.store`.
      overwrite: replace a run of a different config found in ``out_dir``.
      verbose: 0 silent; 1 progress bars and the final table.
      data: ``(x, y)`` to use instead of the registry's ``config.dataset``
        (tests, custom data); ``config.dataset`` is then only a label.
      on_step_saved: called with a step's tag (``"none"``, ``"attacks/none"``)
        right after a step that ran (not one skipped as done) saved its files;
        tests raise ``KeyboardInterrupt`` here to simulate Ctrl-C.

    Returns:
      The report dict (also in ``out_dir/report.json``).

    Example:
      >>> from keras_mi.experiment import get_preset, run_experiment
      >>> report = run_experiment(get_preset("location"), "runs/demo")  # doctest: +SKIP
      >>> report["defenses"]["none"]["attacks"]["loss"]["auc"]  # doctest: +SKIP
    """
    from keras_mi.experiment import report as report_mod

    start = time.perf_counter()
    # Everything that can be refused is refused before store.claim writes
    # config.json: a bad input must not lock the folder to its config.
    x, y, facts, planned = prepare(config, out_dir, data)
    out = store.claim(out_dir, config, overwrite=overwrite)
    fit_verbose = _verbosity(verbose)
    timings = store.load_timings(out)
    attacks = list(config.attacks) if config.attacks is not None else None
    shadows, lira = needs_shadows(config), attacks is not None and "lira" in attacks
    n_bank = 2 * len(config.defenses) if config.bank.size else 0
    progress = steps.Progress(1 + 2 * len(config.defenses) + int(shadows) + int(lira) + n_bank,
                              verbose)
    hook = on_step_saved or (lambda tag: None)
    try:
        split = steps.split_step(config, x, y, out, progress, planned)
        roles = {r: (x[getattr(split, r)], y[getattr(split, r)])
                 for r in ("members", "non_members", "reference", "test", "shadow")
                 if len(getattr(split, r))}
        targets: Dict[str, Dict[str, Any]] = {}
        for defense in config.defenses:
            tag = store.safe_tag(defense)
            targets[defense], ran = steps.train_step(defense, tag, config, facts, roles, out,
                                                     fit_verbose, progress, timings)
            if ran:
                hook(tag)
        common = (config, facts, roles, out, fit_verbose, progress, timings)
        shadow_outputs = steps.shadow_step(*common) if shadows else None
        options = {"lira": steps.lira_step(*common)} if lira else None
        for defense in config.defenses:
            tag = store.safe_tag(defense)
            targets[defense]["attacks"], ran = steps.attack_step(
                tag, targets[defense]["outputs"], attacks, shadow_outputs, options, config, out,
                progress, timings)
            if ran:
                hook(f"attacks/{tag}")
        if config.bank.size:
            _bank_protocol(config, facts, roles, out, progress, timings, targets, hook)
    finally:
        progress.close()
    report = report_mod.build_report(config, facts, targets, split_fingerprint=_fingerprint(split))
    timings = store.save_timing(out, "total_this_session_s", time.perf_counter() - start, timings)
    curves = {d: (t["bank"]["adaptive"].strongest(by="low_fpr") if t.get("bank")
                  else t["attacks"].strongest())
              for d, t in targets.items() if any(r.is_membership for r in t["attacks"].results)}
    report_mod.write_all(out, report, timings, curves)
    if verbose > 0:
        print(f"Single target per defense ({config.split.members} members vs "
              f"{config.split.non_members} non-members of one model):\n")
        print(report_mod.format_table(report, timings))
        bank_table = report_mod.format_bank_table(report, timings)
        if bank_table:
            print(f"\nBank protocol ({config.bank.size} models per defense, pairs pooled):\n"
                  + bank_table)
        print(f"\nReport: {out / 'report.md'} (numbers: report.json, wall times: timings.json)")
    return report


def _bank_protocol(config, facts, roles, out, progress, timings, targets, hook) -> None:
    """Trains every defense's bank, then attacks each (adaptive; non-adaptive vs ``none``)."""
    banks = {}
    for defense in config.defenses:
        banks[defense], trained = steps.bank_step(defense, config, facts, roles, out, progress,
                                                  timings)
        if trained:
            hook(f"banks/{store.safe_tag(defense)}")
    baseline = banks.get("none") if config.bank.non_adaptive else None
    for defense in config.defenses:
        shadow_bank = baseline if defense != "none" else None
        targets[defense]["bank"] = steps.bank_attack_step(
            defense, banks[defense], shadow_bank, config, out, progress, timings)


def train_lira_shadows(config: ExperimentConfig, out_dir, indices: Sequence[int], *,
                       overwrite: bool = False, verbose: int = 1,
                       data: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> List[int]:
    """Trains only models ``indices`` of a run's banks and LiRA shadows: one cluster task each.

    With ``bank.size > 0`` this trains model ``i`` of every defense's bank
    (``out_dir/banks/<defense>``); with ``lira`` among the attacks, LiRA
    shadow ``i`` (``out_dir/shadows/lira``). Every task computes the same
    split from the config (seeded), trains on deterministic random halves
    and writes one file per model into a shared folder. A later
    :func:`run_experiment` with the same config and folder finds them done
    and only aggregates. With a SLURM array::

        #SBATCH --array=0-15
        keras-mi shadow --config run.yaml --out /shared/run --shadow-index $SLURM_ARRAY_TASK_ID
        # afterwards, once:
        keras-mi evaluate --config run.yaml --out /shared/run

    (Kubernetes Indexed Jobs: ``--shadow-index $JOB_COMPLETION_INDEX``.)

    Returns:
      The indices trained (or already present).

    Example:
      >>> cfg = get_preset("location").with_overrides(
      ...     {"attacks": ["loss", "lira"], "num_lira_shadows": 16})  # doctest: +SKIP
      >>> train_lira_shadows(cfg, "runs/lira", [3])  # doctest: +SKIP
    """
    lira = "lira" in (config.attacks or [])
    bank = config.bank.size
    if not (lira or bank):
        raise ValueError("Shadow jobs train the bank protocol's models (--bank N, i.e. "
                         "bank.size) or LiRA's shadows (--attacks ... lira); the config asks "
                         "for neither.")
    validate_names(config, data_given=data is not None)
    limit = max(bank, config.num_lira_shadows if lira else 0)
    bad = [int(i) for i in indices if not 0 <= int(i) < limit]
    if bad:
        raise ValueError(f"Shadow index {bad} out of range: valid 0..{limit - 1} "
                         f"(bank.size {bank}, num_lira_shadows {config.num_lira_shadows}).")
    x, y, facts, planned = prepare(config, out_dir, data)
    out = store.claim(out_dir, config, overwrite=overwrite)
    progress = steps.Progress(1 + int(lira) + (len(config.defenses) if bank else 0), verbose)
    try:
        split = steps.split_step(config, x, y, out, progress, planned)
        roles = {r: (x[getattr(split, r)], y[getattr(split, r)])
                 for r in ("members", "non_members", "reference", "test")
                 if len(getattr(split, r))}
        timings = store.load_timings(out)
        # An index may name a bank model, a LiRA shadow or both: each kind trains its own.
        if lira:
            steps.lira_step(config, facts, roles, out, _verbosity(verbose), progress, timings,
                            indices=[int(i) for i in indices
                                     if int(i) < config.num_lira_shadows])
        if bank:
            for defense in config.defenses:
                steps.bank_step(defense, config, facts, roles, out, progress, timings,
                                indices=[int(i) for i in indices if int(i) < bank])
    finally:
        progress.close()
    return [int(i) for i in indices]


def _fingerprint(split) -> Optional[str]:
    """The split's identity: pool fingerprint + hash of its index sets."""
    h = hashlib.sha256(str(split.fingerprint).encode())
    for role in ("members", "non_members", "reference", "test", "shadow"):
        h.update(np.ascontiguousarray(getattr(split, role), dtype=np.int64).tobytes())
    return h.hexdigest()


