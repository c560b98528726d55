"""infra/template.yaml passes cfn-lint and checkov, and its IAM policies name specific resources."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.infra.conftest import TEMPLATE

BIN = Path(sys.executable).parent
# Actions with no resource-level permissions in IAM: "*" is the only valid resource for them.
RESOURCELESS_ACTIONS = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        documents += [props[key] for key in ("PolicyDocument", "KeyPolicy") if key in props]
        for document in documents:
            found += [(logical_id, statement) for statement in document["Statement"]]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_passes() -> None:
    result = subprocess.run([str(BIN / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_reports_no_failed_checks() -> None:
    result = subprocess.run(
        [str(BIN / "checkov"), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        env={"PATH": str(BIN), "BC_SKIP_MAPPING": "TRUE", "HOME": str(Path.home())},
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 100


def test_every_checkov_skip_carries_a_reason(template: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip)
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "the template documents its skips inline"
    for logical_id, skip in skips:
        assert len(skip.get("comment", "")) > 20, f"{logical_id} skips {skip['id']} without a reason"


def test_iam_policies_name_specific_resources(template: dict[str, Any]) -> None:
    statements = _statements(template)
    assert len(statements) > 30
    for logical_id, statement in statements:
        if "*" not in _as_list(statement.get("Resource", [])):
            continue
        actions = set(_as_list(statement["Action"]))
        is_key_policy = "KeyPolicy" in template["Resources"][logical_id]["Properties"]
        is_deny = statement["Effect"] == "Deny"
        assert is_key_policy or is_deny or actions <= RESOURCELESS_ACTIONS, (logical_id, statement)


def test_every_wildcard_resource_is_commented() -> None:
    lines = TEMPLATE.read_text().splitlines()
    wildcard_lines = [i for i, line in enumerate(lines) if line.strip() == 'Resource: "*"']
    assert wildcard_lines
    for index in wildcard_lines:
        preceding = "\n".join(lines[max(0, index - 6) : index])
        assert "#" in preceding, f"line {index + 1}: Resource \"*\" without a comment saying why"


def test_principal_wildcards_only_deny(template: dict[str, Any]) -> None:
    for logical_id, statement in _statements(template):
        if statement.get("Principal") == "*":
            assert statement["Effect"] == "Deny", logical_id
