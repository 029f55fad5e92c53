"""Every ``bench/*.py`` must still run (``--quick``), so benchmarks cannot rot.

Each script runs in its own subprocess (TensorFlow, JAX and TF-Privacy's
legacy-Keras mode each want a fresh interpreter), with the real data folder
and a scratch working copy of its output. The GPU CIFAR-10 script also runs
with ``KERAS_BACKEND=jax`` while every ``tensorflow*`` import is refused,
which proves the path meant for a TensorFlow-free GPU machine.

No timing is asserted here: the numbers live in docs/benchmarks.md.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from _bench_module import load_bench_module

REPO = pathlib.Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))
# Generous: quick modes target well under 2 min alone; CI shares 2 cores.
TIMEOUT_S = 400

# Runs a script with `import tensorflow` (and tensorflow_*, tf_keras) refused.
_NO_TF_RUNNER = r"""
import importlib.abc, runpy, sys

class _RefuseTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = name.split(".")[0]
        if root == "tensorflow" or root.startswith("tensorflow_") or root == "tf_keras":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, _RefuseTensorFlow())
script = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exc:
    if exc.code not in (None, 0):
        raise
blocked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras"))
assert not blocked, f"TensorFlow modules were imported: {blocked[:5]}"
print("NO_TF_OK")
"""


def _env(data_dir, **extra):
    env = dict(os.environ)
    env["KERAS_MI_DATA_DIR"] = str(data_dir)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def _run(argv, env, cwd):
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {proc.returncode}\n"
        f"--- stdout (tail) ---\n{proc.stdout[-4000:]}\n"
        f"--- stderr (tail) ---\n{proc.stderr[-4000:]}"
    )
    return proc


def test_bench_folder_is_not_empty():
    assert "gpu_cifar10.py" in SCRIPTS, f"bench scripts found: {SCRIPTS}"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_quick(script, data_dir, tmp_path):
    argv = [sys.executable, str(BENCH / script), "--quick"]
    if script in ("gpu_cifar10.py", "training_overhead.py", "privacy_utility.py"):
        argv += ["--out", str(tmp_path / "out")]
    if script == "gpu_cifar10.py":
        # The other two defenses run in the TensorFlow-free test below.
        argv += ["--defenses", "mixup,mmd"]
    _run(argv, _env(data_dir), cwd=REPO)
    if script == "gpu_cifar10.py":
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert [d["defense"] for d in report["defenses"]] == report["config"]["defenses"]
        assert (tmp_path / "out" / "report.md").read_text().startswith("#")


@pytest.mark.slow
def test_gpu_cifar10_runs_on_jax_without_tensorflow(data_dir, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-c", _NO_TF_RUNNER, str(BENCH / "gpu_cifar10.py"), "--quick",
            "--defenses", "none,mmd+mixup", "--out", str(out)]
    proc = _run(argv, _env(data_dir, KERAS_BACKEND="jax"), cwd=REPO)
    assert "NO_TF_OK" in proc.stdout, proc.stdout[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["machine"]["keras_backend"] == "jax"
    assert [d["defense"] for d in report["defenses"]] == ["none", "mmd+mixup"]
    for entry in report["defenses"]:
        # Attacks ran on the trained outputs: AUCs are probabilities.
        aucs = [a["auc"] for a in entry["attacks"]]
        assert aucs and all(0.0 <= a <= 1.0 for a in aucs)
        assert entry["fit_seconds"] > 0


@pytest.mark.slow
def test_dpsgd_keras3_runs_on_jax_without_tensorflow(data_dir, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-c", _NO_TF_RUNNER, str(BENCH / "dpsgd_keras3.py"), "--quick",
            "--out", str(out)]
    proc = _run(argv, _env(data_dir, KERAS_BACKEND="jax"), cwd=REPO)
    assert "NO_TF_OK" in proc.stdout, proc.stdout[-2000:]
    report = json.loads((out / "dpsgd_keras3.json").read_text())
    assert report["machine"]["keras_backend"] == "jax"
    assert report["per_example_method"] == "dense"
    assert len(report["dp_epoch_times_s"]) == len(report["plain_epoch_times_s"]) == 3
    assert report["epoch_time_ratio_dp_over_plain"] > 0
    # Poisson batches: expected size 128, padded to a cap above it.
    assert report["padded_batch_size"] > 128 and report["overflow_steps"] == 0


def test_no_tf_runner_really_blocks_tensorflow(tmp_path):
    """The guard itself: a script importing TensorFlow must fail under it."""
    script = tmp_path / "imports_tf.py"
    script.write_text("import tensorflow\n")
    proc = subprocess.run([sys.executable, "-c", _NO_TF_RUNNER, str(script)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "blocked" in proc.stderr


# ---- the GPU script's numpy augmentation, against per-image references ----


def _gpu_module():
    return load_bench_module("gpu_cifar10")


def test_crop_flip_matches_a_per_image_crop():
    import numpy as np

    gpu = _gpu_module()
    rng = np.random.default_rng(3)
    x = rng.integers(1, 256, (64, 5, 5, 3)).astype(np.uint8)
    pad = 2
    index = rng.permutation(64)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = gpu.crop_flip(padded, index, np.random.default_rng(7), 5, pad)
    # Reference: draw the same random numbers, crop each image in a loop.
    ref_rng = np.random.default_rng(7)
    side = 2 * pad + 1
    dy, dx = ref_rng.integers(0, side, 64), ref_rng.integers(0, side, 64)
    flip = ref_rng.random(64) < 0.5
    seen_flip = seen_plain = 0
    for i in range(64):
        crop = padded[index[i], dy[i]:dy[i] + 5, dx[i]:dx[i] + 5]
        if flip[i]:
            crop = crop[:, ::-1]
            seen_flip += 1
        else:
            seen_plain += 1
        np.testing.assert_array_equal(out[i], crop)
    assert seen_flip and seen_plain
    # Every crop lies inside the padded image, and some crops do show padding.
    assert (out == 0).any() and out.dtype == np.uint8


def test_mixup_batches_mixes_within_each_batch_with_one_weight():
    import numpy as np

    gpu = _gpu_module()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(250, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 250)]
    xm, ym = gpu.mixup_batches(x, y, batch_size=100, alpha=1.0, rng=np.random.default_rng(5))
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
    ref = np.random.default_rng(5)
    for lo in range(0, 250, 100):
        hi = min(lo + 100, 250)
        perm = lo + ref.permutation(hi - lo)
        lam = np.float32(ref.beta(1.0, 1.0))
        np.testing.assert_allclose(
            xm[lo:hi], lam * x[lo:hi] + (1 - lam) * x[perm], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            ym[lo:hi], lam * y[lo:hi] + (1 - lam) * y[perm], rtol=1e-5, atol=1e-6
        )
