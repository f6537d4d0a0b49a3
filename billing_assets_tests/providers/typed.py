"""Request and response bodies held to the providers' published types: Stripe's SDK classes and
parameter TypedDicts are generated from its OpenAPI spec (the spec file itself is too large for
this project's snapshot of stripe/openapi; its fixtures3.json is there and agrees), Orb's SDK
types are its published pydantic models. A fake that answers with a field missing or of the
wrong type, or a client that sends one, fails the test."""

from __future__ import annotations

import sys
import types
import typing
from datetime import date, datetime
from typing import Annotated, Any, ForwardRef, Literal, NotRequired, Required, Union, get_args, get_origin

import pydantic


def _hints(cls: type) -> dict[str, Any]:
    """Each annotated field's type, resolved one by one (a name the SDK imports only for type
    checkers stands for Any, not for an error)."""
    hints: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        namespace = vars(sys.modules[base.__module__]) if base.__module__ in sys.modules else {}
        for key, annotation in vars(base).get("__annotations__", {}).items():
            try:
                reference = ForwardRef(annotation) if isinstance(annotation, str) else annotation
                hints[key] = typing._eval_type(reference, namespace, None)
            except Exception:
                text = annotation if isinstance(annotation, str) else repr(annotation)
                hints[key] = typing.Optional[Any] if "Optional[" in text or "None" in text else Any
    return hints


def _matches(value: Any, hint: Any, where: str) -> list[str]:
    origin = get_origin(hint)
    if hint is Any or hint is object:
        return []
    if origin in (NotRequired, Required, Annotated):
        return _matches(value, get_args(hint)[0], where)
    if origin in (Union, types.UnionType):
        options = [_matches(value, option, where) for option in get_args(hint)]
        return [] if any(not problems for problems in options) else [f"{where}: {value!r} is none of {hint}"]
    if hint is type(None):
        return [] if value is None else [f"{where}: {value!r} is not null"]
    if origin is Literal:
        return [] if value in get_args(hint) else [f"{where}: {value!r} is not one of {get_args(hint)}"]
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not a list"]
        return [problem for index, item in enumerate(value) for problem in _matches(item, get_args(hint)[0], f"{where}[{index}]")]
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        return [problem for key, item in value.items() for problem in _matches(item, get_args(hint)[1], f"{where}.{key}")]
    if isinstance(hint, type) and typing.is_typeddict(hint):
        return typed_dict_problems(value, hint, where)
    if hint is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{where}: {value!r} is not a number"]
    if hint is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: {value!r} is not an integer"]
    if isinstance(hint, type) and hint in (str, bool):
        return [] if isinstance(value, hint) else [f"{where}: {value!r} is not {hint.__name__}"]
    return []  # a nested SDK object or a string-keyed alias: its own test covers it


def typed_dict_problems(value: Any, typed: type, where: str = "body") -> list[str]:
    """What in ``value`` breaks the TypedDict ``typed``: a required key missing, an unknown key,
    a value of the wrong type."""
    if not isinstance(value, dict):
        return [f"{where}: {value!r} is not an object"]
    hints = _hints(typed)
    required = set(typed.__required_keys__)
    problems = [f"{where}.{key}: required, missing" for key in sorted(required - set(value))]
    problems += [f"{where}.{key}: not in {typed.__name__}" for key in sorted(set(value) - set(hints))]
    for key in sorted(set(value) & set(hints)):
        problems += _matches(value[key], hints[key], f"{where}.{key}")
    return problems


def resource_problems(value: dict, resource: type, where: str = "response") -> list[str]:
    """What in a response object breaks the Stripe resource class's annotated fields: a field
    that cannot be null missing, or a field of the wrong type."""
    hints = {key: hint for key, hint in _hints(resource).items()
             if not key.startswith("_") and get_origin(hint) is not typing.ClassVar}
    nullable = {key for key, hint in hints.items() if type(None) in get_args(hint)}
    problems = [f"{where}.{key}: missing" for key in sorted(set(hints) - set(value) - nullable)]
    for key in sorted(set(hints) & set(value)):
        problems += _matches(value[key], hints[key], f"{where}.{key}")
    return problems


def wire_names(typed: type) -> dict[str, str]:
    """The TypedDict's keys by the name they travel under (Orb's ``invoice_date[gte]`` is the
    key ``invoice_date_gte``)."""
    names = {}
    for key, hint in _hints(typed).items():
        while get_origin(hint) in (NotRequired, Required):
            hint = get_args(hint)[0]
        alias = next((getattr(meta, "alias", None) for meta in getattr(hint, "__metadata__", ())
                      if getattr(meta, "alias", None)), None)
        names[alias or key] = key
    return names


def query_problems(query: dict, typed: type, where: str = "query") -> list[str]:
    """A query string's parameters the TypedDict does not name (its values are all text)."""
    return [f"{where}.{name}: not in {typed.__name__}" for name in sorted(set(query) - set(wire_names(typed)))]


def model_problems(value: dict, model: type[pydantic.BaseModel], where: str = "response") -> list[str]:
    """What in a response object breaks the SDK's pydantic model."""
    try:
        model.model_validate(value)
        return []
    except pydantic.ValidationError as error:
        return [f"{where} as {model.__name__}: {problem['loc']} {problem['msg']}" for problem in error.errors()]


def sample(hint: Any) -> Any:
    """The smallest value of ``hint`` a model accepts: every required field of a model filled,
    optional ones left out; a test sets the fields it cares about on top."""
    origin, arguments = get_origin(hint), get_args(hint)
    if origin in (Annotated, Required, NotRequired):
        return sample(arguments[0])
    if origin in (Union, types.UnionType):
        return None if type(None) in arguments else sample(arguments[0])
    if origin is Literal:
        return arguments[0]
    if origin in (list, typing.List):  # noqa: UP006
        return []
    if origin in (dict, typing.Dict):  # noqa: UP006
        return {}
    if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
        return {field.alias or name: sample(field.annotation) for name, field in hint.model_fields.items()
                if field.is_required()}
    return {str: "x", int: 0, float: 0.0, bool: False, datetime: "2026-01-01T00:00:00Z",
            date: "2026-01-01"}.get(hint)
