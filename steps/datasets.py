"""Datasets: the labels.csv folder (DESIGN 4.1), the ICBHI 2017 layout, and duplicate-audio checks.

Both readers return the same frame: one row per recording, `file` relative to the folder, the
required `patient_id` and `diagnosis` (None = unlabelled), `recording_id` and the optional
metadata columns (None where unknown), then any extra columns as they came. Problems with the
folder itself (missing labels, missing files, duplicate rows, malformed annotations) raise
`DatasetError` naming the folder or file and the row, because a half-read dataset would train a
model on something other than what the user pointed at.

Real data holds byte-identical audio filed under two patients with different diagnoses;
`find_duplicate_audio` reports such groups and `exclude_conflicting_duplicates` takes them out with
a reason, so they neither leak across the patient split nor teach the model two labels for one sound.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("file", "patient_id", "diagnosis")
OPTIONAL_COLUMNS = ("recording_id", "location", "device", "filter_mode", "age", "sex", "sound_class")
DATASET_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

ICBHI_PREFIX = "icbhi_"
ICBHI_NAME = re.compile(
    r"^(?P<patient>\d{3})_(?P<index>\d+[a-z]\d+)_(?P<location>Tc|Al|Ar|Pl|Pr|Ll|Lr)"
    r"_(?P<mode>sc|mc)_(?P<device>[A-Za-z0-9]+)$"
)
ANNOTATION_COLUMNS = ("start", "end", "crackles", "wheezes")
DUPLICATE_COLUMNS = ("sha256", "file", "recording_id", "patient_id", "diagnosis", "conflict")

# Why a duplicate is taken out (the `reason` column of the excluded frame).
CONFLICTING_LABELS = "duplicate_audio_conflicting_labels"
OTHER_PATIENT = "duplicate_audio_other_patient"
SAME_PATIENT = "duplicate_audio_same_patient"


class DatasetError(ValueError):
    """A dataset folder or annotation file that cannot be read as it stands."""


def load_dataset(folder: str | os.PathLike) -> pd.DataFrame:
    """Read `folder/labels.csv` into the dataset frame, checking every row points at a real file."""
    folder = Path(folder)
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise DatasetError(f"{folder}: no {LABELS_FILE} (a dataset folder holds labels.csv beside its WAVs)")
    try:
        frame = pd.read_csv(labels, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{labels}: not a readable CSV ({exc})") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"{labels}: missing required column(s) {', '.join(missing)} (have: {', '.join(frame.columns)})"
        )
    frame = _normalise(frame)
    _check_rows(frame, folder, labels)
    return frame


def load_icbhi(folder: str | os.PathLike) -> pd.DataFrame:
    """Read the ICBHI 2017 layout (WAVs + same-stem cycle .txt + patient_diagnosis.csv) as a dataset frame.

    WAVs are looked for in `folder` and `folder/audio`, annotations beside each WAV or in
    `folder/annotations`; only recordings whose audio is present are listed.
    """
    folder = Path(folder)
    diagnoses = read_icbhi_diagnoses(folder / "patient_diagnosis.csv")
    demographics = _read_icbhi_demographics(folder / "demographic_info.txt")
    wavs = sorted(list(folder.glob("*.wav")) + list((folder / "audio").glob("*.wav")))
    if not wavs:
        raise DatasetError(f"{folder}: no ICBHI WAV files (looked in the folder and its audio/ subfolder)")
    rows = [_icbhi_row(folder, wav, diagnoses, demographics) for wav in wavs]
    return _normalise(pd.DataFrame(rows, dtype=object))


def read_icbhi_diagnoses(path: Path) -> dict[str, str]:
    """patient number -> diagnosis, from ICBHI's patient_diagnosis.csv (comma or tab separated, header optional)."""
    if not path.is_file():
        raise DatasetError(f"{path.parent}: no {path.name} (the ICBHI layout needs per-patient diagnoses)")
    diagnoses = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = [field.strip() for field in re.split(r"[,\t]", line) if field.strip()]
        if not fields or (number == 1 and not fields[0].isdigit()):
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise DatasetError(f"{path}: line {number}: expected 'patient,diagnosis', got {line!r}")
        diagnoses[fields[0]] = fields[1]
    return diagnoses


def parse_cycle_annotations(path: str | os.PathLike) -> pd.DataFrame:
    """Read an ICBHI cycle file (`start end crackles wheezes` per line) into a frame, checking each line."""
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        rows.append(_parse_cycle_line(fields, path, number, line))
    frame = pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS))
    return frame.astype({"start": float, "end": float, "crackles": int, "wheezes": int})


def cycle_counts(cycles: pd.DataFrame) -> dict[str, int]:
    """Cycle totals as ICBHI reports them: all, crackles only, wheezes only, both."""
    crackles, wheezes = cycles["crackles"].astype(bool), cycles["wheezes"].astype(bool)
    return {
        "n_cycles": int(len(cycles)),
        "n_crackle_cycles": int((crackles & ~wheezes).sum()),
        "n_wheeze_cycles": int((wheezes & ~crackles).sum()),
        "n_both_cycles": int((crackles & wheezes).sum()),
    }


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in chunks: recordings can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_duplicate_audio(df: pd.DataFrame, root: str | os.PathLike) -> pd.DataFrame:
    """Every group of byte-identical audio files, one row per file, with what makes the group a problem.

    `conflict` is `different_labels` (the same sound carries two diagnoses), `different_patients`
    (one sound under two patients: it would leak across the patient split) or `same_patient`
    (a plain copy). Rows come in dataset order, grouped by `sha256`.
    """
    root = Path(root)
    hashes = df["file"].map(lambda file: file_sha256(root / file))
    sizes = hashes.map(hashes.value_counts())
    dupes = df.loc[sizes > 1].assign(sha256=hashes[sizes > 1])
    if dupes.empty:
        return pd.DataFrame(columns=list(DUPLICATE_COLUMNS))
    conflict = dupes.groupby("sha256", sort=False).apply(_conflict_kind, include_groups=False)
    dupes = dupes.assign(conflict=dupes["sha256"].map(conflict))
    order = {sha: rank for rank, sha in enumerate(dict.fromkeys(dupes["sha256"]))}
    dupes = dupes.sort_values("sha256", key=lambda s: s.map(order), kind="stable")
    return dupes[list(DUPLICATE_COLUMNS)].reset_index(drop=True)


def exclude_conflicting_duplicates(df: pd.DataFrame, root: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the dataset into (kept, excluded); excluded rows carry `reason` and `duplicate_of`.

    A sound with two diagnoses is excluded entirely (no way to know which label is right); a sound
    under two patients, or copied within one, keeps its first row and excludes the rest.
    """
    duplicates = find_duplicate_audio(df, root)
    excluded_rows = []
    for _, group in duplicates.groupby("sha256", sort=False):
        first = group.iloc[0]
        if first["conflict"] == "different_labels":
            victims, reason = group, CONFLICTING_LABELS
        else:
            victims = group.iloc[1:]
            reason = OTHER_PATIENT if first["conflict"] == "different_patients" else SAME_PATIENT
        for _, row in victims.iterrows():
            others = [file for file in group["file"] if file != row["file"]]
            excluded_rows.append({"file": row["file"], "reason": reason, "duplicate_of": ";".join(others)})
    reasons = pd.DataFrame(excluded_rows, columns=["file", "reason", "duplicate_of"])
    is_excluded = df["file"].isin(reasons["file"])
    excluded = df.loc[is_excluded].merge(reasons, on="file", how="left")
    for _, row in reasons.iterrows():
        logger.warning("excluding %s: %s (identical to %s)", row["file"], row["reason"], row["duplicate_of"])
    return df.loc[~is_excluded].reset_index(drop=True), excluded.reset_index(drop=True)


def _conflict_kind(group: pd.DataFrame) -> str:
    labels = {label for label in group["diagnosis"] if label is not None}
    if len(labels) > 1:
        return "different_labels"
    return "different_patients" if group["patient_id"].nunique() > 1 else "same_patient"


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Trim text, turn empty cells into None, derive missing recording ids, put the contract columns first."""
    frame = frame.apply(lambda column: column.map(_clean_cell)).astype(object)
    frame = frame.where(frame.notna(), None)
    for column in OPTIONAL_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    derived = frame["file"].map(lambda file: Path(file).stem if file else None)
    frame["recording_id"] = frame["recording_id"].where(frame["recording_id"].notna(), derived)
    extras = [column for column in frame.columns if column not in DATASET_COLUMNS]
    return frame[list(DATASET_COLUMNS) + extras].reset_index(drop=True)


def _clean_cell(value: object) -> object:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _check_rows(frame: pd.DataFrame, folder: Path, labels: Path) -> None:
    """Every row names a file inside the folder that exists, a patient, and a unique recording."""
    def rows_of(mask: pd.Series) -> str:
        lines = [str(index + 2) for index in frame.index[mask]]  # +2: header line, 1-based
        return ", ".join(lines[:10]) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")

    for column in ("file", "patient_id"):
        empty = frame[column].isna()
        if empty.any():
            raise DatasetError(f"{labels}: empty {column} on line(s) {rows_of(empty)}")
    outside = frame["file"].map(lambda file: Path(file).is_absolute() or ".." in Path(file).parts)
    if outside.any():
        raise DatasetError(f"{labels}: file must be a path inside {folder} (line(s) {rows_of(outside)})")
    for column in ("file", "recording_id"):
        repeated = frame[column].duplicated(keep=False)
        if repeated.any():
            raise DatasetError(f"{labels}: duplicate {column} on line(s) {rows_of(repeated)}")
    absent = ~frame["file"].map(lambda file: (folder / file).is_file())
    if absent.any():
        first = frame.loc[absent, "file"].iloc[0]
        raise DatasetError(
            f"{labels}: {int(absent.sum())} file(s) do not exist, e.g. {first} (line(s) {rows_of(absent)})"
        )


def _parse_cycle_line(fields: list[str], path: Path, number: int, line: str) -> tuple[float, float, int, int]:
    problem = None
    if len(fields) != 4:
        problem = f"expected 4 fields 'start end crackles wheezes', got {len(fields)}"
    else:
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            start = end = None
            problem = "start and end must be numbers (seconds)"
        if problem is None and (fields[2] not in ("0", "1") or fields[3] not in ("0", "1")):
            problem = "crackles and wheezes must be 0 or 1"
        if problem is None and not 0 <= start < end:
            problem = f"a cycle must have 0 <= start < end (got {start} .. {end})"
    if problem:
        raise DatasetError(f"{path}: line {number}: {problem}: {line!r}")
    return start, end, int(fields[2]), int(fields[3])


def _read_icbhi_demographics(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """patient number -> (age, sex) from demographic_info.txt when present ('NA' = unknown)."""
    if not path.is_file():
        return {}
    demographics = {}
    with path.open(encoding="utf-8") as handle:
        for fields in csv.reader(handle, delimiter=" ", skipinitialspace=True):
            if len(fields) >= 3 and fields[0].isdigit():
                age, sex = (None if value == "NA" else value for value in fields[1:3])
                demographics[fields[0]] = (age, sex)
    return demographics


def _icbhi_row(
    folder: Path, wav: Path, diagnoses: dict[str, str], demographics: dict[str, tuple[str | None, str | None]]
) -> dict[str, object]:
    match = ICBHI_NAME.match(wav.stem)
    if match is None:
        raise DatasetError(f"{wav}: not an ICBHI file name (expected e.g. 101_1b1_Al_sc_Meditron.wav)")
    patient = match["patient"]
    if patient not in diagnoses:
        raise DatasetError(f"{wav}: patient {patient} is not in {folder / 'patient_diagnosis.csv'}")
    annotation = _find_annotation(folder, wav)
    counts = cycle_counts(parse_cycle_annotations(annotation)) if annotation else dict.fromkeys(
        ("n_cycles", "n_crackle_cycles", "n_wheeze_cycles", "n_both_cycles")
    )
    if annotation is None:
        logger.warning("%s: no cycle annotation file; cycle counts left empty", wav.name)
    age, sex = demographics.get(patient, (None, None))
    return {
        "file": wav.relative_to(folder).as_posix(),
        "patient_id": f"{ICBHI_PREFIX}{patient}",
        "diagnosis": diagnoses[patient],
        "recording_id": wav.stem,
        "location": match["location"],
        "device": match["device"],
        "filter_mode": None,
        "age": age,
        "sex": sex,
        "sound_class": _icbhi_sound_class(counts) if annotation else None,
        "acquisition_mode": match["mode"],
        "recording_index": match["index"],
        **counts,
    }


def _find_annotation(folder: Path, wav: Path) -> Path | None:
    for candidate in (wav.with_suffix(".txt"), folder / "annotations" / f"{wav.stem}.txt"):
        if candidate.is_file():
            return candidate
    return None


def _icbhi_sound_class(counts: dict[str, int]) -> str:
    crackle = counts["n_crackle_cycles"] + counts["n_both_cycles"] > 0
    wheeze = counts["n_wheeze_cycles"] + counts["n_both_cycles"] > 0
    kinds = [name for name, present in (("crackle", crackle), ("wheeze", wheeze)) if present]
    return "+".join(kinds) if kinds else "normal"
