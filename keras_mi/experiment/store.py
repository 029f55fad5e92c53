"""The output folder of one experiment: layout, atomic writes, identity.

Layout of ``out_dir``::

    config.json        the config (with data locations), written first
    config.sha256      ExperimentConfig.fingerprint(): the folder's identity
    split.json         the MembershipSplit (indices into the pool)
    models/<tag>.keras the trained Keras model of each defense / shadow
    outputs/<tag>.npz  its ModelOutputs (logits + labels per split)
    meta/<tag>.json    facts about its training (ε, ...); written last, so a
                       present meta file means the model is complete
    attacks/<tag>.json the AttackReport of each target (with ROC curves)
    shadows/...        shadow models' outputs (attacks that need them)
    banks/<tag>/       the bank protocol's models of each defense (one npz each)
    report.json        every number, deterministic (no wall times)
    timings.json       wall times (kept apart so report.json is reproducible)
    report.md, roc.png, privacy_utility.png

Every file is written to a temporary name in the same folder and renamed
(``os.replace``), so an interruption leaves either the old file or the new
one, never half a file. A file that still cannot be read back was damaged
afterwards: :func:`reuse` names it, deletes it and lets its step run again;
one that reads but disagrees with the config is refused (:func:`mismatch`).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Any, Callable, Dict, Optional

from keras_mi._atomic import atomic_write, atomic_write_text  # noqa: F401  (re-exported)

#: Names this package creates inside an output folder (and only these are
#: removed by ``overwrite=True``).
OWNED = ("config.json", "config.sha256", "split.json", "models", "outputs", "meta", "attacks",
         "shadows", "banks", "report.json", "timings.json", "report.md", "roc.png",
         "privacy_utility.png")


class ConfigMismatchError(RuntimeError):
    """The output folder holds a run of a different config."""


def reuse(path, load: Callable[[pathlib.Path], Any]) -> Optional[Any]:
    """``load(path)`` of a finished step's file, or None when it must be recomputed.

    Every step's file is written atomically, so one that cannot be read back
    (truncated, overwritten by hand, not ours) was damaged after the fact.
    Each step is seeded from the run seed and its own tag only, so computing
    it again gives what the file held: the damaged file is named on stderr,
    deleted and None returned, which makes the step run again. A file that
    *reads* but disagrees with the config is not handled here: the caller
    refuses it (see :func:`mismatch`), since its content may be someone's work.
    """
    path = pathlib.Path(path)
    if not path.exists():
        return None
    try:
        return load(path)
    except Exception as err:  # any failure = damage
        print(f"keras-mi: {path} is damaged ({type(err).__name__}: {_short(err)}); deleting it "
              "and computing it again.", file=sys.stderr)
        path.unlink()
        return None


def mismatch(path, problem: str, delete: str) -> ValueError:
    """The error for a readable step file that does not match the run's config."""
    return ValueError(f"{path} does not match this run's config: {problem}. It was changed "
                      f"after it was written; delete {delete} and run the same command again "
                      "to recompute it.")


def _short(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + "..."


def write_text(path, text: str) -> None:
    """Atomic text write."""
    atomic_write_text(path, text)


def write_json(path, data: Any, sort_keys: bool = True) -> None:
    """Atomic JSON write (indented, trailing newline)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path) -> Any:
    """Parses a JSON file; a damaged one raises ValueError naming it."""
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not readable JSON ({_short(err)}).") from err


def safe_tag(name: str) -> str:
    """A file-name-safe tag for a defense name (``dpsgd:8`` -> ``dpsgd_eps8``).

    Example:
      >>> safe_tag("mmd+mixup"), safe_tag("dpsgd:8")
      ('mmd+mixup', 'dpsgd_eps8')
    """
    kind, _, arg = name.partition(":")
    tag = f"{kind}_eps{arg}" if arg else kind
    return "".join(c if c.isalnum() or c in "+-_." else "_" for c in tag)


def check_writable(out_dir, create: bool = True) -> pathlib.Path:
    """Creates ``out_dir`` if needed; raises if it is a file or not writable.

    With ``create=False`` a missing folder is not made: its nearest existing
    parent must be a folder this process may write to (the check before a
    run is known to be valid, which must leave no trace).
    """
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"Output folder {out} is a file; pass --out a folder path.")
    if not create and not out.exists():
        parent = out.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            reason = "is a file" if not parent.is_dir() else "is not writable"
            raise PermissionError(f"Output folder {out} is not writable ({parent} {reason}); "
                                  "choose another --out.")
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".keras-mi-probe.")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise PermissionError(f"Output folder {out} is not writable ({err.strerror}); "
                              "choose another --out.") from err
    return out


def claim(out_dir, config, overwrite: bool = False) -> pathlib.Path:
    """Makes ``out_dir`` the home of ``config``'s run.

    A folder without ``config.sha256`` is claimed (our files only). A folder
    holding the same config's run is resumed. A different config raises
    :class:`ConfigMismatchError` unless ``overwrite``, which deletes this
    package's files (see :data:`OWNED`) and nothing else.
    """
    out = check_writable(out_dir)
    stamp = out / "config.sha256"
    fingerprint = config.fingerprint()
    if stamp.exists():
        try:
            old = stamp.read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            old = "(unreadable)"  # damaged: not provably this config's folder
        if old != fingerprint:
            if not overwrite:
                raise ConfigMismatchError(
                    f"{out} holds a run of a different config (sha256 {old[:12]}..., this one "
                    f"{fingerprint[:12]}...). Use another --out, or --overwrite to delete that "
                    f"run's files.")
            clear(out)
    write_text(out / "config.json", config.to_json() + "\n")
    write_text(stamp, fingerprint + "\n")
    for sub in ("models", "outputs", "meta", "attacks"):
        (out / sub).mkdir(exist_ok=True)
        remove_stale_temporaries(out / sub)
    return out


def remove_stale_temporaries(folder: pathlib.Path) -> None:
    """Deletes half-written files a killed run left (``.<name>.*.tmp*``)."""
    for path in folder.glob(".*.tmp*"):
        if path.is_file():
            path.unlink()


def clear(out: pathlib.Path) -> None:
    """Removes this package's files from ``out`` (nothing else)."""
    for name in OWNED:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def load_timings(out: pathlib.Path) -> Dict[str, float]:
    """The wall times so far; a damaged ``timings.json`` is started afresh."""

    def load(path):
        data = read_json(path)
        if not isinstance(data, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()):
            raise ValueError("not a mapping of step names to seconds")
        return data

    return reuse(out / "timings.json", load) or {}


def save_timing(out: pathlib.Path, key: str, seconds: float,
                timings: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    timings = load_timings(out) if timings is None else timings
    timings[key] = round(float(seconds), 3)
    write_json(out / "timings.json", timings)
    return timings
