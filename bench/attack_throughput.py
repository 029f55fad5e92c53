"""Threshold-attack throughput: keras-mi vs TF-Privacy's harness, same logits.

For N members + N non-members of synthetic float32 logits (10 classes,
members' true-class logit boosted), times, interleaved:

* ``tfp``: TF-Privacy's `run_attacks` with THRESHOLD_ATTACK and
  THRESHOLD_ENTROPY_ATTACK (entire-dataset slice), called directly;
* ``ours_pair``: `keras_mi.attacks.run` with the same two rules
  (``loss`` and ``modified_entropy``);
* ``ours_full``: `keras_mi.attacks.run` with every global attack (gap,
  loss, confidence, max_confidence, entropy, modified_entropy).

Prints median seconds, the ratio of medians to ``tfp``, and the largest
|AUC difference| between the matching rows (loss vs threshold, modified
entropy vs threshold-entropy).

Usage:
  python bench/attack_throughput.py            # N = 10k, 100k, 1M; 3 rounds
  python bench/attack_throughput.py --quick    # N = 10k, 100k; 2 rounds
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402


def synthetic_outputs(n: int, num_classes: int = 10, seed: int = 0):
    """``ModelOutputs`` with n members and n non-members (float32 logits)."""
    from keras_mi.outputs import ModelOutputs
    rng = np.random.default_rng(seed)

    def split(boost):
        y = rng.integers(0, num_classes, n)
        z = rng.normal(0.0, 2.0, (n, num_classes)).astype(np.float32)
        z[np.arange(n), y] += np.float32(1.0 + boost) * rng.uniform(0.5, 1.5, n).astype(np.float32)
        return z, y

    return ModelOutputs.from_arrays(members=split(1.5), non_members=split(0.0))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 10k, 100k; 2 rounds")
    p.add_argument("--sizes", type=int, nargs="*", default=None, help="override N values")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", default=None, help="write results.json into this folder")
    args = p.parse_args(argv)

    from keras_mi import attacks
    from keras_mi._compat import import_mia
    mia = import_mia("membership_inference_attack")
    ds = import_mia("data_structures")

    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    repeats = args.repeats or (2 if args.quick else 3)
    tfp_types = (ds.AttackType.THRESHOLD_ATTACK, ds.AttackType.THRESHOLD_ENTROPY_ATTACK)
    rows, results = [], {"machine": _common.machine_info(), "sizes": {}}
    for n in sizes:
        _common.stamp(f"N = {n:,} members + {n:,} non-members")
        out = synthetic_outputs(n)
        (lm, ym), (ln, yn) = out.get("members"), out.get("non_members")
        box = {}

        def tfp():
            data = ds.AttackInputData(logits_train=lm, logits_test=ln,
                                      labels_train=ym, labels_test=yn)
            with np.errstate(all="ignore"):
                box["tfp"] = mia.run_attacks(data, ds.SlicingSpec(entire_dataset=True),
                                             attack_types=tfp_types)

        def ours_pair():
            box["pair"] = attacks.run(out, ["loss", "modified_entropy"], check_reference=False)

        def ours_full():
            box["full"] = attacks.run(out, check_reference=False)

        times = _common.interleaved({"tfp": tfp, "ours_pair": ours_pair, "ours_full": ours_full},
                                    repeats=repeats, log=print)
        summary = _common.summarize(times, baseline="tfp")
        tfp_auc = {r.attack_type.name: float(r.get_auc())
                   for r in box["tfp"].single_attack_results}
        tfp_adv = {r.attack_type.name: float(r.get_attacker_advantage())
                   for r in box["tfp"].single_attack_results}
        pairs = {"loss": "THRESHOLD_ATTACK", "modified_entropy": "THRESHOLD_ENTROPY_ATTACK"}
        d_auc = max(abs(box["pair"].get(k).auc - tfp_auc[v]) for k, v in pairs.items())
        d_adv = max(abs(box["pair"].get(k).advantage - tfp_adv[v]) for k, v in pairs.items())
        results["sizes"][str(n)] = {"timing": summary, "max_abs_delta_auc": d_auc,
                                    "max_abs_delta_advantage": d_adv, "tfp_auc": tfp_auc,
                                    "ours_auc": {k: box["pair"].get(k).auc for k in pairs}}
        for name in ("tfp", "ours_pair", "ours_full"):
            s = summary[name]
            rows.append([f"{n:,}", name, s["median_s"], f"{1.0 / s['ratio']:.1f}x",
                         f"{d_auc:.2e}" if name == "ours_pair" else ""])
    print()
    print(_common.markdown_table(
        ["N per side", "config", "median s", "speed-up vs tfp", "max |dAUC| vs tfp"], rows))
    if args.out:
        _common.write_json_atomic(pathlib.Path(args.out) / "results.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
