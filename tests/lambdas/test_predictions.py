"""Reading a recording's stored predictions back (what the demo and the dashboard rely on)."""
from lambdas.shared import aws
from lambdas.shared.predictions import Prediction, predictions_for, store_prediction

TABLE, BUCKET = "samay-predictions", "samay-predictions-test"


def test_predictions_for_returns_every_model_version_of_one_recording(aws_endpoint: str) -> None:
    # GIVEN a table with two versions' predictions for r1 and one for r2
    aws.client("s3").create_bucket(Bucket=BUCKET)
    aws.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "recording_id", "AttributeType": "S"},
                              {"AttributeName": "model_version", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "recording_id", "KeyType": "HASH"},
                   {"AttributeName": "model_version", "KeyType": "RANGE"}],
    )
    for recording, version in (("r1", "a"), ("r1", "b"), ("r2", "a")):
        store_prediction(Prediction(recording_id=recording, model_version=version, status="OK", predicted_label="Normal",
                                    probabilities={"Normal": 0.75, "Asthma": 0.25}), table=TABLE, bucket=BUCKET)
    # WHEN r1 is read back
    found = predictions_for(TABLE, "r1")
    # THEN both of its versions come back, typed, and nothing of r2
    assert sorted(p.model_version for p in found) == ["a", "b"]
    assert all(p.probabilities == {"Normal": 0.75, "Asthma": 0.25} for p in found)
    assert predictions_for(TABLE, "missing") == []
