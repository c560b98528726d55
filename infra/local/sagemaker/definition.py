"""Pipeline definition JSON (the document the SDK's `Pipeline.definition()` produces), parsed and checked.

A definition is checked when it is stored (CreatePipeline/UpdatePipeline), so a broken one is a
ValidationException at upsert time, as on AWS, and the executor can walk a graph it trusts:
every step named once, every `Get` pointing at a declared parameter or step, no cycle.
Steps nested in a Condition step's IfSteps/ElseSteps are steps of the graph too; they depend on
their Condition step and run only when their branch is taken.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from infra.local.sagemaker.exceptions import ValidationException

PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES = (
    "PipelineExecutionId",
    "PipelineExecutionArn",
    "PipelineName",
    "PipelineArn",
    "StartDateTime",
    "CurrentDateTime",
    "TrainingJobName",
    "ProcessingJobName",
)
_BRANCHES = (("IfSteps", True), ("ElseSteps", False))


@dataclass(frozen=True)
class StepSpec:
    """One step of the graph: its JSON body and what must finish before it."""

    name: str
    type: str
    body: dict[str, Any]
    depends_on: frozenset[str]
    condition: str | None = None  # the Condition step whose branch holds this step
    branch: bool | None = None  # True: IfSteps, False: ElseSteps


@dataclass(frozen=True)
class PipelineDefinition:
    parameters: dict[str, dict[str, Any]]
    steps: dict[str, StepSpec]  # in definition order

    def order(self) -> list[StepSpec]:
        """Steps in a dependency-respecting order, definition order among the ready ones."""
        done: set[str] = set()
        ordered: list[StepSpec] = []
        pending = list(self.steps.values())
        while pending:
            ready = next(step for step in pending if step.depends_on <= done)
            pending.remove(ready)
            done.add(ready.name)
            ordered.append(ready)
        return ordered

    def parameter_defaults(self) -> dict[str, Any]:
        return {name: spec.get("DefaultValue") for name, spec in self.parameters.items()}


def parse_definition(text: str) -> PipelineDefinition:
    """Parse and check a definition; every problem is a ValidationException that says what is wrong."""
    try:
        document = json.loads(text)
    except (TypeError, json.JSONDecodeError) as err:
        raise ValidationException(f"PipelineDefinition is not valid JSON: {err}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Steps"), list):
        raise ValidationException("PipelineDefinition must be a JSON object with a 'Steps' list")
    parameters = _parse_parameters(document.get("Parameters", []))
    steps: dict[str, StepSpec] = {}
    for step in _flatten(document["Steps"], condition=None, branch=None):
        if step.name in steps:
            raise ValidationException(f"PipelineDefinition has two steps named '{step.name}'")
        steps[step.name] = step
    _check_references(document, parameters, steps)
    definition = PipelineDefinition(parameters=parameters, steps=steps)
    _check_acyclic(definition)
    return definition


def coerce_parameter(name: str, type_name: str, value: Any) -> Any:
    """A parameter value (an override arrives as a string) as the type the definition declares."""
    try:
        if type_name == "Integer":
            return int(value)
        if type_name == "Float":
            return float(value)
        if type_name == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError(value)
    except (TypeError, ValueError):
        raise ValidationException(
            f"Pipeline parameter '{name}' is of type {type_name}; value '{value}' is not a valid {type_name}"
        ) from None
    return str(value)


def step_references(node: Any) -> Iterator[str]:
    """Names of the steps a JSON fragment reads through `{"Get": "Steps.<name>...."}`."""
    for get in _gets(node):
        if get.startswith("Steps."):
            yield get.split(".", 2)[1]


def _parse_parameters(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, list):
        raise ValidationException("PipelineDefinition 'Parameters' must be a list")
    parameters: dict[str, dict[str, Any]] = {}
    for spec in raw:
        if not isinstance(spec, dict) or not spec.get("Name"):
            raise ValidationException(f"Pipeline parameter without a Name: {spec!r}")
        type_name = spec.get("Type", "String")
        if type_name not in PARAMETER_TYPES:
            raise ValidationException(
                f"Pipeline parameter '{spec['Name']}' has type '{type_name}'; expected one of {', '.join(PARAMETER_TYPES)}"
            )
        if spec["Name"] in parameters:
            raise ValidationException(f"Pipeline parameter '{spec['Name']}' is declared twice")
        parameters[spec["Name"]] = {"Type": type_name, "DefaultValue": spec.get("DefaultValue")}
    return parameters


def _flatten(raw_steps: Any, condition: str | None, branch: bool | None) -> Iterator[StepSpec]:
    if not isinstance(raw_steps, list):
        raise ValidationException(f"Steps of condition '{condition}' must be a list")
    for body in raw_steps:
        if not isinstance(body, dict) or not isinstance(body.get("Name"), str) or not body.get("Type"):
            raise ValidationException(f"Every step needs a 'Name' and a 'Type': {str(body)[:200]}")
        depends = set(body.get("DependsOn") or [])
        own = body.get("Arguments", {}) if body["Type"] != "Condition" else body.get("Arguments", {}).get("Conditions")
        depends.update(step_references(own))
        if condition:
            depends.add(condition)
        yield StepSpec(body["Name"], body["Type"], body, frozenset(depends), condition, branch)
        if body["Type"] == "Condition":
            arguments = body.get("Arguments")
            if not isinstance(arguments, dict) or not isinstance(arguments.get("Conditions"), list):
                raise ValidationException(f"Condition step '{body['Name']}' needs Arguments.Conditions (a list)")
            for key, taken in _BRANCHES:
                yield from _flatten(arguments.get(key, []), body["Name"], taken)


def _check_references(document: dict[str, Any], parameters: dict[str, Any], steps: dict[str, StepSpec]) -> None:
    for get in _gets(document["Steps"]):
        root, _, rest = get.partition(".")
        name = rest.split(".", 1)[0]
        if root == "Parameters" and rest not in parameters:
            raise ValidationException(f"PipelineDefinition reads undefined parameter '{rest}'")
        if root == "Execution" and rest not in EXECUTION_VARIABLES:
            raise ValidationException(f"PipelineDefinition reads unknown execution variable '{rest}'")
        if root == "Steps" and name not in steps:
            raise ValidationException(f"PipelineDefinition reads the properties of undefined step '{name}'")
        if root not in ("Parameters", "Execution", "Steps"):
            raise ValidationException(f"PipelineDefinition has an unsupported Get expression '{get}'")
    for step in steps.values():
        unknown = step.depends_on - steps.keys()
        if unknown:
            raise ValidationException(f"Step '{step.name}' depends on undefined step(s) {sorted(unknown)}")


def _check_acyclic(definition: PipelineDefinition) -> None:
    done: set[str] = set()
    pending = dict(definition.steps)
    while pending:
        ready = [name for name, step in pending.items() if step.depends_on <= done]
        if not ready:
            raise ValidationException(f"PipelineDefinition has a dependency cycle among steps {sorted(pending)}")
        for name in ready:
            done.add(name)
            del pending[name]


def _gets(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("Get"), str) and len(node) == 1:
            yield node["Get"]
            return
        for value in node.values():
            yield from _gets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _gets(value)
