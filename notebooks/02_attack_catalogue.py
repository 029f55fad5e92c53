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
# # The attack catalogue on one model
#
# One undefended Location classifier, attacked by every attack keras-mi has:
# the gap (correctness) attack, threshold attacks on loss, confidence, max
# confidence, entropy and modified entropy (global and class-dependent
# thresholds), the shadow-model attacks of Shokri et al. and Salem et al.,
# LiRA (Carlini et al. 2022), and TF-Privacy's harness as a baseline. ROC
# curves are drawn on log-log axes: what matters is the TPR at low FPR.
#
# The last part switches to the **bank protocol** that defense papers are
# judged by today: a bank of models of one recipe on random halves of a
# pool, each the target in turn, attacked by LiRA and RMIA (Zarifzadeh et
# al. 2024) with the others, and every (model, record) pair pooled, so TPR
# at 0.1 % FPR rests on many false positives instead of one.

# %% Colab install (skipped outside Colab)
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "keras-mi[tf] @ git+https://github.com/keras-mi/keras-mi"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "tensorflow-privacy==0.9.0", "tensorflow-empirical-privacy==0.1.0"])

# %% tags=["parameters"]
members = 1000
epochs = 30
num_shadow_models = 2     # disjoint shadow models for the shadow/class-threshold attacks
num_lira_shadows = 16     # LiRA shadows, each trained on a random half of the pool
bank_size = 16            # models in the bank protocol (even, >= 4)
seed = 0

# %%
import pathlib
import tempfile

import keras

import keras_mi
from keras_mi import attacks

keras.utils.set_random_seed(seed)
x, y = keras_mi.data.load_dataset("location")
info = keras_mi.data.get_info("location")
split = keras_mi.data.MembershipSplit.create(
    x, y, members=members, reference=500, non_members=members, test=500, seed=seed)
member_xy = (x[split.members], y[split.members])
non_member_xy = (x[split.non_members], y[split.non_members])
shadow_xy = (x[split.shadow], y[split.shadow])


def make_model():
    model = keras_mi.models.build_model("mlp_tanh", info.input_shape, info.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


fit_kwargs = {"epochs": epochs, "batch_size": 64, "verbose": 0}
train_fn = attacks.make_train_fn(make_model, fit_kwargs)
target = train_fn(*member_xy, seed=seed)
outputs = keras_mi.ModelOutputs.from_model(target, members=member_xy, non_members=non_member_xy)

# %% [markdown]
# ## Shadow models (same recipe, disjoint shadow-pool data)

# %%
shadow_outputs = attacks.train_disjoint_shadows(
    *shadow_xy,
    train_fn,
    num_shadows=num_shadow_models,
    train_size=min(members, len(split.shadow) // (2 * num_shadow_models)),
    seed=seed,
    verbose=0,
)
report = attacks.run(outputs, shadow_outputs=shadow_outputs, baseline=True, keep_scores=True)

# %% [markdown]
# ## LiRA: shadows on random halves of the target's pool (resumable folder)

# %%
lira_dir = pathlib.Path(tempfile.mkdtemp(prefix="keras-mi-lira-"))
lira = attacks.run_lira(outputs, attacks.lira_pool(member_xy, non_member_xy), train_fn,
                        num_lira_shadows, lira_dir, seed=seed, verbose=0)
report.results.extend(lira.results)
print(report.summary())

# %%
print(f"{'attack':<28} {'AUC':>6} {'best acc':>8} {'adv':>6} {'TPR@1%':>7} {'TPR@0.1%':>8}")
for r in report.results:
    if r.is_membership:
        print(
            f"{r.name:<28} {r.auc:6.3f} {r.best_accuracy:8.3f} {r.advantage:6.3f} "
            f"{r.tpr_at_fpr.get(0.01, float('nan')):7.3f} "
            f"{r.tpr_at_fpr.get(0.001, float('nan')):8.3f}"
        )

# %%
attacks.plot_roc(report)

# %%
attacks.plot_score_histograms(report)

# %% [markdown]
# ## The bank protocol: every model the target in turn, LiRA and RMIA pooled
#
# `bank_size` models of the same recipe, each on a random half of members +
# non-members; the test split (which no model trains on) is RMIA's
# population. Each model is attacked with the other `bank_size - 1` and the
# pairs are pooled. A TPR at an FPR the non-member pairs cannot resolve
# (fewer than 10 false positives) reads `n/a`; the others carry a 95 %
# Clopper-Pearson interval.

# %%
bank_dir = pathlib.Path(tempfile.mkdtemp(prefix="keras-mi-bank-"))
pool = attacks.lira_pool(member_xy, non_member_xy)
attacks.train_bank(train_fn, pool, bank_dir, num_models=bank_size,
                   population=(x[split.test], y[split.test]), recipe="mlp_tanh adam", seed=seed,
                   verbose=0)
bank = attacks.load_bank(bank_dir, num_models=bank_size)
bank_report = attacks.attack_bank(bank)
print(f"{bank_report.metadata['pairs']} (model, record) pairs, "
      f"{bank_report.metadata['pairs'] // 2} of them non-member pairs")
print(f"{'attack':<24} {'AUC':>6} {'TPR@1% [95% CI]':>26} {'TPR@0.1% [95% CI]':>34} {'zero-FP':>8}")
for r in bank_report.results:
    print(f"{r.name:<24} {r.auc:6.3f} {attacks.format_low_fpr(r.low_fpr[0.01]):>26} "
          f"{attacks.format_low_fpr(r.low_fpr[0.001]):>34} {r.members_above_all:>8}")

# %%
attacks.plot_roc(bank_report)
