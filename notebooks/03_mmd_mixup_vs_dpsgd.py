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
# # MMD + mixup vs TF-Privacy's DP-SGD: the privacy/utility trade-off
#
# The main job (`keras-mi evaluate`) trains one target per defense on the
# same membership split and attacks each: no defense, mixup, MMD + mixup
# (Li, Li & Ribeiro 2021) and DP-SGD (TF-Privacy, in its own process) at two
# privacy budgets ε. Each point of the last plot is one defense: test accuracy
# against the strongest attack's advantage.

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
epsilons = [1.0, 8.0]
out_dir = "runs/notebook-mmd-vs-dpsgd"
seed = 0

# %%
import pathlib

from keras_mi import experiment

config = experiment.get_preset("location").with_overrides({
    "split.members": members, "split.non_members": members, "split.reference": members,
    "split.test": members, "split.shadow": 0, "training.epochs": epochs, "seed": seed,
    "defenses": ["none", "mixup", "mmd+mixup"] + [f"dpsgd:{eps:g}" for eps in epsilons],
    "attacks": ["gap", "loss", "confidence", "entropy", "modified_entropy"],
})
report = experiment.run_experiment(config, out_dir, verbose=0)

# %%
print(pathlib.Path(out_dir, "report.md").read_text())

# %%
from IPython.display import Image

Image(filename=str(pathlib.Path(out_dir, "privacy_utility.png")))

# %%
Image(filename=str(pathlib.Path(out_dir, "roc.png")))
