"""Reads a SAM/CloudFormation template (short tags included) and resolves the intrinsic functions in it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PSEUDO_ACCOUNT_ID = "123456789012"  # moto's default account
NO_VALUE = object()  # what AWS::NoValue resolves to; dropped from the enclosing map or list


class TemplateError(Exception):
    """The template cannot be read or a value in it cannot be resolved locally."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's short tags and leaves dates as strings."""


# CloudFormation reads "2010-09-09" as a string; PyYAML would make it a date.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_SHORT_TAGS = (
    "Ref",
    "Condition",
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
    "ToJsonString",
    "Length",
)


def _construct_tag(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


def _constructor(tag_suffix: str) -> Callable[[yaml.Loader, yaml.Node], dict[str, Any]]:
    return lambda loader, node: _construct_tag(loader, tag_suffix, node)


for _name in _SHORT_TAGS:
    _CfnLoader.add_constructor(f"!{_name}", _constructor(_name))


def load_template(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return document


@dataclass
class Physical:
    """What a resource looks like once it exists: its Ref value and its GetAtt attributes."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """Everything intrinsic functions may refer to."""

    region: str
    stack_name: str
    parameters: dict[str, Any]
    conditions: dict[str, bool] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Physical] = field(default_factory=dict)
    account_id: str = PSEUDO_ACCOUNT_ID

    def pseudo(self, name: str) -> Any:
        values = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return values[name]


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Each parameter's value: the override, else the default; a parameter with neither is an error."""
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name in overrides:
            raw: Any = overrides.pop(name)
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default; pass it as a parameter override")
        kind = str(spec.get("Type", "String"))
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            values[name] = raw if isinstance(raw, list) else [part.strip() for part in str(raw).split(",")]
        else:
            values[name] = scalar_string(raw)
    if overrides:
        raise TemplateError(f"unknown parameters: {', '.join(sorted(overrides))}")
    return values


def scalar_string(value: Any) -> str:
    """A scalar as CloudFormation passes it on: YAML true is "true", 30 is "30"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TemplateError(f"expected a scalar, got {value!r}")


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Resolves intrinsic functions against a Context; raises TemplateError on what it cannot resolve."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            resolved = [self._resolve(item) for item in value]
            return [item for item in resolved if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = self._functions().get(key)
            if handler is not None:
                return handler(argument)
        items = {key: self._resolve(item) for key, item in value.items()}
        return {key: item for key, item in items.items() if item is not NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::If": self._if,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
            "Fn::ToJsonString": lambda arg: json.dumps(self._resolve(arg), separators=(",", ":")),
            "Fn::Equals": lambda arg: self.condition({"Fn::Equals": arg}),
            "Fn::And": lambda arg: self.condition({"Fn::And": arg}),
            "Fn::Or": lambda arg: self.condition({"Fn::Or": arg}),
            "Fn::Not": lambda arg: self.condition({"Fn::Not": arg}),
        }

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref takes a name, got {name!r}")
        if name.startswith("AWS::"):
            return self.context.pseudo(name)
        if name in self.context.parameters:
            return self.context.parameters[name]
        if name in self.context.resources:
            return self.context.resources[name].ref
        raise TemplateError(f"Ref {name}: no such parameter, or the resource does not exist (yet)")

    def _get_att(self, argument: Any) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"GetAtt takes [resource, attribute], got {argument!r}")
        logical_id, attribute = argument[0], self._resolve(argument[1])
        physical = self.context.resources.get(logical_id)
        if physical is None:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: the resource does not exist (yet)")
        if attribute not in physical.attrs:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: attribute not emulated locally")
        return physical.attrs[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str):
            text, variables = argument[0], {key: self._resolve(item) for key, item in argument[1].items()}
        else:
            raise TemplateError(f"Sub takes a string or [string, map], got {argument!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return scalar_string(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att([logical_id, attribute])
            return scalar_string(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _join(self, argument: Any) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Join takes [delimiter, list], got {argument!r}")
        delimiter, items = argument[0], self._resolve(argument[1])
        if not isinstance(items, list):
            raise TemplateError(f"Join needs a list, got {items!r}")
        return str(delimiter).join(scalar_string(item) for item in items)

    def _if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"If takes [condition, then, else], got {argument!r}")
        name, when_true, when_false = argument
        return self._resolve(when_true if self.condition({"Condition": name}) else when_false)

    def _select(self, argument: Any) -> Any:
        index, items = self._resolve(argument[0]), self._resolve(argument[1])
        return items[int(index)]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument[0], self._resolve(argument[1])
        return str(text).split(str(delimiter))

    def _find_in_map(self, argument: Any) -> Any:
        name, top, second = (self._resolve(item) for item in argument[:3])
        try:
            return self.context.mappings[name][top][second]
        except KeyError as exc:
            raise TemplateError(f"FindInMap {name}.{top}.{second}: not in Mappings") from exc

    def _base64(self, argument: Any) -> str:
        return base64.b64encode(str(self._resolve(argument)).encode()).decode()

    def condition(self, expression: Any) -> bool:
        """Evaluates a condition expression (Equals, And, Or, Not, or a named condition)."""
        if isinstance(expression, bool):
            return expression
        if not (isinstance(expression, dict) and len(expression) == 1):
            raise TemplateError(f"not a condition: {expression!r}")
        ((key, argument),) = expression.items()
        if key == "Condition":
            if argument not in self.context.conditions:
                raise TemplateError(f"unknown condition {argument}")
            return self.context.conditions[argument]
        if key == "Fn::Equals":
            left, right = (self._resolve(item) for item in argument)
            return scalar_string(left) == scalar_string(right)
        if key == "Fn::And":
            return all(self.condition(item) for item in argument)
        if key == "Fn::Or":
            return any(self.condition(item) for item in argument)
        if key == "Fn::Not":
            return not self.condition(argument[0])
        raise TemplateError(f"not a condition function: {key}")


def evaluate_conditions(template: Mapping[str, Any], context: Context) -> dict[str, bool]:
    """Evaluates the template's Conditions section in dependency order (a condition may name another)."""
    pending = dict(template.get("Conditions") or {})
    resolver = Resolver(context)
    while pending:
        progressed = False
        for name, expression in list(pending.items()):
            try:
                context.conditions[name] = resolver.condition(expression)
            except TemplateError:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise TemplateError(f"cannot evaluate conditions: {', '.join(sorted(pending))}")
    return context.conditions


def references(value: Any) -> Iterator[str]:
    """Logical ids a value refers to through Ref, GetAtt or Sub (pseudo parameters excluded)."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" and isinstance(argument, str) and not argument.startswith("AWS::"):
                yield argument
                return
            if key == "Fn::GetAtt" and isinstance(argument, list) and argument:
                yield str(argument[0])
                return
            if key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                local = set(argument[1]) if isinstance(argument, list) else set()
                for name in _SUB_VARIABLE.findall(text):
                    if not name.startswith(("!", "AWS::")) and name not in local:
                        yield name.split(".", 1)[0]
                if isinstance(argument, list):
                    yield from references(argument[1])
                return
        for item in value.values():
            yield from references(item)
