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
import os
import pathlib
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from keras_mi.experiment import store
from keras_mi.experiment.config import ExperimentConfig, parse_defense
from keras_mi.experiment.train import (TrainedModel, model_seed, seed_everything,
                                       train_dpsgd_defense, train_keras_defense)


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
    from keras_mi.attacks import runner as attack_runner  # pylint: disable=import-outside-toplevel

    return list(attack_runner.available_attacks())


def needs_shadows(config: ExperimentConfig) -> bool:
    """True when the run trains shadow models.

    Explicit attacks: when one of them needs shadows. ``attacks=None`` (every
    default attack): when the config provides a shadow pool and models.
    """
    from keras_mi.attacks import runner as attack_runner  # pylint: disable=import-outside-toplevel

    if config.attacks is None:
        return config.split.shadow > 0 and config.num_shadow_models > 0
    attack_runner.available_attacks()
    return any(attack_runner.ATTACKS[a].needs_shadow for a in config.attacks)


def validate_names(config: ExperimentConfig, data_given: bool = False) -> None:
    """Checks dataset, architecture, defense and attack names; lists valid ones."""
    config.validate()
    errors = []
    if not data_given:
        from keras_mi import data as kdata  # pylint: disable=import-outside-toplevel

        names = list(kdata.available_datasets())
        if config.dataset not in names:
            errors.append(f"Unknown dataset '{config.dataset}'; valid datasets: {', '.join(names)}.")
    if config.architecture is not None:
        from keras_mi.models import available_architectures  # pylint: disable=import-outside-toplevel

        archs = list(available_architectures())
        if config.architecture not in archs:
            errors.append(f"Unknown architecture '{config.architecture}'; valid: {', '.join(archs)}.")
    if config.attacks is not None:
        valid = available_attacks()
        bad = [a for a in config.attacks if a not in valid]
        if bad:
            errors.append(f"Unknown attack(s) {bad}; valid attacks: {', '.join(valid)}.")
        if not config.attacks:
            errors.append("attacks is an empty list; name at least one (or null for all).")
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
    from keras_mi import data as kdata  # pylint: disable=import-outside-toplevel

    info = kdata.get_info(config.dataset)
    x, y = kdata.load_dataset(config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir)
    facts = DatasetFacts(config.dataset, tuple(int(d) for d in info.input_shape),
                         int(info.num_classes), config.architecture or info.architecture, len(x))
    return x, y, facts


def check_sizes(config: ExperimentConfig, pool_size: int) -> None:
    """Split sizes must fit in the pool; says by how much they do not."""
    s = config.split
    if s.total > pool_size:
        raise ValueError(
            f"Split sizes need {s.total} records (members {s.members} + non_members "
            f"{s.non_members} + reference {s.reference} + test {s.test} + shadow {s.shadow}) but "
            f"dataset '{config.dataset}' has {pool_size}; shrink them by {s.total - pool_size}.")


def _verbosity(verbose: int) -> int:
    if verbose <= 0:
        return 0
    return 1 if sys.stdout.isatty() else 2


class _Progress:
    """The overall progress over the run's steps.

    A tqdm bar on a terminal; plain ``[k/N]`` lines otherwise (logs, CI);
    nothing when quiet. Keras prints its own per-epoch bars under it.
    """

    def __init__(self, total: int, verbose: int):
        self.total, self.done, self.verbose, self.bar = total, 0, verbose, None
        if verbose > 0 and sys.stdout.isatty():
            from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

            self.bar = tqdm(total=total, desc="keras-mi evaluate", unit="step", file=sys.stdout)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)
        elif self.verbose > 0:
            print(message, flush=True)

    def step(self, message: str, done: bool = False) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(message)
        if done:
            self.write(f"[{self.done + 1}/{self.total}] {message}: done (saved)")

    def skip(self, message: str) -> None:
        self.write(f"[{self.done + 1}/{self.total}] {message}: already done, skipped")

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    from keras_mi.experiment import report as report_mod  # pylint: disable=import-outside-toplevel
    from keras_mi.outputs import ModelOutputs  # pylint: disable=import-outside-toplevel

    start = time.perf_counter()
    validate_names(config, data_given=data is not None)
    out = store.check_writable(out_dir)
    x, y, facts = load_pool(config, data)
    check_sizes(config, facts.pool_size)
    out = store.claim(out, config, overwrite=overwrite)
    fit_verbose = _verbosity(verbose)
    timings = store.load_timings(out)

    attacks = list(config.attacks) if config.attacks is not None else None
    shadow_attacks = needs_shadows(config)
    progress = _Progress(1 + len(config.defenses) * 2 + (1 if shadow_attacks else 0), verbose)
    try:
        split = _split(config, x, y, out, progress)
        roles = {r: (x[getattr(split, r)], y[getattr(split, r)])
                 for r in ("members", "non_members", "reference", "test", "shadow")
                 if len(getattr(split, r))}
        targets: Dict[str, Dict[str, Any]] = {}
        for defense in config.defenses:
            tag = store.safe_tag(defense)
            targets[defense] = _train_step(defense, tag, config, facts, roles, out, fit_verbose,
                                           progress, timings, ModelOutputs)
            ran = targets[defense].pop("ran")
            if on_step_saved is not None and ran:
                on_step_saved(tag)
        shadow_outputs = None
        if shadow_attacks:
            shadow_outputs = _shadow_step(config, facts, roles, out, fit_verbose, progress, timings)
        for defense in config.defenses:
            tag = store.safe_tag(defense)
            targets[defense]["attacks"], ran = _attack_step(
                tag, targets[defense]["outputs"], attacks, shadow_outputs, config, out, progress,
                timings)
            if on_step_saved is not None and ran:
                on_step_saved(f"attacks/{tag}")
    finally:
        progress.close()
    report = report_mod.build_report(config, facts, targets, split_fingerprint=_fingerprint(split))
    timings = store.save_timing(out, "total_this_session_s", time.perf_counter() - start, timings)
    curves = {d: t["attacks"].strongest() for d, t in targets.items()
              if t.get("attacks") is not None and any(r.is_membership for r in t["attacks"].results)}
    report_mod.write_all(out, report, timings, curves)
    if verbose > 0:
        print(report_mod.format_table(report, timings))
        print(f"\nReport: {out / 'report.md'} (numbers: report.json, wall times: timings.json)")
    return report


def _fingerprint(split) -> Optional[str]:
    """The split's identity: pool fingerprint + hash of its index sets."""
    import hashlib  # pylint: disable=import-outside-toplevel

    h = hashlib.sha256(str(split.fingerprint).encode())
    for role in ("members", "non_members", "reference", "test", "shadow"):
        h.update(np.ascontiguousarray(getattr(split, role), dtype=np.int64).tobytes())
    return h.hexdigest()


def _split(config: ExperimentConfig, x, y, out: pathlib.Path, progress: _Progress):
    from keras_mi.data import MembershipSplit  # pylint: disable=import-outside-toplevel

    path = out / "split.json"
    progress.step("split")
    if path.exists():
        split = MembershipSplit.load(path, x, y)
        progress.skip("split")
    else:
        s = config.split
        split = MembershipSplit.create(x, y, members=s.members, reference=s.reference,
                                       non_members=s.non_members, test=s.test, shadow=s.shadow,
                                       seed=config.seed)
        split.save(path)  # atomic (temp file + rename)
        progress.step("split", done=True)
    progress.advance()
    return split


def _train_step(defense: str, tag: str, config: ExperimentConfig, facts: DatasetFacts,
                roles: Dict[str, Tuple[np.ndarray, np.ndarray]], out: pathlib.Path,
                fit_verbose: int, progress: _Progress, timings: Dict[str, float],
                model_outputs_cls) -> Dict[str, Any]:
    meta_path, outputs_path = out / "meta" / f"{tag}.json", out / "outputs" / f"{tag}.npz"
    progress.step(f"train {defense}")
    if meta_path.exists() and outputs_path.exists():
        progress.skip(f"train {defense}")
        progress.advance()
        return {"outputs": model_outputs_cls.load_npz(outputs_path),
                "meta": store.read_json(meta_path), "ran": False}
    t0 = time.perf_counter()
    seed = model_seed(config.seed, tag)
    eval_splits = {r: roles[r] for r in ("members", "non_members", "reference", "test") if r in roles}
    data = {"train": roles["members"], "reference": roles.get("reference"), "eval": eval_splits,
            "work_dir": str(out / "models" / f"{tag}_dpsgd")}
    kind, _ = parse_defense(defense)
    progress.write(f"Training '{defense}' ({facts.architecture}, "
                   f"{len(roles['members'][0])} members, seed {seed})")
    trainer = train_dpsgd_defense if kind == "dpsgd" else train_keras_defense
    trained: TrainedModel = trainer(defense, config, data, facts.input_shape, facts.num_classes,
                                    facts.architecture, seed, verbose=fit_verbose)
    if trained.model is not None:
        store.atomic_write(out / "models" / f"{tag}.keras", trained.model.save, suffix=".keras")
        outputs = model_outputs_cls.from_model(trained.model, **eval_splits)
    else:
        outputs = trained.outputs
        _keep_dpsgd_model(pathlib.Path(data["work_dir"]), out / "models" / f"{tag}.h5")
    outputs.save_npz(outputs_path)
    meta = {"defense": defense, "seed": seed, **trained.extras}
    store.write_json(meta_path, meta)
    store.save_timing(out, f"train/{tag}_s", time.perf_counter() - t0, timings)
    progress.step(f"train {defense}", done=True)
    progress.advance()
    return {"outputs": outputs, "meta": meta, "ran": True}


def _keep_dpsgd_model(work_dir: pathlib.Path, target: pathlib.Path) -> None:
    """Keeps the DP-SGD child's tf-keras model; drops its copy of the data."""
    import shutil  # pylint: disable=import-outside-toplevel

    model = work_dir / "out" / "model.h5"
    if model.exists():
        os.replace(model, target)
    shutil.rmtree(work_dir, ignore_errors=True)


def _shadow_step(config: ExperimentConfig, facts: DatasetFacts,
                 roles: Dict[str, Tuple[np.ndarray, np.ndarray]], out: pathlib.Path,
                 fit_verbose: int, progress: _Progress, timings: Dict[str, float]):
    """Shadow models for the attacks that need them (per-class thresholds, shadow NN).

    The attacker's shadows are trained once per run with the run's recipe
    and architecture, without a defense (the attacker does not know it), on
    disjoint parts of the split's shadow pool, and shared by every target.
    """
    from keras_mi.attacks.shadow import train_shadow_models  # pylint: disable=import-outside-toplevel
    from keras_mi.outputs import ModelOutputs  # pylint: disable=import-outside-toplevel

    k = config.num_shadow_models
    folder = out / "shadows"
    paths = [folder / f"shadow_{i:02d}.npz" for i in range(k)]
    progress.step(f"train {k} shadow models")
    if not all(p.exists() for p in paths):
        if "shadow" not in roles or k < 1:
            raise ValueError("The chosen attacks need shadow models: set split.shadow > 0 and "
                             "num_shadow_models >= 1, or drop the shadow-based attacks.")
        t0 = time.perf_counter()

        def train_fn(x, y, seed):
            return train_keras_defense("none", config, {"train": (x, y)}, facts.input_shape,
                                       facts.num_classes, facts.architecture, int(seed),
                                       verbose=0).model

        x_pool, y_pool = roles["shadow"]
        part = len(y_pool) // k
        shadows = train_shadow_models(x_pool, y_pool, train_fn, num_shadows=k,
                                      train_size=max(1, min(config.split.members, part // 2)),
                                      seed=model_seed(config.seed, "shadows"),
                                      verbose=1 if fit_verbose else 0)
        folder.mkdir(exist_ok=True)
        for path, shadow in zip(paths, shadows):
            shadow.save_npz(path)
        store.save_timing(out, "shadows/train_s", time.perf_counter() - t0, timings)
        progress.step(f"train {k} shadow models", done=True)
    else:
        progress.skip(f"train {k} shadow models")
    progress.advance()
    return [ModelOutputs.load_npz(p) for p in paths]


def _attack_step(tag: str, outputs, attacks: Optional[Sequence[str]], shadow_outputs,
                 config: ExperimentConfig, out: pathlib.Path, progress: _Progress,
                 timings: Dict[str, float]):
    from keras_mi import attacks as kattacks  # pylint: disable=import-outside-toplevel
    from keras_mi.attacks import runner as attack_runner  # pylint: disable=import-outside-toplevel

    path = out / "attacks" / f"{tag}.json"
    progress.step(f"attack {tag}")
    if path.exists():
        progress.skip(f"attack {tag}")
        progress.advance()
        return kattacks.AttackReport.from_json(path.read_text()), True, False
    t0 = time.perf_counter()
    seed_everything(model_seed(config.seed, f"attacks/{tag}"))
    result = attack_runner.run(outputs, attacks=attacks, shadow_outputs=shadow_outputs)
    store.write_text(path, result.to_json(indent=1) + "\n")
    store.save_timing(out, f"attacks/{tag}_s", time.perf_counter() - t0, timings)
    progress.step(f"attack {tag}", done=True)
    progress.advance()
    # Read back what was saved, so a fresh run and a resumed one report the
    # same (down-sampled) curves.
    return kattacks.AttackReport.from_json(path.read_text()), True
