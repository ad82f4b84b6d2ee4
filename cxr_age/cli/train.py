"""`cxr-age-train regress|classify`: the paper's DenseNet169 regressor and DenseNet201 age-group classifier."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cxr_age import paths
from cxr_age.cli.base import Parser, run
from cxr_age.cli.options import add_data_options, given_flags, positive_int
from cxr_age.config import DataConfig, ExperimentConfig, TrainConfig, load_experiment, override, to_toml
from cxr_age.data.selection import describe_source, select
from cxr_age.distribute import STRATEGIES, describe, make_strategy, run_folder_suffix
from cxr_age.errors import CxrAgeError
from cxr_age.run_dir import training_run_dir

PROG = "cxr-age-train"
PAPER_CONFIG = {"regress": "regress_mse", "classify": "classify"}
LOSSES = {"regress": ("mse", "r2"), "classify": ("crossentropy",)}


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Train the paper's age models (Karargyris et al., SPIE 2019): a DenseNet169 regressor of "
                    "age / 90 with a sigmoid output (`regress`) or a DenseNet201 softmax classifier over nine age "
                    "groups (`classify`). With no dataset named, a short demonstration on the embedded sample.",
    )
    parser.add_argument("task", choices=("regress", "classify"))
    parser.add_argument("--config", metavar="NAME|PATH",
                        help="experiment config: a name in experiments/ (regress_mse, regress_r2, classify, "
                             "classify_pretrained, demo) or a TOML path (default: demo without --csv, else "
                             "regress_mse or classify)")
    group = parser.add_argument_group("training (override the config)")
    group.add_argument("--backbone", choices=("densenet121", "densenet169", "densenet201"))
    group.add_argument("--loss", choices=("mse", "r2", "crossentropy"),
                       help="regress: mse (round 1) or r2 (round 2: 1 - R² over the batch)")
    group.add_argument("--weights", metavar="imagenet|PATH",
                       help="pretrained backbone: imagenet (Keras's cached file in ~/.keras/models/; never "
                            "downloaded) or a local notop .h5 file")
    group.add_argument("--epochs", type=positive_int, metavar="N")
    group.add_argument("--batch-size", type=positive_int, metavar="N")
    group.add_argument("--learning-rate", type=float, metavar="X")
    group.add_argument("--patience", type=positive_int, metavar="N", help="early-stopping patience in epochs")
    group.add_argument("--bn-momentum", type=float, metavar="X",
                       help="batch-normalisation moving-average momentum (default 0.99; 0.9 for short runs)")
    group.add_argument("--class-weights", action=argparse.BooleanOptionalAction, default=None,
                       help="classify: weight age groups by inverse frequency")
    group.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                       help="compute in float16 with float32 weights and a float32 output layer (mixed_float16; "
                            "for GPUs with tensor cores; default off)")
    group.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                       help="compile the training step with XLA (default: Keras decides, on with a GPU and off on "
                            "a CPU-only machine)")
    group.add_argument("--strategy", choices=STRATEGIES,
                       help="devices (tf.distribute): default (one device), mirrored (every GPU of this machine) or "
                            "multiworker (the machines in TF_CONFIG; run the same command on each). --batch-size is "
                            "the global batch, split evenly among the replicas")
    add_data_options(parser)
    return parser


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """The config file (named, or the paper's for the task with --csv, or the demo), the task from the
    command, the paper's backbone and loss where unset, then every flag on top."""
    name = args.config or (PAPER_CONFIG[args.task] if args.csv else "demo")
    config = load_experiment(paths.experiment_file(name))
    if config.train.task not in (None, args.task):
        raise CxrAgeError(f"config {args.config} is for {config.train.task}, not {args.task}")
    config = override(config, given_flags(args, DataConfig), given_flags(args, TrainConfig))
    from cxr_age.models import PAPER_BACKBONE

    train = replace(
        config.train,
        task=args.task,
        backbone=config.train.backbone or PAPER_BACKBONE[args.task],
        loss=config.train.loss or LOSSES[args.task][0],
    )
    if train.loss not in LOSSES[args.task]:
        raise CxrAgeError(f"loss {train.loss} does not fit {args.task}; choose {' or '.join(LOSSES[args.task])}")
    return replace(config, train=train)


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    config = resolve_config(args)
    source = describe_source(config.data)
    select(config.data)  # a bad table stops here, before a run folder exists
    strategy_name = config.train.strategy
    suffix = run_folder_suffix(strategy_name)
    # Before any other TensorFlow work: a multi-worker strategy sets up its collectives at start-up.
    strategy = make_strategy(strategy_name)
    placement = describe(strategy, strategy_name, config.train.batch_size)
    settings = to_toml(config)
    out = f"{Path(args.out)}{suffix}" if args.out else None
    run_dir, resumed = training_run_dir(out, f"{args.task}-{config.name}{suffix}", settings)
    demo = " (DEMONSTRATION: a smoke signal, not a result)" if config.train.demo else ""
    print(f"{PROG} {args.task}: using {source}{demo}")
    print(f"{'resuming' if resumed else 'run'} {run_dir}: {config.train.backbone}, loss {config.train.loss}, "
          f"{config.data.image_size} px, {config.train.epochs} epochs, batch {config.train.batch_size}")
    print(placement)
    from cxr_age.evaluation import summary_lines
    from cxr_age.training import train

    result = train(config, run_dir, strategy=strategy)
    if result is None:
        print(f"wrote {run_dir}: this worker's share of the training is done; the chief writes the model, metrics "
              "and figures into its own run folder")
        return
    for line in summary_lines(result):
        print(line)
    print(f"wrote {run_dir}: model.keras, history.csv, metrics.json, predictions_*.csv, figures (*.png)")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
