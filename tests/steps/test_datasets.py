"""Dataset readers: labels.csv folders, the ICBHI layout, cycle annotations and duplicate audio."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from steps.datasets import (
    CONFLICTING_LABELS,
    DATASET_COLUMNS,
    DUPLICATE_COLUMNS,
    OTHER_PATIENT,
    SAME_PATIENT,
    DatasetError,
    cycle_counts,
    exclude_conflicting_duplicates,
    file_sha256,
    find_duplicate_audio,
    load_dataset,
    load_icbhi,
    parse_cycle_annotations,
)
from steps.synth import synthesize_dataset


def wav(seed: int, seconds: float = 1.0, rate: int = 4000) -> bytes:
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate))
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def make_folder(root: Path, labels: str, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "labels.csv").write_text(labels)
    return root


def test_load_dataset_reads_required_optional_and_extra_columns(tmp_path):
    folder = make_folder(
        tmp_path / "ds",
        "file,patient_id,diagnosis,location,site\n"
        "a/one.wav,007,Asthma, P L U ,clinic-1\n"
        "a/two.wav,007,,P R M,clinic-1\n",
        {"a/one.wav": wav(1), "a/two.wav": wav(2)},
    )

    frame = load_dataset(folder)

    assert list(frame.columns) == list(DATASET_COLUMNS) + ["site"]
    assert frame["patient_id"].tolist() == ["007", "007"]  # ids stay text
    assert frame["diagnosis"].tolist() == ["Asthma", None]  # empty = unlabelled
    assert frame["recording_id"].tolist() == ["one", "two"]  # derived from the file name
    assert frame["location"].tolist() == ["P L U", "P R M"]
    assert frame["device"].tolist() == [None, None]
    assert frame["site"].tolist() == ["clinic-1", "clinic-1"]


def test_load_dataset_reads_what_synth_writes(tmp_path):
    out = tmp_path / "synth"
    synthesize_dataset(out, patients=3, recordings_per_patient=2, seed=3, unlabelled=True)

    frame = load_dataset(out)

    assert len(frame) == 6 and frame["diagnosis"].isna().all()
    assert frame["true_diagnosis"].notna().all()
    assert (frame["recording_id"] == frame["file"].map(lambda f: Path(f).stem)).all()


def test_missing_labels_csv_names_the_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"empty-folder: no labels\.csv"):
        load_dataset(tmp_path / "empty-folder")


def test_empty_labels_csv(tmp_path):
    folder = make_folder(tmp_path / "ds", "", {})
    with pytest.raises(DatasetError, match="not a readable CSV"):
        load_dataset(folder)


def test_missing_required_columns_are_listed(tmp_path):
    folder = make_folder(tmp_path / "ds", "file,label\na.wav,Asthma\n", {"a.wav": wav(1)})
    with pytest.raises(DatasetError, match="missing required column\\(s\\) patient_id, diagnosis"):
        load_dataset(folder)


def test_files_that_do_not_exist_are_named_with_their_line(tmp_path):
    folder = make_folder(
        tmp_path / "ds", "file,patient_id,diagnosis\na.wav,p1,Asthma\ngone.wav,p2,COPD\n", {"a.wav": wav(1)}
    )
    with pytest.raises(DatasetError, match=r"1 file\(s\) do not exist, e.g. gone.wav \(line\(s\) 3\)"):
        load_dataset(folder)


def test_duplicate_file_rows_are_refused(tmp_path):
    folder = make_folder(
        tmp_path / "ds", "file,patient_id,diagnosis\na.wav,p1,Asthma\na.wav,p2,COPD\n", {"a.wav": wav(1)}
    )
    with pytest.raises(DatasetError, match=r"duplicate file on line\(s\) 2, 3"):
        load_dataset(folder)


def test_duplicate_recording_ids_are_refused(tmp_path):
    folder = make_folder(
        tmp_path / "ds",
        "file,patient_id,diagnosis\nx/a.wav,p1,Asthma\ny/a.wav,p2,COPD\n",
        {"x/a.wav": wav(1), "y/a.wav": wav(2)},
    )
    with pytest.raises(DatasetError, match="duplicate recording_id"):
        load_dataset(folder)


def test_empty_patient_id_is_refused(tmp_path):
    folder = make_folder(tmp_path / "ds", "file,patient_id,diagnosis\na.wav,,Asthma\n", {"a.wav": wav(1)})
    with pytest.raises(DatasetError, match=r"empty patient_id on line\(s\) 2"):
        load_dataset(folder)


@pytest.mark.parametrize("path", ["../outside.wav", "/etc/passwd"])
def test_files_outside_the_folder_are_refused(tmp_path, path):
    folder = make_folder(tmp_path / "ds", f"file,patient_id,diagnosis\n{path},p1,Asthma\n", {})
    with pytest.raises(DatasetError, match="must be a path inside"):
        load_dataset(folder)


def write_annotation(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parse_cycle_annotations(tmp_path):
    path = write_annotation(tmp_path / "a.txt", ["0.036\t0.579\t0\t0", "", "0.579 2.45 1 0", "2.45\t3.893\t1\t1"])

    cycles = parse_cycle_annotations(path)

    assert list(cycles.columns) == ["start", "end", "crackles", "wheezes"]
    assert cycles["end"].tolist() == [0.579, 2.45, 3.893]
    assert cycles["crackles"].tolist() == [0, 1, 1]
    assert cycle_counts(cycles) == {"n_cycles": 3, "n_crackle_cycles": 1, "n_wheeze_cycles": 0, "n_both_cycles": 1}


@pytest.mark.parametrize(
    "line, problem",
    [
        ("0.5\t1.0\t0", "expected 4 fields"),
        ("0.5\tlate\t0\t0", "must be numbers"),
        ("0.5\t1.0\t2\t0", "must be 0 or 1"),
        ("1.5\t1.0\t0\t0", "0 <= start < end"),
    ],
)
def test_malformed_annotation_lines_name_the_file_and_line(tmp_path, line, problem):
    path = write_annotation(tmp_path / "b.txt", ["0.0\t0.5\t0\t0", line])
    with pytest.raises(DatasetError, match=problem) as excinfo:
        parse_cycle_annotations(path)
    assert str(excinfo.value).startswith(f"{path}: line 2: ")


def make_icbhi(root: Path, *, nested: bool) -> Path:
    """A tiny ICBHI tree: the original flat layout, or the audio/ + annotations/ layout of the shared copy."""
    names = ["101_1b1_Al_sc_Meditron", "104_1b1_Ll_sc_Litt3200", "104_2b3_Tc_mc_AKGC417L"]
    audio_dir = root / "audio" if nested else root
    notes_dir = root / "annotations" if nested else root
    audio_dir.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        (audio_dir / f"{name}.wav").write_bytes(wav(seed))
        write_annotation(notes_dir / f"{name}.txt", ["0.1\t1.2\t0\t0", f"1.2\t2.0\t{seed % 2}\t{seed // 2}"])
    write_annotation(notes_dir / "999_1b1_Al_sc_Meditron.txt", ["0.1\t1.2\t0\t0"])  # annotation without audio
    diagnosis = "ID,CLASS\n101,URTI\n104,COPD\n" if nested else "101\tURTI\n104\tCOPD\n"
    (root / "patient_diagnosis.csv").write_text(diagnosis)
    (root / "demographic_info.txt").write_text("101 3 F NA 19 99\n104 70 NA 21.7 NA NA\n")
    return root


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "audio-annotations"])
def test_load_icbhi_reads_the_layout_into_the_dataset_form(tmp_path, nested):
    root = make_icbhi(tmp_path / "icbhi", nested=nested)

    frame = load_icbhi(root)

    assert list(frame.columns[: len(DATASET_COLUMNS)]) == list(DATASET_COLUMNS)
    assert frame["recording_id"].tolist() == [
        "101_1b1_Al_sc_Meditron", "104_1b1_Ll_sc_Litt3200", "104_2b3_Tc_mc_AKGC417L",
    ]
    assert frame["patient_id"].tolist() == ["icbhi_101", "icbhi_104", "icbhi_104"]
    assert frame["diagnosis"].tolist() == ["URTI", "COPD", "COPD"]
    assert frame["location"].tolist() == ["Al", "Ll", "Tc"]
    assert frame["device"].tolist() == ["Meditron", "Litt3200", "AKGC417L"]
    assert frame["acquisition_mode"].tolist() == ["sc", "sc", "mc"]
    assert frame["age"].tolist() == ["3", "70", "70"] and frame["sex"].tolist() == ["F", None, None]
    assert frame["n_cycles"].tolist() == [2, 2, 2]
    assert frame["sound_class"].tolist() == ["normal", "crackle", "wheeze"]
    assert all((root / file).is_file() for file in frame["file"])


def test_load_icbhi_refuses_a_file_name_outside_the_convention(tmp_path):
    root = make_icbhi(tmp_path / "icbhi", nested=True)
    (root / "audio" / "recording.wav").write_bytes(wav(9))
    with pytest.raises(DatasetError, match="recording.wav: not an ICBHI file name"):
        load_icbhi(root)


def test_load_icbhi_refuses_a_patient_without_diagnosis(tmp_path):
    root = make_icbhi(tmp_path / "icbhi", nested=True)
    (root / "audio" / "150_1b1_Al_sc_Meditron.wav").write_bytes(wav(9))
    with pytest.raises(DatasetError, match="patient 150 is not in"):
        load_icbhi(root)


def test_load_icbhi_needs_the_diagnosis_file_and_some_audio(tmp_path):
    root = make_icbhi(tmp_path / "icbhi", nested=True)
    (root / "patient_diagnosis.csv").unlink()
    with pytest.raises(DatasetError, match="no patient_diagnosis.csv"):
        load_icbhi(root)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "patient_diagnosis.csv").write_text("101,URTI\n")
    with pytest.raises(DatasetError, match="no ICBHI WAV files"):
        load_icbhi(tmp_path / "bare")


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(wav(4))
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def with_duplicates(tmp_path) -> tuple[Path, object]:
    """Six rows: a conflicting-label pair, a same-label pair under two patients, a copy within one patient, a loner."""
    same_sound, other_sound, copied = wav(1), wav(2), wav(3)
    folder = make_folder(
        tmp_path / "ds",
        "file,patient_id,diagnosis\n"
        "a.wav,p1,Normal\nb.wav,p2,Asthma\n"
        "c.wav,p3,COPD\nd.wav,p4,COPD\n"
        "e1.wav,p5,Asthma\ne2.wav,p5,Asthma\n"
        "f.wav,p6,Normal\n",
        {"a.wav": same_sound, "b.wav": same_sound, "c.wav": other_sound, "d.wav": other_sound,
         "e1.wav": copied, "e2.wav": copied, "f.wav": wav(4)},
    )
    return folder, load_dataset(folder)


def test_find_duplicate_audio_groups_identical_bytes_and_says_why(with_duplicates):
    folder, frame = with_duplicates

    found = find_duplicate_audio(frame, folder)

    assert list(found.columns) == list(DUPLICATE_COLUMNS)
    assert found["file"].tolist() == ["a.wav", "b.wav", "c.wav", "d.wav", "e1.wav", "e2.wav"]
    assert found["conflict"].tolist() == ["different_labels"] * 2 + ["different_patients"] * 2 + ["same_patient"] * 2
    assert found.groupby("sha256").size().tolist() == [2, 2, 2]


def test_exclude_conflicting_duplicates_reports_every_exclusion(with_duplicates):
    folder, frame = with_duplicates

    kept, excluded = exclude_conflicting_duplicates(frame, folder)

    assert kept["file"].tolist() == ["c.wav", "e1.wav", "f.wav"]
    assert excluded["file"].tolist() == ["a.wav", "b.wav", "d.wav", "e2.wav"]
    assert excluded["reason"].tolist() == [CONFLICTING_LABELS, CONFLICTING_LABELS, OTHER_PATIENT, SAME_PATIENT]
    assert excluded["duplicate_of"].tolist() == ["b.wav", "a.wav", "c.wav", "e1.wav"]
    assert len(kept) + len(excluded) == len(frame)  # every row ends in exactly one place


def test_no_duplicates_means_nothing_excluded(tmp_path):
    folder = make_folder(
        tmp_path / "ds", "file,patient_id,diagnosis\na.wav,p1,Normal\nb.wav,p1,\n", {"a.wav": wav(1), "b.wav": wav(2)}
    )
    frame = load_dataset(folder)

    assert find_duplicate_audio(frame, folder).empty
    kept, excluded = exclude_conflicting_duplicates(frame, folder)
    assert kept["file"].tolist() == ["a.wav", "b.wav"] and excluded.empty


def test_unlabelled_copies_of_a_labelled_sound_do_not_conflict(tmp_path):
    sound = wav(5)
    folder = make_folder(
        tmp_path / "ds", "file,patient_id,diagnosis\na.wav,p1,Normal\nb.wav,p1,\n", {"a.wav": sound, "b.wav": sound}
    )

    found = find_duplicate_audio(load_dataset(folder), folder)

    assert found["conflict"].tolist() == ["same_patient", "same_patient"]
