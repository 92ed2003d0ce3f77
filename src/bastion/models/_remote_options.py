"""What a `RemoteModel`'s mapping options mean: where the inputs go in the request, where
the answer lies in the response, and which API keys it rotates. Parsed once, when the model
is built; every error names the option and never a secret's value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import check_bool, check_type, fail

__all__ = ["Request", "Response", "parse_keys", "parse_request", "parse_response"]

_REQUEST_KEYS = {"key", "flatten", "extra"}
_RESPONSE_KEYS = {"key", "holds", "probabilities", "classes"}


def _path(name: str, value: Any) -> tuple[str, ...]:
    check_type(name, value, str)
    parts = tuple(value.split("."))
    if not all(parts):
        raise fail(name, "a dotted key path such as 'result.scores'", value)
    return parts


def _check_keys(name: str, mapping: Any, allowed: set[str]) -> Mapping[str, Any]:
    if mapping is None:
        return {}
    spec: Mapping[str, Any] = check_type(name, mapping, Mapping, "a mapping")
    if set(spec) - allowed:
        raise fail(name, f"a mapping with keys among {sorted(allowed)}", dict(spec))
    return spec


@dataclass(frozen=True)
class Request:
    """Where the rows go in the request body (``path``), flattened or not, beside ``extra``."""

    path: tuple[str, ...]
    flatten: bool
    extra: Mapping[str, Any]

    def body(self, rows: list[Any]) -> dict[str, Any]:
        """The JSON body carrying ``rows``."""
        payload: dict[str, Any] = copy.deepcopy(dict(self.extra))
        node = payload
        for part in self.path[:-1]:
            child = node.get(part)
            node[part] = child = child if isinstance(child, dict) else {}
            node = child
        node[self.path[-1]] = rows
        return payload


@dataclass(frozen=True)
class Response:
    """Where the answer lies in the response (``path``) and what it holds."""

    path: tuple[str, ...]
    holds: Access
    probabilities: bool
    classes: Mapping[Any, int] | None


def parse_request(mapping: Any) -> Request:
    """The ``request=`` option of `RemoteModel`, checked."""
    spec = _check_keys("request", mapping, _REQUEST_KEYS)
    extra = spec.get("extra", {})
    check_type("request['extra']", extra, Mapping, "a mapping of constant JSON fields")
    return Request(
        path=_path("request['key']", spec.get("key", "inputs")),
        flatten=check_bool("request['flatten']", spec.get("flatten", False)),
        extra=dict(extra),
    )


def parse_response(mapping: Any, access: Access) -> Response:
    """The ``response=`` option of `RemoteModel`, checked against its ``access``."""
    spec = _check_keys("response", mapping, _RESPONSE_KEYS)
    holds = Access.parse(spec.get("holds", access.value), "response['holds']")
    if holds is Access.GRADIENTS:
        raise fail("response['holds']", "'scores' or 'labels'", holds.value)
    if access is Access.SCORES and holds is Access.LABELS:
        raise fail("access", "'labels' when the response holds labels", access.value)
    classes = spec.get("classes")
    index = None
    if classes is not None:
        if holds is not Access.LABELS or not isinstance(classes, (list, tuple)):
            raise fail(
                "response['classes']", "a list of class names, for a label response", classes
            )
        index = {c: i for i, c in enumerate(classes)}
    return Response(
        path=_path("response['key']", spec.get("key", holds.value)),
        holds=holds,
        probabilities=check_bool("response['probabilities']", spec.get("probabilities", False)),
        classes=index,
    )


def parse_keys(keys: Any, header: Any, scheme: Any, headers: Mapping[str, str]) -> tuple[str, ...]:
    """The rotating API keys, checked without ever putting one in a message."""
    check_type("api_key_header", header, str)
    check_type("api_key_scheme", scheme, str)
    if keys is None:
        return ()
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence) or not keys:
        raise ValidationError(
            "Expected api_keys to be a non-empty list of strings, "
            f"but got {type(keys).__name__}{'' if keys else ' (empty)'}"
        )
    bad = [i for i, k in enumerate(keys) if not isinstance(k, str) or not k or k != k.strip()]
    if bad:  # positions, never values
        raise ValidationError(
            f"Expected every api_keys entry to be a non-empty string without surrounding "
            f"spaces, but entries {bad} are not"
        )
    if not header or header.lower() in {h.lower() for h in headers}:
        raise fail("api_key_header", "a header name not also given in headers", header)
    return tuple(keys)
