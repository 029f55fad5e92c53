"""MembershipSplit: seeded, stratified, disjoint index sets over one pool.

A membership-inference experiment cuts one pool of records ``(x, y)`` into

* ``members``: the target model's training set,
* ``reference``: held-out validation records; the MMD regularizer draws
  class-matched batches from it, so it must cover every member class,
* ``non_members``: held-out records scored by the attacks against members,
* ``test``: held-out records for test accuracy,
* ``shadow``: a pool for shadow / reference models (LiRA, shadow attacks).

The split stores index arrays into the pool plus a fingerprint (SHA-256 of
the pool's bytes and labels), so a saved split is never reused on other data.
"""

import dataclasses
import hashlib
import json
import pathlib

import numpy as np

from keras_mi.data._download import atomic_write_text

SET_NAMES = ("members", "reference", "non_members", "test", "shadow")
_FORMAT = "keras_mi.MembershipSplit"
_VERSION = 1


def dataset_fingerprint(x, y):
    """SHA-256 over the pool's shape, dtype, bytes and int64 labels.

    Example:
      >>> len(dataset_fingerprint(np.zeros((2, 3)), np.array([0, 1])))
      64
    """
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(np.asarray(y).astype(np.int64))
    digest = hashlib.sha256()
    digest.update(f"{_FORMAT}:{x.shape}:{x.dtype.str}:{y.shape}".encode())
    digest.update(memoryview(x.reshape(-1).view(np.uint8)))
    digest.update(memoryview(y.view(np.uint8)))
    return digest.hexdigest()


def _check_pool(x, y, num_classes):
    """Validate ``(x, y)``; return int64 labels and the number of classes."""
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(
            f"y must be a 1-D array of integer class labels, got shape {y.shape}; "
            "convert one-hot labels with y.argmax(-1)."
        )
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} records but y has {len(y)}; pass matching arrays.")
    if len(y) == 0:
        raise ValueError("The pool is empty; pass at least one record.")
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise ValueError(f"x must be numeric, got dtype {x.dtype}.")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))
        raise ValueError(
            f"x contains NaN or infinite values in {bad} record(s); drop or impute them first."
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("y must hold integer class labels; found non-integer values.")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise ValueError(
            f"Labels must be 0-based class indices; found {y.min()}. Shift them "
            "(e.g. y - y.min()) first."
        )
    if num_classes is None:
        num_classes = int(y.max()) + 1
    elif y.max() >= num_classes:
        raise ValueError(
            f"Label {y.max()} is outside 0..{num_classes - 1}; raise num_classes "
            "or fix the labels."
        )
    return y, int(num_classes)


@dataclasses.dataclass(frozen=True, eq=False)
class MembershipSplit:
    """Disjoint, stratified index sets over one pool of records.

    Build one with :meth:`create`; each attribute in :data:`SET_NAMES` is a
    sorted int64 array of indices into the pool.

    Attributes:
      members: Target model training set.
      reference: Validation set (class-matched MMD batches come from it).
      non_members: Held-out records for attack evaluation.
      test: Held-out records for accuracy.
      shadow: Pool for shadow / LiRA reference models.
      seed: The seed used by :meth:`create`.
      fingerprint: :func:`dataset_fingerprint` of the pool.
      pool_size: Number of records in the pool.
      num_classes: Number of classes.

    Example:
      >>> x, y = np.random.rand(600, 4), np.arange(600) % 3
      >>> split = MembershipSplit.create(x, y, members=100, reference=100,
      ...     non_members=100, test=100, shadow=200, seed=0)
      >>> x_train, y_train = x[split.members], y[split.members]
    """

    members: np.ndarray
    reference: np.ndarray
    non_members: np.ndarray
    test: np.ndarray
    shadow: np.ndarray
    seed: int | None
    fingerprint: str
    pool_size: int
    num_classes: int

    def __post_init__(self):
        for name in SET_NAMES:
            idx = np.sort(np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
            object.__setattr__(self, name, idx)
        self._check_indices()

    def _check_indices(self):
        everything = np.concatenate([getattr(self, n) for n in SET_NAMES])
        if everything.size and (everything.min() < 0 or everything.max() >= self.pool_size):
            raise ValueError(
                f"Split indices must lie in 0..{self.pool_size - 1}; found "
                f"{everything.min()}..{everything.max()}. The split file is corrupt."
            )
        if np.unique(everything).size != everything.size:
            raise ValueError(
                "Split sets overlap or repeat indices: members, reference, "
                "non_members, test and shadow must be disjoint."
            )

    @property
    def sizes(self):
        """``{set name: size}``.

        Example:
          >>> split.sizes["members"]  # doctest: +SKIP
          100
        """
        return {name: int(getattr(self, name).size) for name in SET_NAMES}

    @staticmethod
    def default_sizes(pool_size):
        """Propose sizes: a sixth of the pool for each of the four target
        sets, the rest (a third) for the shadow pool.

        On CIFAR-10's 60,000 images this gives the paper's 10,000 members.

        Example:
          >>> MembershipSplit.default_sizes(60000)["members"]
          10000
        """
        part = int(pool_size) // 6
        sizes = dict.fromkeys(SET_NAMES[:-1], part)
        sizes["shadow"] = int(pool_size) - 4 * part
        return sizes

    @classmethod
    def create(
        cls,
        x,
        y,
        members=None,
        reference=None,
        non_members=None,
        test=None,
        shadow=None,
        seed=0,
        num_classes=None,
    ):
        """Cut the pool ``(x, y)`` into stratified, disjoint sets.

        Records are shuffled within each class (seeded), then interleaved
        so that every contiguous run of the resulting order holds each
        class in proportion to the pool (within two records per class);
        the sets are consecutive runs of that order.

        Args:
          x, y: The pool; ``y`` holds 0-based integer labels.
          members, reference, non_members, test, shadow: Set sizes (ints
            >= 0; ``members`` and ``reference`` >= 1). ``None`` takes
            :meth:`default_sizes`, except ``shadow``, which then takes
            every record the other sets leave.
          seed: Seed of the shuffle; the same seed gives the same split.
          num_classes: Number of classes (default ``max(y) + 1``).

        Raises:
          ValueError: Bad pool (NaN, bad labels), sizes that do not fit,
            or a member class missing from the reference set.

        Example:
          >>> split = MembershipSplit.create(x, y, members=100, reference=100,
          ...     non_members=100, test=100, shadow=0, seed=1)  # doctest: +SKIP
        """
        y, num_classes = _check_pool(x, y, num_classes)
        n = len(y)
        sizes = _resolve_sizes(
            n, dict(zip(SET_NAMES, (members, reference, non_members, test, shadow)))
        )
        order = _stratified_order(y, np.random.default_rng(seed))
        bounds = np.cumsum([0] + [sizes[name] for name in SET_NAMES])
        sets = {name: order[bounds[i] : bounds[i + 1]] for i, name in enumerate(SET_NAMES)}
        _check_reference_covers_members(y, sets["members"], sets["reference"])
        return cls(
            **sets,
            seed=None if seed is None else int(seed),
            fingerprint=dataset_fingerprint(x, y),
            pool_size=n,
            num_classes=num_classes,
        )

    def arrays(self, x, y, name):
        """Return ``(x[idx], y[idx])`` for set ``name`` (one of :data:`SET_NAMES`).

        Example:
          >>> x_ref, y_ref = split.arrays(x, y, "reference")  # doctest: +SKIP
        """
        if name not in SET_NAMES:
            raise ValueError(f"Unknown set '{name}'; choose one of {SET_NAMES}.")
        idx = getattr(self, name)
        return np.asarray(x)[idx], np.asarray(y)[idx]

    def to_dict(self):
        """JSON-ready dict: format tag, sizes, seed, fingerprint and indices.

        Example:
          >>> split.to_dict()["sizes"]["test"]  # doctest: +SKIP
          100
        """
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "pool_size": self.pool_size,
            "num_classes": self.num_classes,
            "sizes": self.sizes,
            "indices": {name: getattr(self, name).tolist() for name in SET_NAMES},
        }

    def save(self, path):
        """Write the split to ``path`` as one JSON file (atomically).

        Example:
          >>> split.save("split.json")  # doctest: +SKIP
        """
        atomic_write_text(path, json.dumps(self.to_dict()))
        return pathlib.Path(path)

    @classmethod
    def load(cls, path, x, y):
        """Read a split saved by :meth:`save` and check it against ``(x, y)``.

        Raises:
          ValueError: the file is not a split, its sets overlap or do not
            match their recorded sizes, or ``(x, y)`` is not the pool it
            was made from (fingerprint mismatch).

        Example:
          >>> split = MembershipSplit.load("split.json", x, y)  # doctest: +SKIP
        """
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError: truncated or not text
            raise ValueError(f"{path} is not a readable split file ({err}).") from err
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a keras-mi MembershipSplit file.")
        if data.get("version") != _VERSION:
            raise ValueError(f"{path} has split format version {data.get('version')}, "
                             f"this keras-mi reads version {_VERSION}.")  # fmt: skip
        fields = ("seed", "fingerprint", "pool_size", "num_classes", "sizes", "indices")
        missing = [k for k in fields if k not in data]
        if missing or not isinstance(data["indices"], dict) or \
                any(name not in data["indices"] for name in SET_NAMES):
            raise ValueError(f"{path} is incomplete: it lacks "
                             f"{missing or 'the indices of ' + ', '.join(SET_NAMES)}.")
        actual = dataset_fingerprint(x, y)
        if actual != data["fingerprint"]:
            raise ValueError(
                f"{path} was made for a different dataset (fingerprint "
                f"{data['fingerprint'][:16]}..., this pool gives {actual[:16]}...). "
                "Load the same data (same order, dtype and preprocessing) or "
                "create a new split."
            )
        try:
            split = cls(
                **{name: np.asarray(data["indices"][name], dtype=np.int64) for name in SET_NAMES},
                seed=data["seed"],
                fingerprint=data["fingerprint"],
                pool_size=int(data["pool_size"]),
                num_classes=int(data["num_classes"]),
            )
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{path} holds invalid indices ({err}).") from err
        if split.pool_size != len(y) or split.sizes != data["sizes"]:
            raise ValueError(f"{path} is inconsistent (sizes or pool size); recreate the split.")
        return split


def _resolve_sizes(n, requested):
    defaults = MembershipSplit.default_sizes(n)
    sizes = {}
    for name in SET_NAMES[:-1]:
        sizes[name] = defaults[name] if requested[name] is None else requested[name]
    sizes["shadow"] = requested["shadow"]
    if sizes["shadow"] is None:
        sizes["shadow"] = max(0, n - sum(int(v) for v in sizes.values() if v is not None))
    for name, value in sizes.items():
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"Size of '{name}' must be a non-negative int, got {value!r}.")
        sizes[name] = int(value)
    for name in ("members", "reference"):
        if sizes[name] < 1:
            raise ValueError(f"'{name}' needs at least 1 record (got 0); give it a positive size.")
    total = sum(sizes.values())
    if total > n:
        raise ValueError(
            f"The requested sets need {total} records ({sizes}) but the pool has "
            f"only {n}; reduce the sizes by {total - n} or use a larger pool "
            "(MembershipSplit.default_sizes(n) proposes sizes that fit)."
        )
    return sizes


def _stratified_order(y, rng):
    """A permutation of the pool in which every run is class-stratified.

    Class ``c`` (``n_c`` records, shuffled) gets sort keys
    ``(r + u_c) / n_c`` for ranks ``r = 0..n_c-1`` with a random offset
    ``u_c``: its records are spread evenly through the order.
    """
    keys = np.empty(len(y), dtype=np.float64)
    positions = np.empty(len(y), dtype=np.int64)
    start = 0
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        positions[start : start + idx.size] = idx
        keys[start : start + idx.size] = (np.arange(idx.size) + rng.uniform()) / idx.size
        start += idx.size
    tie_break = rng.permutation(len(y))
    return positions[np.lexsort((tie_break, keys))]


def _check_reference_covers_members(y, members, reference):
    missing = np.setdiff1d(np.unique(y[members]), np.unique(y[reference]))
    if missing.size:
        shown = ", ".join(str(c) for c in missing[:10]) + (" ..." if missing.size > 10 else "")
        raise ValueError(
            f"Class(es) {shown} appear in the members but not in the reference "
            f"set ({reference.size} records). The MMD regularizer needs a "
            "reference record of every member class: enlarge `reference` (at "
            "least the number of classes, more for rare classes) or drop the "
            "rare classes from the pool."
        )


__all__ = ["MembershipSplit", "SET_NAMES", "dataset_fingerprint"]
