"""Readers for the privacytrustlab tabular benchmarks (Location, Purchase100, Texas100).

The archives of https://github.com/privacytrustlab/datasets (Shokri et al.
2017) are gzip tarballs of plain comma-separated text:

* ``dataset_location.tgz``: one member ``bangkok``; each line is
  ``"label",f1,...,f446`` (label quoted, 1..30), 5,010 lines.
* ``dataset_purchase.tgz``: one member ``dataset_purchase``; each line is
  ``label,f1,...,f600`` (label 1..100), 197,324 lines.
* ``dataset_texas.tgz``: members ``texas/100/feats`` (6,169 comma-separated
  binary features per line) and ``texas/100/labels`` (one label 1..100 per
  line), 67,330 lines each, same order.

The readers stream the tarball once, front to back, and return float32
features and 0-based int64 labels.
"""

import tarfile

import numpy as np


def _member_matches(name, wanted):
    name = name.lstrip("./")
    return name == wanted or name.endswith("/" + wanted)


def _read_members(path, wanted):
    """Return ``{wanted_name: bytes}`` reading the tarball sequentially."""
    found = {}
    with tarfile.open(path, mode="r|gz") as tar:  # Stream mode: never seeks.
        for member in tar:
            if not member.isfile():
                continue
            for name in wanted:
                if name not in found and _member_matches(member.name, name):
                    found[name] = tar.extractfile(member).read()
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValueError(
            f"{path} has no member {missing}; expected the privacytrustlab "
            "layout. Check that you downloaded the right archive."
        )
    return found


def _parse_rows(text, source):
    """Parse comma-separated integer rows (quotes stripped) into a 2-D array."""
    rows = []
    width = None
    for number, line in enumerate(text.decode("ascii").splitlines(), start=1):
        line = line.strip().replace('"', "")
        if not line:
            continue
        row = np.fromstring(line, dtype=np.int64, sep=",")
        if width is None:
            width = row.size
        if row.size != width or line.count(",") + 1 != width:
            raise ValueError(
                f"{source}: line {number} has {line.count(',') + 1} fields, "
                f"expected {width}; the file is malformed."
            )
        rows.append(row)
    if not rows:
        raise ValueError(f"{source} is empty.")
    return np.stack(rows)


def _finish(features, labels, num_classes, source):
    labels = labels.astype(np.int64) - 1  # Files store labels 1..K.
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"{source}: labels must lie in 1..{num_classes}, found "
            f"{labels.min() + 1}..{labels.max() + 1}."
        )
    return features.astype(np.float32), labels


def read_label_first_csv(path, member, num_classes):
    """Read a tarball member whose lines are ``label,f1,...,fd``.

    Used for Location (member ``bangkok``) and Purchase100 (member
    ``dataset_purchase``). Labels in the file are 1-based.

    Returns:
      ``(x, y)``: float32 features ``(n, d)`` and int64 labels in
      ``0..num_classes-1``.

    Example:
      >>> x, y = read_label_first_csv("location.tgz", "bangkok", 30)  # doctest: +SKIP
      >>> x.shape  # doctest: +SKIP
      (5010, 446)
    """
    text = _read_members(path, [member])[member]
    table = _parse_rows(text, f"{path}:{member}")
    return _finish(table[:, 1:], table[:, 0], num_classes, f"{path}:{member}")


def read_texas(path, num_classes=100):
    """Read Texas100 from ``texas/100/feats`` and ``texas/100/labels``.

    Returns:
      ``(x, y)``: float32 features ``(n, 6169)`` and int64 labels 0..99.

    Example:
      >>> x, y = read_texas("dataset_texas.tgz")  # doctest: +SKIP
    """
    feats_name, labels_name = "texas/100/feats", "texas/100/labels"
    members = _read_members(path, [feats_name, labels_name])
    features = _parse_rows(members[feats_name], f"{path}:{feats_name}")
    labels = _parse_rows(members[labels_name], f"{path}:{labels_name}")
    if labels.shape[1] != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"{path}: {labels_name} must hold one label per line for each of "
            f"the {features.shape[0]} feature rows, got shape {labels.shape}."
        )
    return _finish(features, labels[:, 0], num_classes, f"{path}:{labels_name}")


def limit_per_class(x, y, limit):
    """Keep the first ``limit`` records of each class, in file order.

    Example:
      >>> limit_per_class(np.zeros((4, 1)), np.array([0, 0, 1, 0]), 1)[1]
      array([0, 1])
    """
    if limit is None:
        return x, y
    keep = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        keep[np.flatnonzero(y == label)[:limit]] = True
    return x[keep], y[keep]
