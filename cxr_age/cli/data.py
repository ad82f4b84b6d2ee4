"""`cxr-age-data`: dataset statistics (the paper's Figure 1), patient-level splits, image checks and the
prepared-image store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cxr_age.cli.base import Parser, flag_words, run
from cxr_age.cli.options import add_data_options, data_config, positive_int
from cxr_age.io.files import new_folder, write_csv, write_json
from cxr_age.io.selection import NIH, SAMPLE, Selection, select
from cxr_age.io.selection_report import selection_lines, warning_lines
from cxr_age.io.splits import SPLIT_COLUMNS, SPLITS, assign_splits, check_disjoint
from cxr_age.run import RUNS_ROOT, Run
from cxr_age.settings import DataConfig

PROG = "cxr-age-data"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="NIH ChestX-ray14 data: statistics, splits by patient, image checks.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    stats = commands.add_parser(
        "stats", help="Figure 1 (age histogram) and images/patients per age group and split",
        description="Figure 1 of Karargyris et al. (age histogram after removing ages over the maximum) and a "
                    "table of images and patients per age group and split. Default data: the shipped NIH v2020 "
                    "metadata table (no images needed).",
    )
    split = commands.add_parser(
        "split", help="write train/val/test CSVs, 80/10/10 by patient",
        description="Split by patient (80/10/10, seeded, balanced over age groups) and write train.csv, val.csv "
                    "and test.csv. Default data: the embedded demo sample.",
    )
    check = commands.add_parser(
        "check", help="find missing and undecodable image files",
        description="Decode every selected image with the training pipeline's decoder and report missing or "
                    "undecodable files. Default data: the embedded demo sample.",
    )
    prepare = commands.add_parser(
        "prepare", help="decode every image once into a store that training reads instead of the files",
        description="Decode every selected image once with the training decoder, resize it to --image-size and "
                    "store it as uint8 .npy shards with an index (decoded in parallel on all cores). Training, "
                    "evaluation and saliency read a store under prepared/ whose images and size match, and the "
                    "raw files otherwise. Interrupted, the same command resumes: finished shards are kept if "
                    "they match their recorded SHA-256. Default data: the embedded demo sample; default folder "
                    "(--out): prepared/<table>-<size>px-<hash of the images>/.",
    )
    for sub in (stats, split, check):
        add_data_options(sub, images=False)
    add_data_options(prepare, images=False)
    prepare.add_argument("--image-size", type=positive_int, default=DataConfig.image_size, metavar="N",
                         help=f"square size to store, the training size (default {DataConfig.image_size})")
    prepare.add_argument("--shard-size", type=positive_int, default=1024, metavar="N",
                         help="images per shard file (default 1024)")
    return parser


def _report_selection(command: str, selection: Selection, config: DataConfig) -> None:
    print(flag_words(f"{PROG} {command}: using {selection.source}"))
    for line in warning_lines(selection) + selection_lines(selection, config):
        print(flag_words(line))


def _report_split(frame: pd.DataFrame, config: DataConfig) -> dict[str, int]:
    sizes = {name: int((frame["split"] == name).sum()) for name in SPLITS}
    how = f"NIH lists in {config.nih_lists}" if config.nih_lists else f"by patient, seed {config.seed}"
    shares = ", ".join(f"{name} {n:,} ({n / len(frame):.1%})" for name, n in sizes.items())
    print(f"split {how}: {shares}; patients in two splits: {check_disjoint(frame)}")
    return sizes


def _summary(command: str, selection: Selection, config: DataConfig, sizes: dict[str, int]) -> dict:
    return {
        "command": command,
        "source": selection.source,
        "config": vars(config),
        "dataset": selection.dataset,
        "counts": selection.counts,
        "views": selection.frame["view"].value_counts().to_dict(),
        "split_images": sizes,
        "patients_in_two_splits": 0,
        "notes": selection.notes,
        "warnings": selection.warnings,
    }


def _write_lists(selection: Selection, folder: Path) -> None:
    """`removed.csv` (every row a filter took out, with its reason) and `skipped.csv` (missing and undecodable
    files), which a user can open to see what was left out and why."""
    write_csv(selection.removed, folder / Run.REMOVED)
    write_csv(selection.skipped, folder / Run.SKIPPED)


def stats_command(config: DataConfig, out: str | None) -> None:
    from cxr_age.stats.counts import group_split_table
    from cxr_age.viz.figures import age_histogram

    selection = select(config, default=NIH)
    _report_selection("stats", selection, config)
    frame = assign_splits(selection.frame, config.seed, config.nih_lists)
    sizes = _report_split(frame, config)
    table = group_split_table(frame)
    print(table.to_string())
    folder = new_folder(out, "data-stats", RUNS_ROOT)
    write_csv(table.reset_index(), folder / "age_groups.csv")
    _write_lists(selection, folder)
    age_histogram(frame, folder / "age_histogram.png", selection.counts["removed_over_max_age"], config.max_age,
                  f"{selection.dataset}: {selection.csv}")
    write_json(_summary("stats", selection, config, sizes), folder / "summary.json")
    print(f"wrote {folder}/age_histogram.png (Figure 1), age_groups.csv, removed.csv, summary.json")


def split_command(config: DataConfig, out: str | None) -> None:
    selection = select(config, default=SAMPLE)
    _report_selection("split", selection, config)
    frame = assign_splits(selection.frame, config.seed, config.nih_lists)
    sizes = _report_split(frame, config)
    folder = new_folder(out, "data-split", RUNS_ROOT)
    for name in SPLITS:
        write_csv(frame.loc[frame["split"] == name, SPLIT_COLUMNS], Run(folder).split_file(name))
    _write_lists(selection, folder)
    write_json(_summary("split", selection, config, sizes), folder / "summary.json")
    print(f"wrote {folder}/train.csv, val.csv, test.csv, removed.csv, summary.json")


def check_command(config: DataConfig, out: str | None) -> None:
    from cxr_age.io.image_check import check_images

    selection = select(config, default=SAMPLE)
    _report_selection("check", selection, config)
    check_images(selection, bool(config.skip_missing), bool(config.skip_unreadable))
    counts = selection.counts
    print(f"{counts['selected']:,} images decode; left out: {counts['skipped_missing']:,} missing, "
          f"{counts['skipped_unreadable']:,} undecodable")
    folder = new_folder(out, "data-check", RUNS_ROOT)
    _write_lists(selection, folder)
    write_json(_summary("check", selection, config, {}), folder / "summary.json")
    print(f"wrote {folder}/skipped.csv, removed.csv, summary.json")


def prepare_command(config: DataConfig, out: str | None, shard_size: int) -> None:
    from cxr_age.io.image_check import check_missing
    from cxr_age.io.store_writer import prepare_store

    selection = select(config, default=SAMPLE)
    _report_selection("prepare", selection, config)
    selection = check_missing(selection, bool(config.skip_missing))
    frame = selection.frame
    result = prepare_store(frame, config.image_size, Path(out) if out else None, shard_size,
                           name=Path(selection.csv).name.split(".")[0])
    folder = result.folder
    selection.skipped = pd.concat([selection.skipped, result.failed.rename(columns={"path": "image"})],
                                  ignore_index=True)
    _write_lists(selection, folder)
    print(f"{len(frame):,} images at {config.image_size} px in {folder}: {result.written} shards written, "
          f"{result.reused} reused from an earlier run, all verified; {len(result.failed):,} undecodable and "
          f"{selection.counts['skipped_missing']:,} missing images left out (skipped.csv; removed.csv)")


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    config = data_config(args)
    if args.command == "prepare":
        prepare_command(config, args.out, args.shard_size)
        return
    commands = {"stats": stats_command, "split": split_command, "check": check_command}
    commands[args.command](config, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
