"""The ``keras-mi`` command line (the only module that reads ``sys.argv``).

``keras-mi evaluate`` trains one target per defense, attacks each and writes
a privacy/utility report; see ``keras-mi evaluate --help``::

    keras-mi evaluate --out runs/demo                      # fast Location default
    keras-mi evaluate --preset paper-cifar10 --out runs/c10
    keras-mi evaluate --config my.yaml --defenses none mmd+mixup --set training.epochs=5

``keras-mi shadow --shadow-index I ...`` trains LiRA shadow ``I`` of a run (one
cluster task each); the next ``evaluate`` with the same arguments aggregates.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    from keras_mi.defenses import defense_entries
    from keras_mi.experiment.presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="keras-mi", description="Membership-inference attacks and defenses for Keras 3.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ev = sub.add_parser(
        "evaluate", help="train a target per defense, attack each, write a privacy/utility report",
        description="Train one target model per defense, run the membership-inference attacks "
                    "on each and write report.json, report.md, roc.png and privacy_utility.png "
                    "to --out. Re-running the same command resumes an interrupted run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="presets:\n" + "\n".join(f"  {k:<18} {v[1]}" for k, v in PRESETS.items()))
    defenses = [name for e in defense_entries()
                for name in ([e.name, e.argument_help] if e.argument_help else [e.name])]
    _add_config_arguments(ev, PRESETS, defenses)
    sh = sub.add_parser(
        "shadow", help="train some of a run's bank models / LiRA shadows (one cluster task each)",
        description="Train only the models given by --shadow-index for the run that the same "
                    "config and --out describe (e.g. one SLURM array task or Kubernetes "
                    "indexed-job pod each, on a shared --out): model I of every defense's bank "
                    "(--bank N) and LiRA shadow I (when the attacks include lira). Afterwards, "
                    "`keras-mi evaluate` with the same arguments finds them done and only "
                    "aggregates.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example (SLURM):\n  #SBATCH --array=0-15\n  keras-mi shadow --attacks loss lira "
               "--num-shadows 16 --out /shared/run --shadow-index $SLURM_ARRAY_TASK_ID\n"
               "  keras-mi evaluate --attacks loss lira --num-shadows 16 --out /shared/run")
    _add_config_arguments(sh, PRESETS, defenses)
    sh.add_argument("--shadow-index", type=int, nargs="+", required=True, metavar="I",
                    help="which model(s) to train, 0 <= I < bank size (or num_lira_shadows)")
    return parser


def _add_config_arguments(ev: argparse.ArgumentParser, presets, defenses) -> None:
    ev.add_argument("--config", metavar="FILE",
                    help="YAML or JSON config file (see --print-config)")
    ev.add_argument("--preset", metavar="NAME",
                    help=f"start from a preset: {', '.join(presets)} (default: location)")
    ev.add_argument("--dataset", help="dataset name (e.g. location, cifar10)")
    ev.add_argument("--defenses", nargs="+", metavar="NAME",
                    help=f"defenses to compare (keras_mi.defenses registry): "
                         f"{', '.join(defenses)}")
    ev.add_argument("--attacks", nargs="+", metavar="NAME",
                    help="attacks to run (default: every attack whose inputs are available)")
    ev.add_argument("--epochs", type=int, help="shorthand for --set training.epochs=N")
    ev.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    ev.add_argument("--num-shadows", type=int, metavar="N",
                    help="shorthand for --set num_lira_shadows=N (LiRA shadow models)")
    ev.add_argument("--bank", type=int, metavar="N",
                    help="shorthand for --set bank.size=N: the bank protocol, N models per "
                         "defense, each attacked with the others (even, 4..256; 0: off)")
    ev.add_argument("--data-dir",
                    help="folder with the raw data files (default $KERAS_MI_DATA_DIR)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override any config field, e.g. --set split.members=500 "
                         "--set training.lr_boundaries=[10,20] (repeatable)")
    ev.add_argument("--out", default="runs/evaluate", help="output folder (default runs/evaluate)")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace a run of a different config in --out")
    ev.add_argument("--quiet", action="store_true", help="no progress output, no table")
    ev.add_argument("--print-config", action="store_true",
                    help="print the resolved config as JSON and exit "
                         "(a starting point for --config)")


def build_config(args: argparse.Namespace):
    """The :class:`ExperimentConfig` an ``evaluate`` command line asks for."""
    from keras_mi.experiment.config import ExperimentConfig
    from keras_mi.experiment.presets import DEFAULT_PRESET, get_preset

    if args.config and args.preset:
        raise ValueError("Give --config or --preset, not both (use --set to change a preset).")
    if args.config:
        config = ExperimentConfig.load(args.config)
    else:
        config = get_preset(args.preset or DEFAULT_PRESET)
    overrides = {}
    if args.dataset:
        overrides["dataset"] = args.dataset
    if args.defenses:
        overrides["defenses"] = list(args.defenses)
    if args.attacks:
        overrides["attacks"] = list(args.attacks)
    if args.epochs is not None:
        overrides["training.epochs"] = args.epochs
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.num_shadows is not None:
        overrides["num_lira_shadows"] = args.num_shadows
    if args.bank is not None:
        overrides["bank.size"] = args.bank
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got '{item}'.")
        overrides[key.strip()] = value
    if args.dataset and not args.config and not args.preset:
        # A dataset without a preset: let the dataset pick its architecture.
        overrides.setdefault("architecture", None)
    return config.with_overrides(overrides) if overrides else config


def _evaluate(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.print_config:
        print(config.to_json())
        return 0
    from keras_mi.experiment.runner import run_experiment

    run_experiment(config, args.out, overwrite=args.overwrite, verbose=0 if args.quiet else 1)
    return 0


def _shadow(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.print_config:
        print(config.to_json())
        return 0
    from keras_mi.experiment.runner import train_lira_shadows

    done = train_lira_shadows(config, args.out, args.shadow_index, overwrite=args.overwrite,
                              verbose=0 if args.quiet else 1)
    if not args.quiet:
        total = config.bank.size or config.num_lira_shadows
        print(f"Model(s) {done} of {total} are in {args.out}; run "
              "`keras-mi evaluate` with the same arguments once all are done.")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``keras-mi`` console script.

    Example:
      >>> main(["evaluate", "--out", "runs/demo", "--quiet"])  # doctest: +SKIP
      0
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from keras_mi.experiment.store import ConfigMismatchError

    try:
        return _shadow(args) if args.command == "shadow" else _evaluate(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError,
            ConfigMismatchError) as err:
        print(f"keras-mi {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"\nInterrupted. Finished models are saved in {args.out}; run the same command "
              "again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
