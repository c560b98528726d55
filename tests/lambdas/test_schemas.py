"""The ingest record schema (DESIGN 4.2): what the producer sends is what the trigger accepts."""
from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from lambdas.shared.schemas import (
    CommitRecord,
    RecordingRecord,
    audio_uri,
    dump_record,
    encode_record,
    is_safe_name,
    parse_record,
)

BUCKET = "samay-test"


def recording(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 1, "type": "recording", "event_id": str(uuid.uuid4()), "dataset": "kauh",
        "recording_id": "BP1", "patient_id": "kauh_1", "audio_uri": audio_uri(BUCKET, "kauh", "BP1"),
        "sha256": "ab" * 32, "diagnosis": "Asthma", "metadata": {"age": 70, "sex": "M"},
        "recorded_at": None, "sent_at": "2024-05-01T10:00:00Z",
    }
    return {**base, **changes}


def error_types(payload: dict[str, object], bucket: str | None = BUCKET) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_record(json.dumps(payload), bucket=bucket)
    return [error["type"] for error in caught.value.errors()]


def test_recording_round_trips_through_json() -> None:
    # GIVEN a valid recording record
    payload = recording()
    # WHEN it is parsed and encoded again
    record = parse_record(json.dumps(payload), bucket=BUCKET)
    again = parse_record(encode_record(record), bucket=BUCKET)
    # THEN it is the typed model and survives the round trip unchanged
    assert isinstance(record, RecordingRecord) and record.labelled
    assert again == record
    assert dump_record(record)["sent_at"] == "2024-05-01T10:00:00Z"


def test_commit_is_selected_by_type() -> None:
    payload = {"schema_version": 1, "type": "commit", "event_id": str(uuid.uuid4()), "dataset": "kauh",
               "count": 3, "sent_at": "2024-05-01T10:00:00+00:00"}
    record = parse_record(json.dumps(payload))
    assert isinstance(record, CommitRecord) and record.count == 3


def test_unlabelled_recording_has_no_diagnosis() -> None:
    assert parse_record(json.dumps(recording(diagnosis=None)), bucket=BUCKET).labelled is False


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"diagnosis": 3}, "string_type"),
        ({"diagnosis": ""}, "string_too_short"),
        ({"schema_version": 2}, "literal_error"),
        ({"sha256": "AB" * 32}, "string_pattern_mismatch"),
        ({"sha256": "ab" * 31}, "string_pattern_mismatch"),
        ({"sent_at": "2024-05-01T10:00:00"}, "timezone_aware"),
        ({"sent_at": "yesterday"}, "datetime_parsing"),
        ({"audio_uri": "s3://elsewhere/raw/audio/kauh/BP1.wav"}, "audio_uri_outside_bucket"),
        ({"audio_uri": f"s3://{BUCKET}/raw/audio/../secrets/x.wav"}, "path_traversal"),
        ({"audio_uri": f"s3://{BUCKET}//etc/passwd"}, "invalid_audio_uri"),
        ({"audio_uri": f"s3://{BUCKET}/models/x.wav"}, "audio_uri_outside_prefix"),
        ({"audio_uri": "/tmp/x.wav"}, "invalid_audio_uri"),
        ({"recording_id": "../BP1"}, "string_pattern_mismatch"),
        ({"dataset": "a/b"}, "string_pattern_mismatch"),
        ({"event_id": 12345678}, "string_type"),
        ({"unexpected": 1}, "extra_forbidden"),
        ({"metadata": {"nested": {"x": 1}}}, "string_type"),
    ],
)
def test_invalid_recordings_name_the_problem(changes: dict[str, object], expected: str) -> None:
    assert expected in error_types(recording(**changes))


def test_missing_field_is_reported_as_missing() -> None:
    payload = recording()
    del payload["patient_id"]
    assert error_types(payload) == ["missing"]


def test_bucket_is_only_enforced_when_known() -> None:
    # Without a bucket in the context only the shape is checked; the trigger always passes its bucket.
    payload = recording(audio_uri="s3://other/raw/audio/kauh/BP1.wav")
    assert parse_record(json.dumps(payload)).audio_uri.startswith("s3://other/")


def test_negative_commit_count_is_refused() -> None:
    payload = {"schema_version": 1, "type": "commit", "event_id": str(uuid.uuid4()), "dataset": "kauh",
               "count": -1, "sent_at": "2024-05-01T10:00:00Z"}
    assert "greater_than_equal" in error_types(payload)


def test_count_as_string_is_not_coerced() -> None:
    payload = {"schema_version": 1, "type": "commit", "event_id": str(uuid.uuid4()), "dataset": "kauh",
               "count": "3", "sent_at": "2024-05-01T10:00:00Z"}
    assert "int_type" in error_types(payload)


@pytest.mark.parametrize(("value", "safe"), [("BP1", True), ("101_1b1_Al_sc_Meditron", True), ("..", False),
                                              (".hidden", False), ("a/b", False), (7, False), ("", False)])
def test_is_safe_name(value: object, safe: bool) -> None:
    assert is_safe_name(value) is safe
