"""Evaluation of the definition's expressions: `Get`, `Std:Join`, `Std:JsonGet` and conditions.

Property paths are the ones the SDK writes, e.g. `ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`:
a quoted key applied to a list picks the element whose `...Name` field has that value (OutputName,
ChannelName, MetricName), as the service does; on a dict it is a plain key.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda left, right: left == right,
    "GreaterThan": lambda left, right: left > right,
    "GreaterThanOrEqualTo": lambda left, right: left >= right,
    "LessThan": lambda left, right: left < right,
    "LessThanOrEqualTo": lambda left, right: left <= right,
}


class EvaluationError(ValueError):
    """An expression cannot be evaluated (missing property, unreadable property file, bad path)."""


@dataclass
class Scope:
    """What expressions of one execution can read."""

    parameters: dict[str, Any]
    execution: dict[str, str]
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)  # step name -> its properties
    property_files: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # step -> name -> spec
    read_text: Callable[[str], str] = lambda uri: ""  # reads an s3:// URI


class Evaluator:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._documents: dict[str, Any] = {}

    def resolve(self, node: Any, local: dict[str, str] | None = None) -> Any:
        """A JSON fragment with every expression replaced by its value (`local`: per-step variables)."""
        if isinstance(node, dict):
            if len(node) == 1:
                (key, value), = node.items()
                if key == "Get" and isinstance(value, str):
                    return self.get(value, local or {})
                if key == "Std:Join":
                    return str(value.get("On", "")).join(text(self.resolve(item, local)) for item in value.get("Values", []))
                if key == "Std:JsonGet":
                    return self._json_get(value, local)
            return {key: self.resolve(value, local) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item, local) for item in node]
        return node

    def get(self, reference: str, local: dict[str, str] | None = None) -> Any:
        root, _, rest = reference.partition(".")
        if root == "Parameters":
            return self.scope.parameters[rest]
        if root == "Execution":
            value = (local or {}).get(rest, self.scope.execution.get(rest))
            if value is None:
                raise EvaluationError(f"execution variable {rest} has no value here")
            return value
        step, _, path = rest.partition(".")
        if step not in self.scope.properties:
            raise EvaluationError(f"step '{step}' has not run in this execution, so '{reference}' has no value")
        return walk(self.scope.properties[step], path, what=f"properties of step '{step}'")

    def condition(self, condition: dict[str, Any]) -> bool:
        kind = condition.get("Type")
        if kind in _COMPARISONS:
            left, right = _comparable(self.resolve(condition.get("LeftValue")), self.resolve(condition.get("RightValue")))
            try:
                return _COMPARISONS[kind](left, right)
            except TypeError:
                raise EvaluationError(f"{kind} cannot compare {left!r} with {right!r}") from None
        if kind == "In":
            query = self.resolve(condition.get("QueryValue"))
            pairs = (_comparable(query, self.resolve(value)) for value in condition.get("Values", []))
            return any(left == right for left, right in pairs)
        if kind == "Not":
            return not self.condition(condition.get("Condition") or condition.get("Expression") or {})
        if kind == "Or":
            return any(self.condition(item) for item in condition.get("Conditions", []))
        raise EvaluationError(f"condition type '{kind}' is not supported")

    def _json_get(self, spec: dict[str, Any], local: dict[str, str] | None) -> Any:
        path = str(self.resolve(spec.get("Path", ""), local))
        reference = spec.get("PropertyFile")
        if reference is not None:
            uri = self._property_file_uri(reference)
        else:
            uri = text(self.resolve(spec.get("S3Uri"), local))
        if uri not in self._documents:
            try:
                self._documents[uri] = json.loads(self.scope.read_text(uri))
            except ValueError as err:
                raise EvaluationError(f"property file {uri} is not JSON: {err}") from None
        return walk(self._documents[uri], path.removeprefix("$").lstrip("."), what=f"property file {uri}")

    def _property_file_uri(self, reference: Any) -> str:
        """`{"Get": "Steps.S.PropertyFiles.N"}` -> the S3 URI of file N in step S's output."""
        get = reference.get("Get", "") if isinstance(reference, dict) else str(reference)
        parts = get.split(".")
        if len(parts) != 4 or parts[0] != "Steps" or parts[2] != "PropertyFiles":
            raise EvaluationError(f"Std:JsonGet PropertyFile '{get}' is not Steps.<step>.PropertyFiles.<name>")
        step, name = parts[1], parts[3]
        spec = self.scope.property_files.get(step, {}).get(name)
        if spec is None:
            raise EvaluationError(f"step '{step}' declares no property file '{name}'")
        output_uri = self.get(f"Steps.{step}.ProcessingOutputConfig.Outputs['{spec['OutputName']}'].S3Output.S3Uri")
        return f"{str(output_uri).rstrip('/')}/{spec['FilePath'].lstrip('/')}"


def walk(document: Any, path: str, what: str) -> Any:
    """Follow a property path (`A.B['k'][0].C`) into a document."""
    position, value = 0, document
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise EvaluationError(f"cannot parse path '{path}' at '{path[position:]}'")
        name, index, quoted, double_quoted = match.groups()
        key = name if name is not None else quoted if quoted is not None else double_quoted
        value = _step_into(value, key, int(index) if index is not None else None, path, what)
        position = match.end()
    return value


def text(value: Any) -> str:
    """A value as Std:Join and job arguments see it (booleans as JSON does)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _step_into(value: Any, key: str | None, index: int | None, path: str, what: str) -> Any:
    try:
        if index is not None:
            return value[index]
        if isinstance(value, list):
            return next(item for item in value if isinstance(item, dict) and any(
                field_name.endswith("Name") and field_value == key for field_name, field_value in item.items()))
        return value[key]
    except (KeyError, IndexError, TypeError, StopIteration):
        raise EvaluationError(f"'{path}' does not exist in {what} (no '{key if index is None else index}')") from None


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Numbers compare as numbers even when one side arrives as text (a String parameter, a JSON value)."""
    if isinstance(left, (int, float)) != isinstance(right, (int, float)):
        try:
            return float(left), float(right)
        except (TypeError, ValueError):
            return left, right
    return left, right
