"""Resumable, splittable shadow-model training for LiRA.

LiRA (Carlini et al. 2022) needs many shadow models, each trained on a random
half of a data *pool* (for a target: its members and non-members, in that
order). Training them is the expensive part, so it is cut into independent
jobs, one per shadow index:

* :func:`train_half_shadow` trains shadow ``index`` of ``num_shadows`` and writes
  ``out_dir/shadow_{index:04d}.npz`` (its logits on the whole pool, its
  membership mask, the pool labels and fingerprint; plain npz, no pickle).
  The file is written to a temporary name and renamed, so an interrupted job
  never leaves a file that counts; a finished file makes a rerun a no-op.
* :func:`load_shadows` reads every finished file, checks that they agree
  (same pool fingerprint, ``num_shadows`` and seed) and names the missing
  indices. :func:`keras_mi.attacks.lira.aggregate_lira` scores on top of it.

Which half of the pool shadow ``index`` trains on depends only on
``(seed, index)`` (see :func:`shadow_membership`), so machines that share
nothing but the pool, the seed and ``num_shadows`` train consistent shadows
without talking to each other:

* SLURM array: ``#SBATCH --array=0-63`` and, in the job script,
  ``keras-mi shadow --shadow-index $SLURM_ARRAY_TASK_ID --num-shadows 64
  --out runs/lira``; afterwards one ``keras-mi shadow --aggregate --out
  runs/lira`` (e.g. with ``--dependency=afterok:<array job id>``).
* Kubernetes Indexed Job: ``completionMode: Indexed``, ``completions: 64``,
  ``parallelism: 8`` and the command ``keras-mi shadow --shadow-index
  $(JOB_COMPLETION_INDEX) --num-shadows 64 --out /shared/lira`` on a shared
  volume; then one aggregate Job.

A preempted or failed task is simply rerun: finished indices are skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import re
import time
import warnings
from typing import Callable, Iterable, Optional, Tuple

import numpy as np

from keras_mi._atomic import atomic_save_npz
from keras_mi._deprecation import deprecated_alias
from keras_mi.outputs import predict_logits as _predict_logits

FORMAT_VERSION = 1
#: Metadata every file holds (``recipe`` and ``num_queries`` default to
#: ``""`` and 1 in files written before they existed).
_META_KEYS = ("index", "num_shadows", "seed", "fingerprint", "version")
_FILE_RE = re.compile(r"^shadow_(\d{4,})\.npz$")


def shadow_path(out_dir, index: int) -> pathlib.Path:
    """Path of shadow ``index``'s result file: ``out_dir/shadow_{index:04d}.npz``."""
    return pathlib.Path(out_dir) / f"shadow_{index:04d}.npz"


def as_pool(pool) -> Tuple[np.ndarray, np.ndarray]:
    """Checks a pool ``(x, y)`` (>= 4 records, one non-negative integer label each).

    Returns:
      ``(x, y)`` as arrays.

    Example:
      >>> x, y = as_pool((np.zeros((4, 2)), [0, 1, 0, 1]))
      >>> x.shape, y.tolist()
      ((4, 2), [0, 1, 0, 1])
    """
    if not isinstance(pool, (tuple, list)) or len(pool) != 2:
        raise ValueError("pool must be a tuple (x, y) of inputs and integer labels.")
    x, y = np.asarray(pool[0]), np.asarray(pool[1])
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"pool labels must be (n,) with one per input; got x {x.shape}, y {y.shape}.")
    if len(y) < 4:
        raise ValueError(f"pool has {len(y)} examples; LiRA needs at least 4.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError("pool labels must be non-negative integers (class indices).")
    return x, y


def pool_fingerprint(pool) -> str:
    """SHA-256 (hex, 16 chars) of the pool's shapes, dtypes and bytes.

    Example:
      >>> fp = pool_fingerprint((np.zeros((4, 2), "float32"), np.arange(4)))
      >>> len(fp)
      16
    """
    x, y = as_pool(pool)
    h = hashlib.sha256()
    for a in (x, y.astype(np.int64)):
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


def shadow_membership(index: int, pool_size: int, seed: int = 0) -> np.ndarray:
    """Boolean mask of the pool examples shadow ``index`` trains on.

    Shadows come in complementary pairs: shadows ``2j`` and ``2j + 1`` split
    the pool into a random half (drawn from ``(seed, j)``) and its complement.
    So every shadow trains on half the pool and, with an even number of
    shadows, every example is "in" for exactly half of them, which gives both
    LiRA Gaussians the same number of samples.

    Example:
      >>> a, b = shadow_membership(0, 10), shadow_membership(1, 10)
      >>> bool(np.all(a ^ b)), int(a.sum())
      (True, 5)
    """
    if index < 0 or pool_size < 2 or seed < 0:
        raise ValueError("index and seed must be >= 0 and pool_size >= 2.")
    rng = np.random.default_rng([seed, index // 2])
    half = np.zeros(pool_size, dtype=bool)
    half[rng.permutation(pool_size)[: pool_size // 2]] = True
    return half if index % 2 == 0 else ~half


def shadow_seed(index: int, seed: int = 0) -> int:
    """The training seed handed to ``train_fn`` for shadow ``index``."""
    return int(np.random.SeedSequence([seed, index, 7]).generate_state(1)[0] % (2**31))


def make_train_fn(make_model: Callable, fit_kwargs: Optional[dict] = None) -> Callable:
    """Turns a target recipe into ``train_fn(x, y, seed) -> model``.

    Args:
      make_model: no-argument callable returning a *compiled* Keras model
        whose outputs are logits (as ``keras_mi.models.build_model`` builds).
      fit_kwargs: keyword arguments for ``model.fit`` (epochs, batch_size...);
        ``verbose`` defaults to 0.

    Example:
      >>> train_fn = make_train_fn(lambda: my_compiled_model(), {"epochs": 30})
      >>> model = train_fn(x, y, seed=3)  # doctest: +SKIP
    """
    if not callable(make_model):
        raise ValueError("make_model must be a callable returning a compiled model.")
    kwargs = {"verbose": 0, **(fit_kwargs or {})}

    def train_fn(x, y, seed):
        import keras  # local: keeps this module importable without a backend

        keras.utils.set_random_seed(int(seed))
        model = make_model()
        model.fit(x, y, **kwargs)
        return model

    return train_fn


def predict_logits(model, x, batch_size: int = 1024) -> np.ndarray:
    """A shadow's float32 logits: :func:`keras_mi.outputs.predict_logits`, warning on softmax.

    Example:
      >>> predict_logits(lambda v: v, np.array([[1.0, -1.0]])).dtype
      dtype('float32')
    """
    return _predict_logits(model, x, batch_size, dtype=np.float32, on_probabilities="warn")


def _read_meta(path) -> dict:
    with np.load(path, allow_pickle=False) as d:
        meta = {k: d[k].item() for k in _META_KEYS}
        meta["recipe"] = str(d["recipe"].item()) if "recipe" in d.files else ""
        meta["num_queries"] = int(d["query_logits"].shape[0]) if "query_logits" in d.files else 1
        meta["population"] = (str(d["population_fingerprint"].item())
                              if "population_fingerprint" in d.files else "")
        return meta


def query_views(queries: Optional[Callable], x) -> list:
    """The inputs a model is queried on: ``[x]``, or ``queries(x)`` checked.

    ``queries(x)`` must return a list of arrays shaped like ``x`` whose first
    entry is ``x`` itself (see :func:`keras_mi.attacks.bank.flip_shift_queries`).
    """
    if queries is None:
        return [x]
    views = list(queries(x))
    if not views or any(np.shape(v) != np.shape(x) for v in views):
        raise ValueError("queries(x) must return a non-empty list of arrays shaped like x.")
    if not np.array_equal(views[0], x):
        raise ValueError("queries(x)[0] must be x itself (the un-augmented query).")
    return views


def _predict_views(model, views) -> np.ndarray:
    """``(num_queries, n, classes)`` logits of ``model`` on each view."""
    return np.stack([predict_logits(model, v) for v in views])


def train_half_shadow(index: int, num_shadows: int, pool, train_fn: Callable, out_dir,
                 seed: int = 0, verbose: int = 1, population=None,
                 queries: Optional[Callable] = None, recipe: str = "") -> pathlib.Path:
    """Trains shadow ``index`` of ``num_shadows`` on its random half of ``pool``; resumable.

    The LiRA / bank scheme: every model trains on a random half of one pool
    (complementary pairs, :func:`shadow_membership`) and the membership is
    recorded; compare :func:`keras_mi.attacks.shadow.train_disjoint_shadows`
    (Shokri et al.'s disjoint parts of a separate shadow pool).

    Writes ``out_dir/shadow_{index:04d}.npz`` atomically with arrays
    ``logits`` (pool, classes), ``in_mask`` (pool,) bool, ``labels`` and
    metadata (``index``, ``num_shadows``, ``seed``, ``fingerprint``). If that
    file already exists for the same pool, seed and ``num_shadows`` it returns
    at once; a file from another pool or seed raises (use a fresh ``out_dir``).

    Args:
      index: which shadow, ``0 <= index < num_shadows``.
      num_shadows: total number of shadows (even recommended; >= 4 for LiRA
        with per-example variance).
      pool: ``(x, y)``; for a target, members then non-members, in the order
        of its ``ModelOutputs``.
      train_fn: ``train_fn(x, y, seed) -> model`` (see :func:`make_train_fn`)
        returning a model whose ``predict`` gives logits.
      out_dir: shared folder of the shadow files (created if missing).
      seed: the experiment seed; all jobs of one run must use the same.
      verbose: 1 prints one line per shadow.
      population: optional ``(x, y)`` that no model trains on (RMIA's
        population set ``Z``); its logits are stored too.
      queries: optional ``queries(x) -> [x, view_1, ...]`` (augmented
        copies, e.g. :func:`keras_mi.attacks.bank.flip_shift_queries`); the
        logits of every view are stored as ``query_logits``.
      recipe: a label of the training recipe (defense, hyper-parameters);
        files of one folder must agree on it.

    Returns:
      The path of the shadow's file.

    Cluster use: one call per task, e.g. a SLURM array (``--array=0-15``,
    ``index=$SLURM_ARRAY_TASK_ID``) or a Kubernetes Indexed Job
    (``index=$JOB_COMPLETION_INDEX``) writing to a shared ``out_dir``; then
    one :func:`keras_mi.attacks.lira.aggregate_lira` (see the module doc).

    Example:
      >>> for i in range(16):  # or one i per SLURM array task
      ...     train_half_shadow(i, 16, (x_pool, y_pool), train_fn, "runs/lira")  # doctest: +SKIP
    """
    if not 0 <= index < num_shadows:
        raise ValueError(f"index must lie in [0, num_shadows={num_shadows}); got {index}.")
    x, y = as_pool(pool)
    fingerprint = pool_fingerprint((x, y))
    pop_fingerprint = "" if population is None else pool_fingerprint(population)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = shadow_path(out_dir, index)
    if path.exists():
        try:
            meta = _read_meta(path)
        except Exception as err:  # a damaged file (not ours: we rename whole files)
            warnings.warn(f"{path} is unreadable ({err}); training it again.")
        else:
            want = {"index": index, "num_shadows": num_shadows, "seed": seed,
                    "fingerprint": fingerprint, "recipe": str(recipe),
                    "population": pop_fingerprint}
            diff = {k: (meta[k], v) for k, v in want.items() if meta[k] != v}
            if diff:
                raise ValueError(
                    f"{path} belongs to another run (found vs wanted: {diff}); "
                    "use a fresh out_dir or delete the old shadow files.")
            if verbose:
                print(f"shadow {index} of {num_shadows}: already done ({path.name})")
            return path
    mask = shadow_membership(index, len(y), seed)
    start = time.perf_counter()
    model = train_fn(x[mask], y[mask], seed=shadow_seed(index, seed))
    views = query_views(queries, x)
    query_logits = _predict_views(model, views)
    logits = query_logits[0]
    arrays = {}
    if len(views) > 1:
        arrays["query_logits"] = query_logits
    if population is not None:
        z, z_labels = as_pool(population)
        arrays["population_logits"] = _predict_views(model, query_views(queries, z))
        arrays["population_labels"] = z_labels.astype(np.int64)
        arrays["population_fingerprint"] = np.str_(pop_fingerprint)
    seconds = time.perf_counter() - start
    if logits.shape[1] <= int(y.max()):
        raise ValueError(f"shadow outputs {logits.shape[1]} classes but labels go to {y.max()}.")
    atomic_save_npz(path, **{
        "logits": logits, "in_mask": mask, "labels": y.astype(np.int64),
        "index": np.int64(index), "num_shadows": np.int64(num_shadows),
        "seed": np.int64(seed), "fingerprint": np.str_(fingerprint),
        "recipe": np.str_(recipe), **arrays,
        "version": np.int64(FORMAT_VERSION), "train_seconds": np.float64(seconds)})
    if verbose:
        acc_in = float(np.mean(logits[mask].argmax(1) == y[mask]))
        acc_out = float(np.mean(logits[~mask].argmax(1) == y[~mask]))
        print(f"shadow {index} of {num_shadows}: trained in {seconds:.1f}s, "
              f"accuracy in {acc_in:.3f} / out {acc_out:.3f} -> {path.name}")
    return path


def train_half_shadows(num_shadows: int, pool, train_fn: Callable, out_dir, seed: int = 0,
                  indices: Optional[Iterable[int]] = None, verbose: int = 1, **kwargs):
    """Runs :func:`train_half_shadow` for ``indices`` (default all); returns the paths.

    ``kwargs`` (``population``, ``queries``, ``recipe``) go to :func:`train_half_shadow`.
    With ``verbose``, each model trained here is followed by how many are
    left and the time they would take at the pace so far. A ``train_fn``
    that trains several models in one call (DP-SGD's batched child process)
    says how many it holds ready with a ``trained_ahead()`` attribute; those
    are left out of the estimate.

    Example:
      >>> train_half_shadows(16, pool, train_fn, "runs/lira", indices=range(8))  # doctest: +SKIP
    """
    indices = list(range(num_shadows) if indices is None else indices)
    paths, seconds = [], []
    for k, i in enumerate(indices):
        existed = shadow_path(out_dir, i).exists()
        start = time.perf_counter()
        paths.append(train_half_shadow(i, num_shadows, pool, train_fn, out_dir, seed, verbose,
                                       **kwargs))
        if existed:
            continue
        seconds.append(time.perf_counter() - start)
        left = sum(not shadow_path(out_dir, j).exists() for j in indices[k + 1:])
        ahead = min(left, int(getattr(train_fn, "trained_ahead", lambda: 0)()))
        if verbose and left:
            if left == ahead:
                print(f"  {left} model(s) left, trained already (one batch)", flush=True)
                continue
            # The calls that trained models ahead were slow for all of them.
            eta = (left - ahead) * sum(seconds) / (len(seconds) + ahead)
            print(f"  {left} model(s) left, about {_duration(eta)} at this pace", flush=True)
    return paths


def _duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"`` or ``"2.5 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclasses.dataclass
class ShadowBank:
    """Every finished model of one bank (LiRA shadows or a model bank), stacked.

    Attributes:
      logits: ``(num_shadows, pool, classes)`` logits on the pool.
      in_mask: ``(num_shadows, pool)`` True where the model trained on it.
      labels: ``(pool,)`` the pool labels.
      fingerprint: the pool fingerprint all files share.
      seed: the run seed.
      recipe: the recipe label all files share.
      query_logits: ``(num_shadows, queries, pool, classes)`` logits on each
        query view (the first is the plain input), or None without queries.
      population_logits: ``(num_shadows, queries, m, classes)`` logits on
        the population set, or None.
      population_labels: ``(m,)``, or None.
    """

    logits: np.ndarray
    in_mask: np.ndarray
    labels: np.ndarray
    fingerprint: str
    seed: int
    recipe: str = ""
    query_logits: Optional[np.ndarray] = None
    population_logits: Optional[np.ndarray] = None
    population_labels: Optional[np.ndarray] = None

    @property
    def num_shadows(self) -> int:
        return self.in_mask.shape[0]

    @property
    def num_models(self) -> int:
        """The number of models (the same as ``num_shadows``)."""
        return self.in_mask.shape[0]

    def pool_query_logits(self) -> np.ndarray:
        """``(models, queries, pool, classes)``: the query logits, or the logits as one query."""
        return self.query_logits if self.query_logits is not None else self.logits[:, None]


def load_shadows(out_dir, num_shadows: Optional[int] = None, pool=None,
                 recipe: Optional[str] = None,
                 only_first: Optional[int] = None) -> ShadowBank:
    """Loads and checks all shadow files of ``out_dir``.

    Raises ``ValueError`` when files disagree on pool fingerprint, seed or
    ``num_shadows``, when ``pool`` is given and differs, and when indices are
    missing (the message lists them). Temporary files of interrupted jobs are
    ignored.

    ``only_first = k`` loads only models ``0 .. k-1`` (an even number: complete
    pairs): an interim look at a bank still in training. Their halves and
    seeds do not depend on the bank's size, so they are the models a bank of
    ``k`` would hold.

    Example:
      >>> bank = load_shadows("runs/lira", num_shadows=16)  # doctest: +SKIP
      >>> bank.logits.shape  # doctest: +SKIP
      (16, 3000, 30)
    """
    out_dir = pathlib.Path(out_dir)
    files = sorted(p for p in out_dir.glob("shadow_*.npz") if _FILE_RE.match(p.name)) \
        if out_dir.is_dir() else []
    if not files:
        raise ValueError(f"no shadow files (shadow_NNNN.npz) in {out_dir}; run "
                         "train_half_shadow first.")
    metas = {}
    for p in files:
        try:
            metas[p] = _read_meta(p)
        except Exception as err:
            raise ValueError(f"{p} is unreadable ({err}); delete it and rerun its job.") from err
    first = next(iter(metas.values()))
    for key in ("fingerprint", "num_shadows", "seed", "version", "recipe", "num_queries",
                "population"):
        values = sorted({str(m[key]) for m in metas.values()})
        if len(values) > 1:
            raise ValueError(f"shadow files in {out_dir} disagree on {key}: {values}; "
                             "they come from different runs (or recipes); keep one run per "
                             "folder.")
    if recipe is not None and first["recipe"] != recipe:
        raise ValueError(f"{out_dir} holds models of recipe {first['recipe']!r}, not "
                         f"{recipe!r}; use a fresh folder for each recipe.")
    total = int(first["num_shadows"])
    if num_shadows is not None and num_shadows != total:
        raise ValueError(f"asked for {num_shadows} shadows but {out_dir} holds a run of {total}.")
    if only_first is not None:
        k = only_first
        if not (isinstance(k, int) and 2 <= k <= total and k % 2 == 0):
            raise ValueError(f"only_first must be an even number of models from 2 to {total} "
                             f"(complete pairs); got {k!r}.")
        files = [p for p in files if int(metas[p]["index"]) < k]
        metas = {p: metas[p] for p in files}
        total = k
    if pool is not None and pool_fingerprint(pool) != first["fingerprint"]:
        raise ValueError("the shadows were trained on another pool (fingerprint differs); "
                         "pass the same (x, y) in the same order.")
    found = {int(m["index"]) for m in metas.values()}
    missing = sorted(set(range(total)) - found)
    if missing:
        raise ValueError(f"{len(missing)} of {total} shadows are missing in {out_dir}: "
                         f"indices {missing}; run train_half_shadow for them "
                         "(keras-mi shadow --shadow-index i --num-shadows "
                         f"{total}) and aggregate again.")
    arrays: dict = {"logits": [], "in_mask": [], "query_logits": [], "population_logits": []}
    labels = population_labels = None
    for p in sorted(files, key=lambda q: metas[q]["index"]):
        with np.load(p, allow_pickle=False) as d:
            for key, values in arrays.items():
                if key in d.files:
                    values.append(d[key])
            if labels is None:
                labels = d["labels"]
                if "population_labels" in d.files:
                    population_labels = d["population_labels"]
    stacked = {k: np.stack(v) if v else None for k, v in arrays.items()}
    return ShadowBank(logits=stacked["logits"], in_mask=stacked["in_mask"], labels=labels,
                      fingerprint=str(first["fingerprint"]), seed=int(first["seed"]),
                      recipe=str(first["recipe"]), query_logits=stacked["query_logits"],
                      population_logits=stacked["population_logits"],
                      population_labels=population_labels)


# Old names, kept for one release.
train_shadow = deprecated_alias(train_half_shadow, "train_shadow")
train_shadows = deprecated_alias(train_half_shadows, "train_shadows")
