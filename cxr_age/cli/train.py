"""`cxr-age-train regress|classify`: the paper's DenseNet169 regressor and DenseNet201 age-group classifier."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cxr_age.cli.base import Parser, flag_words, run
from cxr_age.cli.options import add_data_options, given_flags, positive_int
from cxr_age.config import DEMO_NOTICE, DataConfig, Experiment, TrainConfig
from cxr_age.io.selection import describe_source
from cxr_age.nets.distribute import STRATEGIES
from cxr_age.run import Run
from cxr_age.tasks import LOSSES, TASK_NAMES

PROG = "cxr-age-train"


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Train the paper's age models (Karargyris et al., SPIE 2019): a DenseNet169 regressor of "
                    "age / 90 with a sigmoid output (`regress`) or a DenseNet201 softmax classifier over nine age "
                    "groups (`classify`). With no dataset named, a short demonstration on the embedded sample.",
    )
    parser.add_argument("task", choices=TASK_NAMES)
    parser.add_argument("--config", metavar="NAME|PATH",
                        help="experiment config: a name in experiments/ (regress_mse, regress_r2, classify, "
                             "classify_pretrained, demo) or a TOML path (default: demo without --csv, else "
                             "regress_mse or classify)")
    group = parser.add_argument_group("training (override the config)")
    group.add_argument("--backbone", choices=("densenet121", "densenet169", "densenet201"))
    group.add_argument("--loss", choices=LOSSES,
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
                       help="compute in half precision with float32 weights and a float32 output layer: "
                            "mixed_bfloat16 on GPUs of compute capability 8.0 and up, else mixed_float16 with loss "
                            "scaling; the run's config records which (default off)")
    group.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                       help="compile the training step with XLA (default: Keras decides, on with a GPU and off on "
                            "a CPU-only machine)")
    group.add_argument("--strategy", choices=STRATEGIES,
                       help="devices: default (one device), mirrored (every GPU of this machine) or multiworker "
                            "(several machines; run the same command on each): tf.distribute with TF_CONFIG on the "
                            "TensorFlow backend, keras.distribution with KERAS_DISTRIBUTION_JOB_ADDRESSES, "
                            "_NUM_PROCESSES and _PROCESS_ID on the JAX backend (from a prepared store). --batch-size "
                            "is the global batch, split evenly among the replicas")
    add_data_options(parser)
    parser.add_argument("--healthy-only", action="store_true", default=None,
                        help="train, validate and calibrate on the images the dataset's labels call healthy (NIH and "
                             "CheXpert: No Finding; PadChest: normal); the test split keeps every patient and the "
                             "error is reported on the healthy and on the others apart")
    return parser


def resolve_config(args: argparse.Namespace) -> Experiment:
    """The experiment of the command line: the named config (or the paper's for the task with --csv, or the
    demo) resolved for the task, with every flag given on top."""
    settings = {**given_flags(args, DataConfig), **given_flags(args, TrainConfig)}
    return Experiment.load(args.config, **settings)


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    experiment = resolve_config(args)
    from cxr_age.nets.distribute import make_strategy

    # Before any other TensorFlow work: a multi-worker strategy sets up its collectives at start-up.
    strategy = make_strategy(experiment.train.strategy)
    demo = f" ({DEMO_NOTICE})" if experiment.train.demo else ""
    print(flag_words(f"{PROG} {args.task}: using {describe_source(experiment.data)}{demo}"))
    from cxr_age.workflows.evaluation import summary_lines
    from cxr_age.workflows.training import train

    trained = train(experiment, args.out, strategy=strategy)
    if trained is None:
        print("this worker's share of the training is done; the chief writes the model, metrics and figures "
              "into its own run folder")
        return
    for line in summary_lines(trained.metrics(), experiment.task):
        print(line)
    logs = f", {Run.TENSORBOARD}/" if trained.file(Run.TENSORBOARD).is_dir() else ""
    print(f"wrote {trained}: {Run.MODEL}, {Run.HISTORY}, {Run.METRICS}, predictions_*.csv, figures (*.png){logs}")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
