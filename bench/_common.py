"""Helpers shared by the bench scripts: interleaved timing, medians, reports.

Benchmarks on a shared 2-core machine drift (other processes, thermal and
cache state), so configurations are timed *interleaved*: one repetition runs
every configuration once, in an order rotated per repetition, and the
reported number is the median over repetitions. Ratios are taken against a
named baseline measured in the same rounds.

Not a benchmark itself: run as a script (``make bench-quick`` runs every
``bench/*.py --quick``) it only prints the machine description.

Example:
  >>> times = interleaved({"a": lambda: None, "b": lambda: None}, repeats=3)
  >>> sorted(times) == ["a", "b"] and len(times["a"]) == 3
  True
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def default_data_dir() -> Optional[pathlib.Path]:
    """``KERAS_MI_DATA_DIR``, else ``../shared/data`` next to the repo, else None."""
    env = os.environ.get("KERAS_MI_DATA_DIR")
    candidates = [pathlib.Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


def interleaved(fns: Mapping[str, Callable[[], object]], repeats: int,
                warmup: int = 0, log: Optional[Callable[[str], None]] = None
                ) -> Dict[str, List[float]]:
    """Times each callable ``repeats`` times, round-robin with a rotated order.

    Args:
      fns: name -> zero-argument callable (one unit of work, e.g. one epoch).
      repeats: number of timed rounds (each round calls every callable once).
      warmup: untimed rounds first (compilation, caches).
      log: optional `print`-like function for one progress line per call.

    Returns:
      name -> list of wall-clock seconds, one per timed round.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    names = list(fns)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            elapsed = time.perf_counter() - start
            if r >= warmup:
                times[name].append(elapsed)
            if log is not None:
                tag = "warmup" if r < warmup else f"round {r - warmup + 1}/{repeats}"
                log(f"  [{tag}] {name}: {elapsed:.3f} s")
    return times


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    if not values:
        raise ValueError("median of an empty sequence")
    return float(statistics.median(values))


def summarize(times: Mapping[str, Sequence[float]], baseline: str) -> Dict[str, dict]:
    """Per name: median, min, max seconds, and the ratio of medians to ``baseline``."""
    if baseline not in times:
        raise ValueError(f"baseline '{baseline}' not among {list(times)}.")
    base = median(times[baseline])
    return {name: {"median_s": median(v), "min_s": float(min(v)), "max_s": float(max(v)),
                   "runs": len(v), "ratio": median(v) / base}
            for name, v in times.items()}


def machine_info() -> dict:
    """Date, CPU (``lscpu | head``), Python and library versions."""
    info = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info["lscpu"] = "\n".join(out.splitlines()[:10])
    except (OSError, subprocess.SubprocessError):
        info["lscpu"] = "unavailable"
    for mod in ("numpy", "keras", "jax", "tensorflow"):
        if mod in sys.modules:
            info[mod] = getattr(sys.modules[mod], "__version__", "?")
    if "keras" in sys.modules:
        info["keras_backend"] = sys.modules["keras"].backend.backend()
    if "jax" in sys.modules:
        try:
            info["jax_devices"] = [str(d) for d in sys.modules["jax"].devices()]
        except RuntimeError:  # no usable backend
            info["jax_devices"] = []
    return info


def write_text_atomic(path, text: str) -> None:
    """Writes ``text`` via a temp file + rename, so readers never see half a file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path, obj) -> None:
    """JSON version of `write_text_atomic` (sorted keys, indented)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value)}")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats get 3 decimals."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def stamp(msg: str) -> None:
    """Prints ``msg`` with a UTC time stamp, flushed (progress of long runs)."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
    print(f"[{now}] {msg}", flush=True)


if __name__ == "__main__":
    # `make bench-quick` runs every bench/*.py; this one just describes the machine.
    print(json.dumps(machine_info(), indent=2))
