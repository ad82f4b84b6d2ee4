"""Find missing and undecodable image files before any training starts, so that no epoch stops halfway.

Decodability is tested with the very decoder the training pipeline uses (`decode.find_unreadable`), run as a
parallel tf.data pass; a file that passes here cannot fail to decode during an epoch.
"""

from __future__ import annotations

import os

import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.selection import Selection
from cxr_age.io.store import PreparedStore


def _first_five(names: pd.Series) -> str:
    return ", ".join(names.iloc[:5]) + (" ..." if len(names) > 5 else "")


def missing_files(frame: pd.DataFrame) -> pd.Series:
    """True for each row whose `path` is not a file."""
    return ~frame["path"].map(os.path.isfile)


def check_missing(selection: Selection, skip_missing: bool) -> Selection:
    """Stop on missing files, or with `skip_missing` drop them, counted and listed in `selection.skipped`."""
    frame = selection.frame
    missing = missing_files(frame)
    selection.counts["skipped_missing"] = _drop(
        selection, missing, pd.Series("file not found", index=frame.index), skip_missing, "`skip_missing`",
        "are missing",
    )
    return selection


def check_images(selection: Selection, skip_missing: bool, skip_unreadable: bool,
                 progress: bool = True, store: PreparedStore | None = None) -> Selection:
    """Stop on missing or undecodable files, or, with the matching skip flag, drop them and record each in
    `selection.skipped` (image, row, reason) and `selection.counts`. With a prepared store that holds the
    selection, its record of undecodable images is used instead of decoding every file again."""
    if "skipped_missing" not in selection.counts:
        check_missing(selection, skip_missing)
    frame = selection.frame
    if store is not None:
        failures = store.failures(frame["path"])
    else:
        # Imported here: the decoder is TensorFlow's, and a store's record serves a machine without it.
        from cxr_age.io.decode import find_unreadable

        failures = find_unreadable(frame["path"].tolist(), progress)
    unreadable = pd.Series(False, index=frame.index)
    unreadable.iloc[list(failures)] = True
    reasons = pd.Series([failures.get(i, "") for i in range(len(frame))], index=frame.index)
    selection.counts["skipped_unreadable"] = _drop(
        selection, unreadable, reasons, skip_unreadable, "`skip_unreadable`", "cannot be decoded"
    )
    if selection.frame.empty:
        raise CxrAgeError("no images left after leaving out the missing and undecodable files")
    selection.counts["selected"] = len(selection.frame)
    selection.counts["patients_selected"] = int(selection.frame["patient_id"].nunique())
    return selection


def _drop(selection: Selection, bad: pd.Series, reasons: pd.Series, allowed: bool, flag: str,
          what: str) -> int:
    if not bad.any():
        return 0
    frame = selection.frame
    if not allowed:
        raise CxrAgeError(
            f"{int(bad.sum())} of {len(frame)} image files {what} under {selection.image_dir} "
            f"(first five: {_first_five(frame.loc[bad, 'image'])}); pass {flag} to leave them out"
        )
    dropped = frame.loc[bad, ["image", "row"]].assign(reason=reasons[bad])
    selection.skipped = pd.concat([selection.skipped, dropped], ignore_index=True)
    selection.frame = frame[~bad].reset_index(drop=True)
    selection.notes.append(f"left out {int(bad.sum())} image files that {what} ({flag}); listed in skipped.csv")
    return int(bad.sum())
