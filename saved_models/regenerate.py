"""Regenerates the demo models in saved_models/ and their cards from configs/.

For each ``configs/<dataset>.json`` (an ``ExperimentConfig``), runs the
experiment (resumably, in ``--work``), then copies each defense's logits
model to ``<dataset>_<defense>.keras`` with its split and a JSON card
(:class:`keras_mi.saved_models.ModelCard`).

Usage:
  KERAS_MI_DATA_DIR=../shared/data .venv/bin/python saved_models/regenerate.py
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import tempfile

import keras

import keras_mi
from keras_mi import saved_models
from keras_mi.experiment import ExperimentConfig, run_experiment
from keras_mi.experiment.store import safe_tag

HERE = pathlib.Path(__file__).resolve().parent


def regenerate(config_path: pathlib.Path, work: pathlib.Path, data_dir, verbose: int) -> None:
    config = ExperimentConfig.load(config_path)
    if data_dir:
        config = config.with_overrides({"data_dir": str(data_dir)})
    out = work / config_path.stem
    report = run_experiment(config, out, verbose=verbose)
    for defense, row in report["defenses"].items():
        name = f"{config_path.stem}_{defense.replace('+', '_')}"
        model_file = HERE / f"{name}.keras"
        trained = keras.saving.load_model(out / "models" / f"{safe_tag(defense)}.keras")
        # An uncompiled clone: weights and architecture only (no optimizer
        # state), so each file stays a few MB.
        model = type(trained).from_config(trained.get_config())
        model.set_weights(trained.get_weights())
        model.save(model_file)
        shutil.copyfile(out / "split.json", HERE / f"{name}.split.json")
        best = row["strongest_attack"]
        card = saved_models.ModelCard(
            name=name, dataset=config.dataset, defense=defense,
            split_fingerprint=report["split_fingerprint"],
            config=json.loads((HERE / "configs" / config_path.name).read_text()),
            train_accuracy=row["train_accuracy"], test_accuracy=row["test_accuracy"],
            strongest_attack=best["name"], strongest_auc=best["auc"],
            package_version=keras_mi.__version__, keras_version=keras.__version__,
            model_sha256=saved_models.sha256_of(model_file))
        (HERE / f"{name}.json").write_text(json.dumps(card.to_dict(), indent=2) + "\n")
        print(f"{name}: train {card.train_accuracy:.3f} test {card.test_accuracy:.3f} "
              f"strongest {card.strongest_attack} AUC {card.strongest_auc:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=None, help="experiment folder (default: a temp dir)")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset files")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="keras-mi-saved-"))
    for config_path in sorted((HERE / "configs").glob("*.json")):
        regenerate(config_path, work, args.data_dir, verbose=0 if args.quiet else 1)


if __name__ == "__main__":
    main()
