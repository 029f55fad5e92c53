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
# # keras-mi quickstart: defend a model with MMD + mixup, then attack it
#
# A membership-inference attacker guesses whether a record was in a model's
# training set. This notebook trains the same classifier twice on Location
# (Foursquare check-ins, 30 classes): once plainly, once with the defense of
# Li, Li & Ribeiro (2021), an MMD² set regularizer between the softmax outputs
# of a training batch and a class-matched reference batch, plus mixup. Then it
# attacks both and compares.

# %% Colab install (skipped outside Colab)
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "keras-mi[tf] @ git+https://github.com/keras-mi/keras-mi"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "tensorflow-privacy==0.9.0", "tensorflow-empirical-privacy==0.1.0"])

# %% tags=["parameters"]
# The defaults run the real experiment; CI runs a smoke version with few
# epochs and a small split (papermill-style parameter injection).
members = 1000
epochs = 30
mmd_weight = 1.0
# The paper's sigma 1.0 barely moves the accuracy gap here (docs/benchmarks.md, section 6).
mmd_sigma = 0.1
mixup_alpha = 1.0
batch_size = 128  # a few rows of each of the 30 classes per batch, for the per-class MMD²
seed = 0

# %%
import keras
import numpy as np

import keras_mi

keras.utils.set_random_seed(seed)
x, y = keras_mi.data.load_dataset("location")
info = keras_mi.data.get_info("location")
split = keras_mi.data.MembershipSplit.create(
    x, y, members=members, reference=members, non_members=members, test=members, seed=seed)
x_train, y_train = x[split.members], y[split.members]
x_ref, y_ref = x[split.reference], y[split.reference]
x_out, y_out = x[split.non_members], y[split.non_members]
x_test, y_test = x[split.test], y[split.test]
print(x.shape, info.num_classes, "classes;", len(x_train), "members")

# %% [markdown]
# ## An undefended model

# %%
def compile_model(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def one_hot(labels):
    return keras.utils.to_categorical(labels, info.num_classes)


plain = compile_model(keras_mi.models.build_model("mlp_tanh", info.input_shape,
                                                  info.num_classes, seed=seed))
plain.fit(x_train, one_hot(y_train), epochs=epochs, batch_size=batch_size,
          validation_data=(x_test, one_hot(y_test)), verbose=0)

# %% [markdown]
# ## The same model with the MMD + mixup defense
#
# `MMDModel` wraps any logits model; its `compute_loss` adds
# λ·MMD²(softmax(train batch), softmax(class-matched reference batch)). Mixup
# runs in the `tf.data` pipeline and yields soft labels; reference examples
# are paired on each mixed label's dominant class.

# %%
net = keras_mi.models.build_model("mlp_tanh", info.input_shape, info.num_classes, seed=seed)
defended = compile_model(keras_mi.MMDModel(net, reference=(x_ref, y_ref),
                                           weight=mmd_weight, sigma=mmd_sigma, seed=seed))
train = keras_mi.data.mixup_dataset(x_train, y_train, num_classes=info.num_classes,
                                    alpha=mixup_alpha, batch_size=batch_size, seed=seed)
history = defended.fit(train, epochs=epochs, validation_data=(x_test, one_hot(y_test)),
                       verbose=0)
print("last epoch mmd:", history.history["mmd"][-1])

# %% [markdown]
# ## Attack both

# %%
rows = []
for name, model in [("none", plain), ("mmd+mixup", defended)]:
    report = keras_mi.attacks.run_on_model(model, (x_train, y_train), (x_out, y_out))
    train_acc = float(np.mean(np.argmax(model.predict(x_train, verbose=0), 1) == y_train))
    test_acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test))
    best = report.strongest()
    rows.append((name, train_acc, test_acc, best.name, best.auc, best.advantage))
    print(name, "|", report.summary())

print(f"\n{'defense':<10} {'train':>6} {'test':>6} {'strongest':>22} {'AUC':>6} {'adv':>6}")
for name, tr, te, attack, auc, adv in rows:
    print(f"{name:<10} {tr:6.3f} {te:6.3f} {attack:>22} {auc:6.3f} {adv:6.3f}")
