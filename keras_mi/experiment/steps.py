"""The steps of an experiment, each saved as soon as it is done.

Every step first looks for its saved result in the output folder and, when
it is there, loads it instead of recomputing (``skip``); otherwise it
computes, saves atomically and records its wall time in ``timings.json``.
Steps are seeded from ``(run seed, step tag)`` only, so which steps a
session skips never changes what the others compute.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from keras_mi.defenses import resolve_defense
from keras_mi.experiment import store
from keras_mi.experiment.config import ExperimentConfig
from keras_mi.experiment.train import (
    TrainedModel,
    model_seed,
    seed_everything,
    train_defense,
    train_dpsgd_defense,
    train_keras_defense,
)
from keras_mi.outputs import ModelOutputs


class Progress:
    """The overall progress over the run's steps.

    A tqdm bar on a terminal; plain ``[k/N]`` lines otherwise (logs, CI);
    nothing when quiet. Keras prints its own per-epoch bars under it.
    """

    def __init__(self, total: int, verbose: int):
        self.total, self.done, self.verbose, self.bar = total, 0, verbose, None
        if verbose > 0 and sys.stdout.isatty():
            from tqdm.auto import tqdm

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


def plan_split(config: ExperimentConfig, x, y):
    """The MembershipSplit the config asks for (seeded: the same on every call).

    Made before the output folder is claimed, so sizes that do not fit or a
    reference set missing a member class are refused before anything is written.
    """
    from keras_mi.data import MembershipSplit

    s = config.split
    return MembershipSplit.create(x, y, members=s.members, reference=s.reference,
                                  non_members=s.non_members, test=s.test, shadow=s.shadow,
                                  seed=config.seed)


def split_step(config: ExperimentConfig, x, y, out: pathlib.Path, progress: Progress,
               planned=None):
    """Saves (or reuses, checked against ``planned``) the run's MembershipSplit.

    A ``split.json`` that cannot be read is written again from ``planned``
    (the split is a function of the seed and the pool, so this is the split
    the run's models were trained on). One made for other data, or holding
    other index sets than the config gives, is refused: the models next to it
    may have been trained on it.
    """
    from keras_mi.data import MembershipSplit

    planned = plan_split(config, x, y) if planned is None else planned
    path = out / "split.json"
    progress.step("split")
    saved = store.reuse(path, lambda p: MembershipSplit.load(p, x, y) if _same_pool(p, planned)
                        else None)
    if path.exists() and saved is None:
        raise ValueError(
            f"{path} was made for a different dataset than the one loaded now (its fingerprint "
            "differs), so the models in this folder were trained on other data. Load the same "
            f"data, or start afresh: use another --out, or delete {out}.")
    if saved is not None:
        differ = [r for r in ("members", "non_members", "reference", "test", "shadow")
                  if not np.array_equal(getattr(saved, r), getattr(planned, r))]
        if differ:
            sizes = ", ".join(f"{r} {len(getattr(saved, r))} (config: {len(getattr(planned, r))})"
                              for r in differ)
            raise store.mismatch(path, f"its {', '.join(differ)} sets are not the config's "
                                       f"split ({sizes})",
                                 f"{out} (every step was computed on this split)")
        progress.skip("split")
    else:
        planned.save(path)  # atomic (temp file + rename)
        progress.step("split", done=True)
    progress.advance()
    return planned if saved is None else saved


def _same_pool(path: pathlib.Path, planned) -> bool:
    """False only when ``path`` reads and names another pool's fingerprint."""
    try:
        data = store.read_json(path)
    except ValueError:
        return True  # unreadable: MembershipSplit.load raises, reuse() recomputes
    return not (isinstance(data, dict) and isinstance(data.get("fingerprint"), str)
                and data["fingerprint"] != planned.fingerprint)


def train_step(defense: str, tag: str, config: ExperimentConfig, facts,
               roles: Dict[str, Tuple[np.ndarray, np.ndarray]], out: pathlib.Path,
               fit_verbose: int, progress: Progress,
               timings: Dict[str, float]) -> Tuple[Dict[str, Any], bool]:
    """Trains (or loads) the target of one defense; returns its outputs and meta."""
    meta_path, outputs_path = out / "meta" / f"{tag}.json", out / "outputs" / f"{tag}.npz"
    progress.step(f"train {defense}")
    seed = model_seed(config.seed, tag)
    eval_splits = {r: roles[r] for r in ("members", "non_members", "reference", "test")
                   if r in roles}
    if meta_path.exists() and outputs_path.exists():
        meta = store.reuse(meta_path, _read_meta)
        outputs = store.reuse(outputs_path, ModelOutputs.load_npz)
        if meta is not None and outputs is not None:
            _check_reused_target(defense, seed, meta, meta_path, outputs, outputs_path,
                                 eval_splits, facts.num_classes)
            progress.skip(f"train {defense}")
            progress.advance()
            return {"outputs": outputs, "meta": meta}, False
        # One of the pair was damaged: the meta file marks a finished model,
        # so drop it too and train this target again (same seed, same model).
        meta_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    data = {"train": roles["members"], "reference": roles.get("reference"), "eval": eval_splits,
            "work_dir": str(out / "models" / f"{tag}_dpsgd")}
    progress.write(f"Training '{defense}' ({facts.architecture}, "
                   f"{len(roles['members'][0])} members, seed {seed})")
    trained: TrainedModel = train_defense(defense, config, data, facts.input_shape,
                                          facts.num_classes, facts.architecture, seed,
                                          verbose=fit_verbose)
    if trained.model is not None:
        store.atomic_write(out / "models" / f"{tag}.keras", trained.model.save, suffix=".keras")
        outputs = ModelOutputs.from_model(trained.model, **eval_splits)
    else:
        outputs = trained.outputs
        _keep_dpsgd_model(pathlib.Path(data["work_dir"]), out / "models" / f"{tag}.h5")
    outputs.save_npz(outputs_path)
    meta = {"defense": defense, "seed": seed, **trained.extras}
    store.write_json(meta_path, meta)
    store.save_timing(out, f"train/{tag}_s", time.perf_counter() - t0, timings)
    progress.step(f"train {defense}", done=True)
    progress.advance()
    return {"outputs": outputs, "meta": meta}, True


def _read_meta(path: pathlib.Path) -> Dict[str, Any]:
    meta = store.read_json(path)
    if not isinstance(meta, dict) or "defense" not in meta or "seed" not in meta:
        raise ValueError("not a keras-mi meta file (needs 'defense' and 'seed')")
    return meta


def _check_reused_target(defense, seed, meta, meta_path, outputs, outputs_path, eval_splits,
                         num_classes) -> None:
    """A finished target is reused only when it is this config's: defense, seed, split."""
    tag = store.safe_tag(defense)
    delete = (f"{meta_path}, {outputs_path} and attacks/{tag}.json (the target and its "
              "attacks)")
    if meta.get("defense") != defense or meta.get("seed") != seed:
        raise store.mismatch(meta_path, f"it records defense {meta.get('defense')!r} with seed "
                                        f"{meta.get('seed')!r}, this run trains {defense!r} with "
                                        f"seed {seed}", delete)
    if outputs.num_classes != num_classes:
        raise store.mismatch(outputs_path, f"its logits have {outputs.num_classes} classes, the "
                                           f"dataset {num_classes}", delete)
    for role, (_, y) in eval_splits.items():
        got = outputs.get(role)
        if got is None or len(got[1]) != len(y) or not np.array_equal(got[1], y):
            size = "missing" if got is None else f"{len(got[1])} records"
            raise store.mismatch(outputs_path, f"its '{role}' split ({size}) is not the config's "
                                               f"({len(y)} records with the split's labels)",
                                 delete)


def _keep_dpsgd_model(work_dir: pathlib.Path, target: pathlib.Path) -> None:
    """Keeps the DP-SGD child's model (tf-keras ``.h5``, or ``.keras`` from the
    keras_jax trainer, under ``target`` with that suffix); drops its copy of the data."""
    import shutil

    for model in (work_dir / "out" / "model.h5", work_dir / "out" / "model.keras"):
        if model.exists():
            os.replace(model, target.with_suffix(model.suffix))
    shutil.rmtree(work_dir, ignore_errors=True)


def shadow_step(config: ExperimentConfig, facts,
                roles: Dict[str, Tuple[np.ndarray, np.ndarray]], out: pathlib.Path,
                fit_verbose: int, progress: Progress, timings: Dict[str, float]):
    """Shadow models for the attacks that need them (per-class thresholds, shadow NN).

    The attacker's shadows are trained once per run with the run's recipe
    and architecture, without a defense (the attacker does not know it), on
    disjoint parts of the split's shadow pool, and shared by every target.
    """
    from keras_mi.attacks.shadow import train_disjoint_shadows

    k = config.num_shadow_models
    folder = out / "shadows"
    paths = [folder / f"shadow_{i:02d}.npz" for i in range(k)]
    progress.step(f"train {k} shadow models")
    # A damaged file is deleted by reuse(); the shadows are then trained again
    # (seeded from the run seed, so they are the ones the other files came from).
    saved = [store.reuse(p, ModelOutputs.load_npz) for p in paths]
    for path, shadow in zip(paths, saved):
        if shadow is not None and shadow.num_classes != facts.num_classes:
            raise store.mismatch(path, f"its logits have {shadow.num_classes} classes, the "
                                       f"dataset {facts.num_classes}", f"{folder}/shadow_*.npz")
    if not all(shadow is not None for shadow in saved):
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
        shadows = train_disjoint_shadows(x_pool, y_pool, train_fn, num_shadows=k,
                                         train_size=max(1, min(config.split.members, part // 2)),
                                         seed=model_seed(config.seed, "shadows"),
                                         verbose=1 if fit_verbose else 0)
        folder.mkdir(exist_ok=True)
        for path, shadow in zip(paths, shadows):
            shadow.save_npz(path)
        store.save_timing(out, "shadows/train_s", time.perf_counter() - t0, timings)
        progress.step(f"train {k} shadow models", done=True)
        saved = [ModelOutputs.load_npz(p) for p in paths]
    else:
        progress.skip(f"train {k} shadow models")
    progress.advance()
    return saved


def lira_step(config: ExperimentConfig, facts,
              roles: Dict[str, Tuple[np.ndarray, np.ndarray]], out: pathlib.Path,
              fit_verbose: int, progress: Progress, timings: Dict[str, float],
              indices: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """LiRA's shadows: each trained on a random half of members + non-members.

    ``indices`` restricts training to those shadows (one cluster task each,
    see ``keras-mi shadow``); ``None`` trains every shadow not yet on disk.

    Every target shares that pool, so one bank (trained with the run's recipe,
    no defense) serves all of them. ``shadow_jobs`` writes one file per shadow
    as it finishes, so an interruption loses at most the shadow in training.
    """
    from keras_mi.attacks import lira, shadow_jobs

    k = config.num_lira_shadows
    folder = out / "shadows" / "lira"
    progress.step(f"train {k} LiRA shadows")
    t0 = time.perf_counter()
    pool = lira.lira_pool(roles["members"], roles["non_members"])
    wanted = range(k) if indices is None else indices
    bad = [i for i in wanted if not 0 <= int(i) < k]
    if bad:
        raise ValueError(f"Shadow index {bad} out of range: num_lira_shadows is {k} "
                         f"(valid 0..{k - 1}).")
    drop_damaged_models(folder)
    todo = [int(i) for i in wanted if not shadow_jobs.shadow_path(folder, int(i)).exists()]

    def train_fn(x, y, seed):
        return train_keras_defense("none", config, {"train": (x, y)}, facts.input_shape,
                                   facts.num_classes, facts.architecture, int(seed),
                                   verbose=0).model

    shadow_jobs.train_half_shadows(k, pool, train_fn, folder,
                                   seed=model_seed(config.seed, "lira"),
                                   indices=todo, verbose=1 if fit_verbose else 0)
    if todo:
        store.save_timing(out, "shadows/lira_s", timings.get("shadows/lira_s", 0.0)
                          + time.perf_counter() - t0, timings)
        progress.step(f"train {k} LiRA shadows", done=True)
    else:
        progress.skip(f"train {k} LiRA shadows")
    progress.advance()
    return {"shadow_dir": str(folder), "num_shadows": k}


def drop_damaged_models(folder: pathlib.Path) -> None:
    """Deletes bank / LiRA model files that cannot be read back, so they are trained again.

    Each file is one model, seeded from the run seed and its index, so the
    model trained in its place is the one it held. A file that reads but
    belongs to another run is left to ``load_shadows``, which refuses it.
    """
    if not folder.is_dir():
        return

    def read_all(path):
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                data[key]  # decompress: finds truncation
            if "logits" not in data.files or "in_mask" not in data.files:
                raise ValueError("no 'logits' / 'in_mask' arrays")

    for path in sorted(folder.glob("shadow_*.npz")):
        store.reuse(path, read_all)


def attack_step(tag: str, outputs, attacks: Optional[Sequence[str]], shadow_outputs, options,
                config: ExperimentConfig, out: pathlib.Path, progress: Progress,
                timings: Dict[str, float]):
    """Runs (or loads) every attack on one target; returns (AttackReport, ran)."""
    from keras_mi.attacks import runner as attack_runner

    path = out / "attacks" / f"{tag}.json"
    progress.step(f"attack {tag}")
    saved = store.reuse(path, read_attack_report)
    if saved is not None:
        _check_reused_attacks(saved, path, config)
        progress.skip(f"attack {tag}")
        progress.advance()
        return saved, False
    t0 = time.perf_counter()
    seed_everything(model_seed(config.seed, f"attacks/{tag}"))
    result = attack_runner.run(outputs, attacks=attacks, shadow_outputs=shadow_outputs,
                               options=options)
    store.write_text(path, result.to_json(indent=1) + "\n")
    store.save_timing(out, f"attacks/{tag}_s", time.perf_counter() - t0, timings)
    progress.step(f"attack {tag}", done=True)
    progress.advance()
    # Read back what was saved, so a fresh run and a resumed one report the
    # same (down-sampled) curves.
    return read_attack_report(path), True


def read_attack_report(path: pathlib.Path):
    """An ``attacks/*.json`` file as an AttackReport; a bad one raises ValueError naming it."""
    from keras_mi import attacks as kattacks

    try:
        report = kattacks.AttackReport.from_json(path.read_text(encoding="utf-8"))
    except Exception as err:  # JSON, missing keys, wrong types: all mean a bad file
        raise ValueError(f"{path} is not a readable attack report "
                         f"({type(err).__name__}: {err}).") from err
    if not report.results:
        raise ValueError(f"{path} holds no attack results.")
    return report


def _check_reused_attacks(report, path: pathlib.Path, config: ExperimentConfig) -> None:
    """Members-vs-non-members rows must count the config's members and non-members."""
    s = config.split
    for r in report.results:
        if r.positives == "members" and r.negatives == "non_members" and (
                r.n_members, r.n_non_members) != (s.members, s.non_members):
            raise store.mismatch(path, f"attack '{r.name}' scored {r.n_members} members and "
                                       f"{r.n_non_members} non-members, the config has "
                                       f"{s.members} and {s.non_members}", str(path))


def bank_recipe(config: ExperimentConfig, defense: str) -> str:
    """The recipe label of a defense's bank: its name + a hash of what trains it.

    Two banks share a label only when the defense, data, architecture,
    training recipe and defense hyper-parameters agree, so a folder can
    never mix models of different recipes.

    Example:
      >>> bank_recipe(ExperimentConfig(), "mmd")[:4]
      'mmd '
    """
    import hashlib
    import json

    from keras_mi.experiment.config import identity_dict

    # The defense's own values (per_defense): a bank trained with λ = 2 set for
    # this defense alone is the bank of λ = 2 set for all.
    d = identity_dict(config.for_defense(defense))  # dpsgd.implementation: not at default
    keys = ("dataset", "split", "architecture", "training", "seed", "mmd_weight", "mmd_sigma",
            "mmd_schedule", "mmd_per_class", "mmd_kernel", "mmd_statistic", "mixup_alpha",
            "dpsgd")
    # The defense's own settings section (none for the paper's defenses, whose
    # flat fields are above: their labels stay as they were).
    section = resolve_defense(defense)[0].config_attr
    if section is not None and section not in keys:
        keys = keys + (section,)
    text = json.dumps({k: d[k] for k in keys if k in d}, sort_keys=True)
    return f"{defense} {hashlib.sha256(text.encode()).hexdigest()[:12]}"


class _FixedLogits:
    """A "model" that answers ``predict`` with logits computed elsewhere.

    DP-SGD trains in a child process that returns logits, not a model; the
    bank's files are written from the arrays it was asked about.
    """

    def __init__(self, pairs):
        from keras_mi.attacks.shadow_jobs import pool_fingerprint

        self._fingerprint = lambda x: pool_fingerprint((x, np.zeros(len(x), np.int64)))
        self._logits = {self._fingerprint(x): logits for x, logits in pairs}

    def predict(self, x, batch_size=None, verbose=0):
        key = self._fingerprint(np.asarray(x))
        if key not in self._logits:
            raise ValueError("DP-SGD bank models answer only for the pool and the population.")
        return self._logits[key]


#: Seconds between the progress lines of a bank model's quiet fit.
BANK_HEARTBEAT_S = 60.0


def bank_train_fn(defense: str, config: ExperimentConfig, facts,
                  roles: Dict[str, Tuple[np.ndarray, np.ndarray]], out: pathlib.Path,
                  todo: Sequence[int] = (), bank_seed: int = 0,
                  progress: Optional[Progress] = None):
    """``train_fn(x, y, seed) -> model`` that trains one bank model *with* ``defense``.

    With a verbose ``progress``, a Keras model's quiet fit writes a line
    through it at most once a minute (a CIFAR-10 bank model takes minutes).

    For an entry with ``train_outputs_many`` (``dpsgd``), the first call
    trains every model of ``todo`` (bank indices, halves and seeds as
    :mod:`keras_mi.attacks.shadow_jobs` draws them from ``bank_seed``) at
    once, in one child process on ``keras_jax``, and later calls hand out
    the results.

    Example:
      >>> fn = bank_train_fn("mmd", config, facts, roles, out)  # doctest: +SKIP
      >>> model = fn(x_half, y_half, seed=3)  # doctest: +SKIP
    """
    from keras_mi.attacks import shadow_jobs

    entry, argument = resolve_defense(defense)
    config = config.for_defense(defense)
    pool_x = np.concatenate([roles["members"][0], roles["non_members"][0]])
    pool_y = np.concatenate([roles["members"][1], roles["non_members"][1]])
    tag = store.safe_tag(defense)
    pending = {}  # model seed -> its half of the pool, until the batch trains
    if entry.trains_in_subprocess and entry.train_outputs_many is not None:
        for index in todo:
            mask = shadow_jobs.shadow_membership(int(index), len(pool_y), bank_seed)
            pending[shadow_jobs.shadow_seed(int(index), bank_seed)] = (pool_x[mask],
                                                                       pool_y[mask])
    trained = {}
    heartbeat = ((BANK_HEARTBEAT_S, progress.write) if progress is not None and progress.verbose
                 else None)

    def eval_data(x, y):
        return {"members": (x, y), "non_members": (pool_x, pool_y), "test": roles["test"]}

    def fixed(outputs):
        return _FixedLogits([(pool_x, outputs.logits["non_members"]),
                             (roles["test"][0], outputs.logits["test"])])

    def train_fn(x, y, seed):
        import shutil

        if not entry.trains_in_subprocess:
            return train_keras_defense(defense, config, {"train": (x, y),
                                                         "reference": roles.get("reference")},
                                       facts.input_shape, facts.num_classes, facts.architecture,
                                       int(seed), verbose=0, heartbeat=heartbeat).model
        seed = int(seed)
        if seed in pending and np.array_equal(pending[seed][1], y) \
                and np.array_equal(pending[seed][0], x):
            work = out / "banks" / f"{tag}_work"
            seeds = list(pending)
            results = entry.train_outputs_many(
                config, [{"eval": eval_data(*pending[s]), "work_dir": None} for s in seeds],
                facts.input_shape, facts.num_classes, facts.architecture, seeds, 0, argument,
                work)
            pending.clear()
            if results is not None:  # None: this config trains one model per call
                trained.update({s: outputs for s, (outputs, _) in zip(seeds, results)})
        if seed in trained:
            outputs = trained.pop(seed)
            if not trained:  # every model of the batch handed out: its files can go
                shutil.rmtree(out / "banks" / f"{tag}_work", ignore_errors=True)
            return fixed(outputs)
        work = out / "banks" / f"{tag}_work_{seed}"
        outcome = train_dpsgd_defense(defense, config, {"eval": eval_data(x, y),
                                                        "work_dir": str(work)},
                                      facts.input_shape, facts.num_classes, facts.architecture,
                                      seed)
        shutil.rmtree(work, ignore_errors=True)
        return fixed(outcome.outputs)

    # Models of the batch trained but not handed out yet (the progress estimate).
    train_fn.trained_ahead = lambda: len(trained)
    return train_fn


def bank_step(defense: str, config: ExperimentConfig, facts,
              roles: Dict[str, Tuple[np.ndarray, np.ndarray]], out: pathlib.Path,
              progress: Progress, timings: Dict[str, float],
              indices: Optional[Sequence[int]] = None):
    """Trains the missing models of one defense's bank (or only ``indices``); loads it.

    The bank's models train with the defense itself (the adaptive attacker
    knows the training algorithm), on random halves of members +
    non-members, and are queried on that pool and on the test split
    (RMIA's population). One file per model, so an interruption loses at
    most the model in training; every defense's bank uses the same halves.

    Returns:
      ``(bank, trained)``: the :class:`~keras_mi.attacks.shadow_jobs.ShadowBank`
      (None when ``indices`` asked for only part of it) and whether any
      model was trained in this call.

    Example:
      >>> bank, trained = bank_step("mmd", config, facts, roles, out, progress,
      ...                           timings)  # doctest: +SKIP
    """
    from keras_mi.attacks import bank as kbank
    from keras_mi.attacks import lira, shadow_jobs

    b, tag = config.bank, store.safe_tag(defense)
    folder = out / "banks" / tag
    label = f"bank of {b.size} for {defense}"
    progress.step(label)
    pool = lira.lira_pool(roles["members"], roles["non_members"])
    wanted = list(range(b.size)) if indices is None else [int(i) for i in indices]
    drop_damaged_models(folder)
    todo = [i for i in wanted if not shadow_jobs.shadow_path(folder, i).exists()]
    recipe = bank_recipe(config, defense)
    queries = kbank.flip_shift_queries(b.query_shift) if b.queries == "flip_shift" else None
    t0 = time.perf_counter()
    if todo:
        progress.write(f"Training {len(todo)} model(s) of the '{defense}' bank "
                       f"({b.size} in all, {len(pool[1]) // 2} records each)")
    seed = model_seed(config.seed, "bank")
    kbank.train_bank(bank_train_fn(defense, config, facts, roles, out, todo, seed, progress),
                     pool, folder, num_models=b.size, population=roles["test"], queries=queries,
                     recipe=recipe, seed=seed, indices=todo,
                     verbose=1 if progress.verbose else 0)
    if todo:
        store.save_timing(out, f"banks/{tag}_s", timings.get(f"banks/{tag}_s", 0.0)
                          + time.perf_counter() - t0, timings)
        progress.step(label, done=True)
    else:
        progress.skip(label)
    progress.advance()
    if indices is not None:
        return None, bool(todo)
    return kbank.load_bank(folder, num_models=b.size, pool=pool, recipe=recipe), bool(todo)


def _bank_audit(defense: str, config: ExperimentConfig, report) -> Dict[str, Any]:
    """Empirical ε lower bound of a DP-SGD bank from its pooled attack scores.

    :func:`keras_mi.baselines.audit.empirical_epsilon_of_attacks` over every
    attack (Bonferroni over attacks, threshold picked on half the pairs), at
    the bank models' δ, next to the accountant's ε they were calibrated to.

    Warnings:
      Pooled (model, record) pairs are neither independent (pairs of one
      model share its training) nor add/remove neighbours (the halves have a
      fixed size, so "in" and "out" differ by a replacement, whose ε is up to
      twice the accountant's): read it as a sanity check, not an audit.
    """
    from keras_mi.baselines.accounting import default_delta
    from keras_mi.baselines.audit import empirical_epsilon_of_attacks

    entry, argument = resolve_defense(defense)
    config = config.for_defense(defense)
    dp = config.dpsgd
    half = (config.split.members + config.split.non_members) // 2
    delta = dp.delta if dp.delta is not None else default_delta(half)
    audit = empirical_epsilon_of_attacks(
        {r.name: (r.member_scores, r.non_member_scores) for r in report.results
         if r.member_scores is not None}, delta=delta)
    audit["accountant_epsilon"] = float(entry.epsilon(config, argument))
    audit["pairs"] = "pooled (model, record) pairs; replace-one, not independent"
    return audit


def attack_one_bank(defense: str, bank, shadow_bank, config: ExperimentConfig):
    """The bank protocol's attacks on ``defense``'s bank, in memory (nothing written).

    Adaptive when ``shadow_bank`` is None (each model the target, the others
    of its bank the shadows), else non-adaptive with ``shadow_bank``'s models
    as the shadows. The report's metadata holds the models' accuracies and,
    for a defense with an accountant's ε, the empirical ε audit.

    Args:
      defense: a defense name of ``config`` (it decides whether to audit).
      bank: the :class:`keras_mi.attacks.shadow_jobs.ShadowBank` attacked.
      shadow_bank: None, or the bank whose models are the shadows.
      config: the run's configuration (``bank`` settings, ``dpsgd``, ``split``).

    Returns:
      An :class:`keras_mi.attacks.AttackReport`.

    Example:
      >>> report = attack_one_bank("dpsgd", dp_bank, None, config)  # doctest: +SKIP
      >>> report.metadata["empirical_epsilon"]["epsilon"]  # doctest: +SKIP
    """
    from keras_mi.attacks import bank as kbank

    b = config.bank
    entry, argument = resolve_defense(defense)
    audited = entry.epsilon(config, argument) is not None
    report = kbank.attack_bank(bank, shadow_bank=shadow_bank, lira_center=b.lira_center,
                               rmia_gamma=b.rmia_gamma, rmia_offline_a=b.rmia_offline_a,
                               keep_scores=audited)
    report.metadata["accuracy"] = kbank.model_accuracies(bank)
    if audited:
        report.metadata["empirical_epsilon"] = _bank_audit(defense, config, report)
    return report


def bank_attack_step(defense: str, bank, shadow_bank, config: ExperimentConfig,
                     out: pathlib.Path, progress: Progress, timings: Dict[str, float]):
    """The bank protocol's attacks on one defense (adaptive, and non-adaptive when asked).

    Returns:
      ``{"adaptive": AttackReport, "non_adaptive": AttackReport or None}``.

    Example:
      >>> reports = bank_attack_step("mmd", mmd_bank, none_bank, config, out, progress,
      ...                            timings)  # doctest: +SKIP
      >>> reports["adaptive"].strongest(by="low_fpr").name  # doctest: +SKIP
    """
    tag = store.safe_tag(defense)
    progress.step(f"bank attacks {tag}")
    done = {}
    for protocol, shadows in (("adaptive", None), ("non_adaptive", shadow_bank)):
        if protocol == "non_adaptive" and shadows is None:
            done[protocol] = None
            continue
        suffix = "" if protocol == "adaptive" else "_non_adaptive"
        path = out / "attacks" / f"bank_{tag}{suffix}.json"
        if store.reuse(path, read_attack_report) is None:
            t0 = time.perf_counter()
            report = attack_one_bank(defense, bank, shadows, config)
            store.write_text(path, report.to_json(indent=1) + "\n")
            store.save_timing(out, f"attacks/bank_{tag}_{protocol}_s",
                              time.perf_counter() - t0, timings)
        done[protocol] = read_attack_report(path)
    progress.step(f"bank attacks {tag}", done=True)
    progress.advance()
    return done
