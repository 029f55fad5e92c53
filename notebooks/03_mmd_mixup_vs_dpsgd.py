# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The privacy/utility frontier: MMD + mixup, DP-SGD and the field's other defenses
#
# Every defense of the registry (`keras_mi.defenses.defense_names()`: none,
# mixup, MMD, MMD + mixup (Li, Li & Ribeiro 2021), DP-SGD at a few privacy
# budgets ε (from `dp_accounting`, TF-Privacy's accountant), label smoothing,
# the confidence penalty, early stopping, RelaxLoss, AdvReg and HAMP) on the
# `location` preset, drawn as test accuracy against the TPR of the strongest
# attack at 0.1 % FPR on a log axis.
#
# Two sources of numbers, kept apart:
#
# 1. **This notebook's own run** (`keras-mi evaluate`'s runner): one target
#    model per defense on one membership split, attacked by the threshold
#    attacks. Minutes on a laptop, but one model and (at the default
#    `members = 1000`) 1,000 non-members: TPR at 0.1 % FPR is the TPR at the
#    threshold that lets through at most **one** false positive, so it is
#    noisy and can be 0 by chance.
# 2. **The committed bank results** (`docs/results/frontier_location/results.json`,
#    made by `bench/frontier_location.py`): per defense a bank of 16 models on
#    random halves of a pool, attacked adaptively (LiRA and RMIA with the
#    bank's other models, the loss threshold), every (model, record) pair
#    pooled: TPR at 0.1 % FPR rests on 16,000 non-member pairs. This is the
#    frontier to read; it takes hours on two CPU cores, so the notebook reads
#    it instead of rerunning it.

# %% Colab install (skipped outside Colab)
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "keras-mi[tf] @ git+https://github.com/keras-mi/keras-mi"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "tensorflow-privacy==0.9.0", "tensorflow-empirical-privacy==0.1.0",
                           "tf-keras==2.21.0"])

# %% tags=["parameters"]
members = 1000
epochs = 30
epsilons = [1.0, 8.0]     # DP-SGD budgets (each one a "dpsgd:<epsilon>" model)
defenses = None           # None: every defense of the registry; or a list of names
out_dir = "runs/notebook-mmd-vs-dpsgd"
bank_results = None       # None: docs/results/frontier_location/results.json of the repo
seed = 0

# %% [markdown]
# ## 1. This notebook's run: one model per defense
#
# The preset's recipe for each defense (its registry settings; DP-SGD the
# tuned softmax regression with the full training set as its batch), the
# same split for all, and the threshold attacks on one target each.

# %%
import pathlib

from keras_mi import experiment
from keras_mi.defenses import defense_names

names = list(defense_names() if defenses is None else defenses)
run_defenses = ([d for d in names if d != "dpsgd"]
                + ([f"dpsgd:{eps:g}" for eps in epsilons] if "dpsgd" in names else []))
config = experiment.get_preset("location").with_overrides({
    "split.members": members, "split.non_members": members, "split.reference": members,
    "split.test": members, "split.shadow": 0, "training.epochs": epochs, "seed": seed,
    "defenses": run_defenses,
    "attacks": ["gap", "loss", "confidence", "entropy", "modified_entropy"],
})
report = experiment.run_experiment(config, out_dir, verbose=0)

# %%
print(pathlib.Path(out_dir, "report.md").read_text())

# %%
from IPython.display import Image

Image(filename=str(pathlib.Path(out_dir, "roc.png")))

# %% [markdown]
# The strongest attack of each model at 0.1 % FPR (the attack with the
# highest TPR there, so this is an optimistic pick for the attacker):

# %%
single = {}
for name, row in report["defenses"].items():
    best = max(row["attacks"].items(),
               key=lambda kv: (kv[1]["tpr_at_fpr"]["0.001"] or 0.0, kv[1]["auc"]))
    single[name] = {"attack": best[0], "tpr": best[1]["tpr_at_fpr"]["0.001"] or 0.0,
                    "accuracy": row["test_accuracy"], "n_members": best[1]["n_members"],
                    "n_non_members": best[1]["n_non_members"]}
n_neg = next(iter(single.values()))["n_non_members"]
print(f"{n_neg} non-members: TPR@0.1 % FPR allows {int(0.001 * n_neg)} false positive(s)\n")
print(f"{'defense':20s} {'test acc':>8s} {'TPR@0.1%':>9s}  attack")
for name, s in single.items():
    print(f"{name:20s} {s['accuracy']:8.3f} {s['tpr']:9.4f}  {s['attack']}")

# %% [markdown]
# ## 2. The committed bank results
#
# Read by label, so rows added later (tuned variants, more seeds) show up
# without a change here. A label belongs to the registry defense it starts
# with (`dpsgd tuned ε=4` to `dpsgd`, `mmd+mixup (σ=0.1)` to `mmd+mixup`);
# seeds of one label are averaged, and the error bars span the seeds' 95 %
# intervals. To regenerate (hours on two CPU cores; the exact `--spec`s of
# every row are in `docs/benchmarks.md` §9):
#
# ```bash
# python bench/frontier_location.py --out runs/bench/frontier --seeds 0 1 --bank 16 \
#     --reuse docs/results/bank_location/results.json --spec LABEL=DEFENSE[,KEY=VALUE...]
# ```
#
# and point `bank_results` at the `results.json` it writes.

# %%
import json

import keras_mi

RESULTS = pathlib.Path("docs", "results", "frontier_location", "results.json")
candidates = ([pathlib.Path(bank_results)] if bank_results else
              [pathlib.Path(keras_mi.__file__).resolve().parents[1] / RESULTS,
               pathlib.Path.cwd().parent / RESULTS, pathlib.Path.cwd() / RESULTS])
found = next((p for p in candidates if p.is_file()), None)
if found is None and "google.colab" in sys.modules and not bank_results:
    import urllib.request

    found = pathlib.Path("frontier_location_results.json")
    urllib.request.urlretrieve("https://raw.githubusercontent.com/keras-mi/keras-mi/main/"
                               + RESULTS.as_posix(), found)
rows = json.loads(found.read_text())["rows"] if found else []
print(f"bank results: {found or 'not found (the figure shows this run only)'}")


def family(label):
    """The registry defense a bank label belongs to (longest matching name)."""
    matches = [n for n in defense_names()
               if label == n or label.startswith((n + " ", n + ":"))]
    return max(matches, key=len) if matches else label


bank = {}
for r in rows:
    point = r["low_fpr"].get("0.001")
    if point and point["resolved"]:
        bank.setdefault(r["label"], []).append(
            (r["test_accuracy"], point["tpr"], point["ci"], r["seed"], point["n_negatives"]))
print(f"\n{'label':28s} {'seeds':6s} {'test acc':>8s} {'TPR@0.1%':>9s}")
for label, got in sorted(bank.items()):
    seeds = ",".join(str(g[3]) for g in got)
    print(f"{label:28s} {seeds:6s} {sum(g[0] for g in got) / len(got):8.3f} "
          f"{sum(g[1] for g in got) / len(got):9.4f}")
missing = sorted(set(defense_names()) - {family(label) for label in bank})
print("\nregistry defenses with no bank row: " + ", ".join(missing) if missing
      else "\nevery registry defense has a bank row")

# %% [markdown]
# ## 3. The frontier
#
# Left: the bank protocol (the numbers to read). Right: this run's single
# models. Lower is more private, further right more useful; the dashed step
# is the frontier (the points no other point beats on both axes), and the
# dotted lines go through the undefended model. A TPR of 0 cannot sit on a
# log axis: it is drawn at one member (1 / members) with a downward triangle.

# %%
import matplotlib.pyplot as plt

colors = {n: plt.get_cmap("tab20")(i / 20) for i, n in
          enumerate(sorted(set(defense_names()) | {family(lb) for lb in bank}))}


def frontier(points):
    """The Pareto front of (accuracy, TPR): no other point more accurate and lower."""
    front, best = [], float("inf")
    for acc, tpr in sorted(points, key=lambda p: (-p[0], p[1])):
        if tpr < best:
            front.append((acc, tpr))
            best = tpr
    return sorted(front)


def place_labels(ax, texts):
    """Puts each (label, x, y) beside its marker where it overlaps no earlier label."""
    ax.figure.canvas.draw()
    pt = ax.figure.dpi / 72  # display pixels per point
    taken = [(px - 5 * pt, py - 5 * pt, px + 5 * pt, py + 5 * pt)
             for px, py in ax.transData.transform([(x, y) for _, x, y in texts])]
    offsets = [(6, 3), (6, -11), (-6, 3), (-6, -11), (6, 13), (6, -21), (-6, 13), (-6, -21)]
    for label, x, y in sorted(texts, key=lambda t: -t[2]):
        px, py = ax.transData.transform((x, y))
        width = 4.4 * len(label) * pt  # 7-point text is about 4.4 points a character
        for dx, dy in offsets:
            x0 = px + dx * pt if dx > 0 else px + dx * pt - width
            box = (x0, py + dy * pt, x0 + width, py + (dy + 9) * pt)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                       for b in taken):
                break
        taken.append(box)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                    ha="left" if dx > 0 else "right")


def draw(ax, points, title):
    """points: label -> (accuracy, tpr, (lo, hi) or None, floor or None)."""
    texts = []
    for label, (acc, tpr, ci, floor) in points.items():
        undefended = family(label) == "none"
        y = floor if floor is not None else tpr
        yerr = None if ci is None else [[max(y - ci[0], 0)], [max(ci[1] - y, 0)]]
        ax.errorbar([acc], [y], yerr=yerr, capsize=3, color=colors[family(label)],
                    marker="*" if undefended else ("v" if floor is not None else "o"),
                    markersize=14 if undefended else 7, markeredgecolor="black")
        texts.append((f"{label} (undefended)" if undefended else label, acc, y))
        if undefended:
            ax.axhline(y, color="grey", linestyle=":", linewidth=1)
            ax.axvline(acc, color="grey", linestyle=":", linewidth=1)
    front = frontier([(a, (f if f is not None else t)) for a, t, _, f in points.values()])
    if len(front) > 1:
        ax.step(*zip(*front), where="pre", color="black", linestyle="--", linewidth=1,
                alpha=0.6, label="frontier")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yscale("log")
    ax.margins(x=0.15, y=0.1)  # room for the labels beside the outermost markers
    ax.set_xlabel("test accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    return texts


bank_points = {}
for label, got in bank.items():
    accs, tprs = [g[0] for g in got], [g[1] for g in got]
    bank_points[label] = (sum(accs) / len(accs), sum(tprs) / len(tprs),
                          (min(g[2][0] for g in got), max(g[2][1] for g in got)), None)
own_points = {name: (s["accuracy"], s["tpr"], None,
                     1.0 / s["n_members"] if s["tpr"] == 0 else None)
              for name, s in single.items()}

fig, axes = plt.subplots(1, 2 if bank_points else 1, figsize=(13 if bank_points else 7, 5.5),
                         sharey=True, squeeze=False)
drawn = []
if bank_points:
    drawn.append(draw(axes[0, 0], bank_points,
         f"Bank protocol ({RESULTS.as_posix()}): strongest adaptive attack,\n"
         f"{min(g[4] for got in bank.values() for g in got)}+ non-member pairs per defense, "
         "mean over seeds, bars: the seeds' 95 % CIs"))
drawn.append(draw(axes[0, -1], own_points,
     f"This run: one model per defense, {members} members, {epochs} epochs\n"
     f"(strongest threshold attack; {n_neg} non-members: at most "
     f"{int(0.001 * n_neg)} false positive(s) at 0.1 % FPR)"))
axes[0, 0].set_ylabel("TPR at 0.1 % FPR (log)")
fig.suptitle("Location: privacy/utility frontier", fontsize=11)
fig.tight_layout()
for ax, texts in zip(axes[0], drawn):
    place_labels(ax, texts)
plt.show()
