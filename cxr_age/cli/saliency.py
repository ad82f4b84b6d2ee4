"""`cxr-age-saliency --group 70-80`: per-age-group average saliency maps with tf-keras-vis, their shares in
named regions, and the randomisation sanity check (Karargyris et al. 2019; Adebayo et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cxr_age.cli.base import Parser, run
from cxr_age.cli.options import positive_int, run_or_latest
from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import GROUP_LABELS
from cxr_age.run import RUNS_ROOT
from cxr_age.runtime import require_tensorflow
from cxr_age.saliency import CAM_METHODS, METHODS
from cxr_age.saliency.regions import mass_share_table
from cxr_age.tasks import CLASSIFY

PROG = "cxr-age-saliency"


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Average the saliency maps of a trained run's images per age group, as in the paper's "
                    "figure, overlaid on the group's average image; report each named region's share of the "
                    "saliency mass; optionally check the maps against randomised weights (Adebayo et al. 2018).",
    )
    parser.add_argument("--group", choices=("all", *GROUP_LABELS), default="all",
                        help="age group in years, or all (default) for every group and the grid figure")
    parser.add_argument("--run", metavar="RUN",
                        help="a run directory from cxr-age-train (default: the newest finished classify run "
                             f"under {RUNS_ROOT}/)")
    parser.add_argument("--method", choices=METHODS, default="saliency",
                        help="tf-keras-vis method (default: saliency, vanilla gradients as in the paper)")
    parser.add_argument("--split", choices=("test", "val", "train"), default="test",
                        help="whose images to map (default: test)")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="map at most N images per group (a seeded random subset)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N",
                        help="images per batch (default: 8 at 256 px and above, up to 64 for smaller images: the "
                             "same pixels per batch)")
    parser.add_argument("--layer", metavar="NAME",
                        help=f"feature layer for {', '.join(CAM_METHODS)} (default: the backbone's last, relu)")
    parser.add_argument("--smooth-samples", type=positive_int, default=20, metavar="N",
                        help="smoothgrad: noisy copies per image (default 20)")
    parser.add_argument("--tolerance", type=float, default=5.0, metavar="YEARS",
                        help="regressor: a prediction within this many years counts as correct (default 5)")
    parser.add_argument("--regions", metavar="FILE",
                        help="TOML file of named regions (default: the shipped data/regions.toml)")
    parser.add_argument("--sanity", action="store_true",
                        help="also re-initialise the weights stage by stage from the output and report the rank "
                             "correlation of the maps with the trained ones")
    parser.add_argument("--sanity-images", type=positive_int, default=16, metavar="N",
                        help="images used by --sanity (default 16)")
    parser.add_argument("--out", metavar="DIR", help="folder to create (default: a new folder under RUN/saliency/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def region_lines(regions: pd.DataFrame) -> list[str]:
    """The share of saliency mass per region (rows) and group (columns), in percent, all images."""
    return mass_share_table(regions).round(1).to_string().splitlines()


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    if args.tolerance < 0:
        raise CxrAgeError(f"--tolerance must be 0 or more, got {args.tolerance}")
    require_tensorflow("saliency maps (tf-keras-vis)")
    run_dir = run_or_latest(args.run, CLASSIFY)
    from cxr_age.saliency.analysis import SaliencyRequest, analyse
    from cxr_age.saliency.methods import MapSettings
    from cxr_age.saliency.sanity import SURVIVAL_THRESHOLD

    request = SaliencyRequest(
        run=run_dir, groups=tuple(GROUP_LABELS) if args.group == "all" else (args.group,), split=args.split,
        settings=MapSettings(args.method, args.layer, args.smooth_samples), limit=args.limit,
        batch_size=args.batch_size, tolerance=args.tolerance, regions_file=Path(args.regions) if args.regions else None,
        sanity_images=args.sanity_images if args.sanity else 0,
    )
    result = analyse(request, args.out, progress=not args.no_progress)
    summary = result.summary
    print(f"{PROG}: {args.method} maps of {run_dir} ({summary['task']}), {args.split} split")
    if summary["demo"]:
        print("DEMONSTRATION run on the embedded sample: the maps show the method working, not a finding")
    for label, counts in summary["groups"].items():
        print(f"  {label}: {counts['all']} images ({counts['correct']} correct, {counts['wrong']} wrong; "
              f"correct: {summary['correct_means']})")
    if summary["groups_without_images"]:
        print(f"  no {args.split} images in: {', '.join(summary['groups_without_images'])} (skipped)")
    print("share of saliency mass per region (%), all images; area = the region's share of the image:")
    for line in region_lines(result.regions):
        print(f"  {line}")
    if result.sanity is not None:
        print("sanity check (Adebayo et al. 2018), Spearman rank correlation with the trained maps as weights are "
              "re-initialised from the output down:")
        for row in result.sanity.table.itertuples():
            print(f"  + {row.randomised_through:<14} ({row.layers_randomised:>3} layers): {row.spearman:.3f} "
                  f"(95% CI {row.ci95_low:.3f} to {row.ci95_high:.3f}, {row.images} images)")
        verdict = ("FLAGGED: the maps survive randomisation, so they show the image rather than what the model "
                   "learned" if result.sanity.flagged else "passed: the maps change when the weights are randomised")
        print(f"  {args.method}: {verdict}")
        if result.sanity.table["spearman"].iloc[0] >= SURVIVAL_THRESHOLD:
            print("  note: randomising the output layer alone barely changes the maps, so they say little about "
                  "which age (group) is being explained")
    print(f"wrote {result.folder}")


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
