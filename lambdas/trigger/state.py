"""Per-dataset ingest state in DynamoDB `samay-ingest-state` (key `dataset`).

Records arrive in no fixed order and at least once, so completion is counted, not assumed:

- one *marker item* per distinct unit, key `<dataset>#rec#<recording_id>` (or `#evt#<event_id>` for a
  rejected record without a usable recording_id) and `<dataset>#commit#<event_id>` for commits,
  created in the same transaction as the counter update on the dataset item, so each unit counts
  exactly once however often it is delivered (and the item never hits DynamoDB's size limit);
- the *dataset item*, key `<dataset>`: `processed_count` and `labelled_accepted` counters and the
  current commit (`commit_event_id`, `commit_count`, `commit_received_at`, `commit_state`,
  `commit_record`, `commit_settled`, `version`, `manifest_uri`, `execution_arn`, `started_at`,
  `labelled_at_start`, `reason`).

`commit_state` moves pending -> started (claimed by one conditional update) or pending ->
timed_out / superseded, or started -> no_data; `commit_settled` says the commit's own line
(ledger when started, quarantine otherwise) is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from lambdas.shared import aws

PENDING, STARTED, TIMED_OUT, SUPERSEDED, NO_DATA = "pending", "started", "timed_out", "superseded", "no_data"
_TO_DYNAMO = TypeSerializer()
_FROM_DYNAMO = TypeDeserializer()
# This commit, still pending, or claimed by a start that never recorded its execution.
_OPEN_COMMIT = ("commit_event_id = :id AND (commit_state = :pending OR "
                "(commit_state = :started AND attribute_not_exists(execution_arn)))")


@dataclass(frozen=True)
class DatasetState:
    dataset: str
    processed_count: int = 0
    labelled_accepted: int = 0
    commit_event_id: str | None = None
    commit_count: int = 0
    commit_received_at: int = 0
    commit_state: str | None = None
    commit_record: str | None = None
    commit_settled: bool = False
    version: str | None = None
    execution_arn: str | None = None
    labelled_at_start: int | None = None  # labelled_accepted when the last start was claimed

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "DatasetState":
        plain = {k: _FROM_DYNAMO.deserialize(v) for k, v in item.items()}
        fields = {name: plain[name] for name in cls.__dataclass_fields__ if name in plain}
        for name in ("processed_count", "labelled_accepted", "commit_count", "commit_received_at"):
            fields[name] = int(fields.get(name, 0))
        if fields.get("labelled_at_start") is not None:
            fields["labelled_at_start"] = int(fields["labelled_at_start"])
        return cls(**fields)

    @property
    def complete(self) -> bool:
        return self.processed_count >= self.commit_count


def _values(**values: Any) -> dict[str, Any]:
    return {f":{name}": _TO_DYNAMO.serialize(value) for name, value in values.items()}


def _key(name: str) -> dict[str, Any]:
    return {"dataset": {"S": name}}


def _update_if(table: str, dataset: str, expression: str, condition: str, **values: Any) -> bool:
    """Update the dataset item if `condition` holds; False (nothing written) when it does not.

    Every state transition is one such update, so concurrent deliveries race on DynamoDB's
    condition, not on what they read before.
    """
    try:
        aws.client("dynamodb").update_item(
            TableName=table, Key=_key(dataset), UpdateExpression=expression,
            ConditionExpression=condition, ExpressionAttributeValues=_values(**values),
        )
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def get_state(table: str, dataset: str) -> DatasetState | None:
    item = aws.client("dynamodb").get_item(TableName=table, Key=_key(dataset), ConsistentRead=True).get("Item")
    return DatasetState.from_item(item) if item else None


def _once(table: str, marker: str, update: dict[str, Any], marker_fields: dict[str, Any]) -> bool:
    """Create `marker` and apply `update` to the dataset item atomically; False if the marker exists."""
    put = {
        "TableName": table,
        "Item": {**_key(marker), **{k: _TO_DYNAMO.serialize(v) for k, v in marker_fields.items()}},
        "ConditionExpression": "attribute_not_exists(dataset)",
    }
    try:
        aws.client("dynamodb").transact_write_items(TransactItems=[{"Put": put}, {"Update": {"TableName": table, **update}}])
    except ClientError as err:
        reasons = err.response.get("CancellationReasons") or []
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
            return False
        raise
    return True


def count_unit(table: str, dataset: str, unit: str, *, event_id: str, labelled_accepted: bool) -> bool:
    """Count one distinct recording (accepted or quarantined) of `dataset`; False if already counted."""
    update = {
        "Key": _key(dataset),
        "UpdateExpression": "ADD processed_count :one, labelled_accepted :labelled",
        "ExpressionAttributeValues": _values(one=1, labelled=int(labelled_accepted)),
    }
    return _once(table, f"{dataset}#{unit}", update, {"event_id": event_id})


def register_commit(table: str, dataset: str, event_id: str, count: int, record: str, now: int,
                    replaces: str | None) -> bool:
    """Make this commit the dataset's pending one; False for a commit seen before.

    `replaces` is the commit event id the caller read (None: no commit yet); if another commit
    landed in between, the condition fails and the caller's retry sees the new state.
    """
    condition = "attribute_not_exists(commit_event_id)" if replaces is None else "commit_event_id = :replaces"
    extra = {} if replaces is None else {"replaces": replaces}
    update = {
        "Key": _key(dataset),
        "UpdateExpression": (
            "SET commit_event_id = :id, commit_count = :count, commit_received_at = :now, "
            "commit_state = :pending, commit_record = :record, commit_settled = :false "
            "REMOVE version, manifest_uri, execution_arn, started_at, reason"
        ),
        "ConditionExpression": condition,
        "ExpressionAttributeValues": _values(
            id=event_id, count=count, now=now, pending=PENDING, record=record, false=False, **extra,
        ),
    }
    return _once(table, f"{dataset}#commit#{event_id}", update, {"event_id": event_id})


def claim_start(table: str, state: DatasetState, version: str, now: int) -> bool:
    """One caller wins the right to start the pipeline for the pending commit.

    A claim whose start never finished (started, no execution_arn) may be taken again: the start
    itself is idempotent (ClientRequestToken, running-execution check).
    """
    return _update_if(
        table, state.dataset,
        "SET commit_state = :started, version = :version, started_at = :now, labelled_at_start = :labelled",
        _OPEN_COMMIT,
        started=STARTED, pending=PENDING, version=version, now=now, id=state.commit_event_id,
        labelled=state.labelled_accepted,
    )


def claim_auto_start(table: str, state: DatasetState, event_id: str, version: str, now: int) -> bool:
    """Like `claim_start` for a start without a commit: wins only if nothing moved since `state`."""
    previous = {} if state.labelled_at_start is None else {"previous": state.labelled_at_start}
    condition = "(attribute_not_exists(commit_state) OR commit_state <> :pending) AND " + (
        "labelled_at_start = :previous" if previous else "attribute_not_exists(labelled_at_start)"
    )
    return _update_if(
        table, state.dataset,
        "SET commit_event_id = :id, commit_count = :labelled, commit_received_at = :now, "
        "commit_state = :started, commit_settled = :true, version = :version, started_at = :now, "
        "labelled_at_start = :labelled REMOVE commit_record, execution_arn, manifest_uri, reason",
        condition,
        id=event_id, labelled=state.labelled_accepted, now=now, started=STARTED, pending=PENDING,
        true=True, version=version, **previous,
    )


def record_started(table: str, dataset: str, commit_event_id: str, manifest_uri: str, execution_arn: str) -> None:
    """The start succeeded and the commit's ledger line is written."""
    _update_commit(table, dataset, commit_event_id,
                   "SET manifest_uri = :uri, execution_arn = :arn, commit_settled = :true",
                   uri=manifest_uri, arn=execution_arn, true=True)


def give_up(table: str, dataset: str, commit_event_id: str, new_state: str, reason: str) -> bool:
    """Move a pending (or claimed, not yet started) commit to a final failure state."""
    return _update_if(table, dataset, "SET commit_state = :new, reason = :reason", _OPEN_COMMIT,
                      new=new_state, reason=reason, id=commit_event_id, pending=PENDING, started=STARTED)


def mark_settled(table: str, dataset: str, commit_event_id: str) -> None:
    _update_commit(table, dataset, commit_event_id, "SET commit_settled = :true", true=True)


def _update_commit(table: str, dataset: str, commit_event_id: str, expression: str, **values: Any) -> None:
    """Update the dataset item only while it still holds this commit (a newer one may have replaced it)."""
    _update_if(table, dataset, expression, "commit_event_id = :id", id=commit_event_id, **values)
