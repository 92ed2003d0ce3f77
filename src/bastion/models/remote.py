"""Adapter for a classifier behind an HTTP JSON endpoint: the outsider's view of a model.

``httpx`` is imported when a `RemoteModel` is built, never at ``import bastion.models``.
Every network fault and every malformed answer becomes a `RemoteModelError` naming the
endpoint and what was expected; header values (API keys, tokens) never appear in a repr
or an error message.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bastion.core.errors import AccessError, RemoteModelError, ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import check_int, check_number, check_type, fail
from bastion.models._common import check_label_array, check_score_array
from bastion.models._remote_options import parse_keys, parse_request, parse_response
from bastion.models.base import BaseModel
from bastion.models.counter import QueryCounter

if TYPE_CHECKING:
    import httpx

__all__ = ["RemoteModel"]


class RemoteModel(BaseModel):
    """A classifier behind ``POST url`` with JSON in and JSON out.

    By default each batch is sent as ``{"inputs": [[...], ...]}`` (one nested list per
    sample) and the answer is read from ``"scores"`` (a list of ``num_classes`` numbers per
    sample) or ``"labels"`` (one int per sample).

    Args:
        url: the endpoint, ``http://`` or ``https://``.
        input_shape: one sample's shape.
        num_classes: how many classes the endpoint tells apart.
        bounds: valid input range.
        access: what an attacker may read: ``"scores"`` or ``"labels"``.
        request: how to build the body: ``key`` (dotted path for the batch, default
            ``"inputs"``), ``flatten`` (send each sample as a flat list; default False),
            ``extra`` (constant fields added to every body).
        response: how to read the answer: ``key`` (dotted path, e.g.
            ``"result.probabilities"``, where ``*`` maps over a list, as in
            ``"predictions.*.label"``; default ``"scores"`` or ``"labels"``), ``holds``
            (``"scores"`` or ``"labels"``; default ``access``), ``probabilities`` (scores
            are probabilities; default False), ``classes`` (class names the labels may come
            as, mapped to indices in this order).
        headers: sent with every request (e.g. an ``Authorization`` token); treated as secret.
        api_keys: keys used in turn, one per request (round-robin; a retry keeps its key), as
            ``api_key_header: "{api_key_scheme} KEY"``: a caller spreading its queries over
            several accounts. Treated as secret.
        api_key_header: the header that carries a key from ``api_keys``.
        api_key_scheme: the word before the key (``""`` sends the bare key).
        timeout: seconds per request.
        retries: extra attempts after a connect error, a timeout or a 5xx answer (never 4xx).
        backoff: seconds before the first retry, doubling after each.
        batch_size, budget, counter: see `BaseModel`.
        transport: an ``httpx`` transport, e.g. ``httpx.MockTransport`` in tests.

    Use it as a context manager, or call `close`, to release the connection pool.
    """

    def __init__(
        self,
        url: str,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        access: Access | str = "scores",
        request: Mapping[str, Any] | None = None,
        response: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        api_keys: Sequence[str] | None = None,
        api_key_header: str = "Authorization",
        api_key_scheme: str = "Bearer",
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.2,
        batch_size: int = 256,
        budget: int | None = None,
        counter: QueryCounter | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        super().__init__(
            input_shape=tuple(input_shape) if isinstance(input_shape, list) else input_shape,  # type: ignore[arg-type]
            num_classes=num_classes,
            bounds=bounds,
            batch_size=batch_size,
            budget=budget,
            counter=counter,
        )
        self.access = Access.parse(access)
        if self.access is Access.GRADIENTS:
            raise fail("access", "'scores' or 'labels' (an endpoint gives no gradients)", access)
        self._request = parse_request(request)
        self._response = parse_response(response, self.access)
        self.scores_are_probabilities = self._response.probabilities
        check_type("url", url, str)
        try:
            parsed = httpx.URL(url)
        except Exception as exc:
            raise fail("url", "an http:// or https:// URL", url) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise fail("url", "an http:// or https:// URL", url)
        header_map = dict(check_type("headers", headers or {}, Mapping, "a mapping"))
        bad = [
            str(k) for k, v in header_map.items() if not (isinstance(k, str) and isinstance(v, str))
        ]
        if bad:  # name the headers, never their values
            raise ValidationError(f"Expected headers to map names to strings, but {bad} do not")
        self._keys = parse_keys(api_keys, api_key_header, api_key_scheme, header_map)
        self._next_key = itertools.cycle(self._keys)  # next() on a cycle is one atomic step
        # Whatever may carry a credential is redacted from messages. Values under 4 characters
        # hold no real secret, and redacting them would garble numbers in the messages.
        candidates = {*header_map.values(), *(v for _, v in parsed.params.multi_items())}
        candidates.update(self._keys)
        candidates.add(parsed.password or "")
        self._secrets = sorted((v for v in candidates if len(v) >= 4), key=len, reverse=True)
        port = f":{parsed.port}" if parsed.port else ""
        self.url = f"{parsed.scheme}://{parsed.host}{port}{parsed.path}" + (
            "?…" if parsed.query else ""
        )
        self._target = url
        self._header_names = sorted(header_map)
        self._key_header = api_key_header
        self._key_prefix = f"{api_key_scheme} " if api_key_scheme else ""
        self.timeout = check_number("timeout", timeout, low=0.0, low_open=True)
        self.retries = check_int("retries", retries, low=0)
        self.backoff = check_number("backoff", backoff, low=0.0)
        self._httpx = httpx
        self._client = httpx.Client(
            headers=header_map, timeout=self.timeout, transport=transport, follow_redirects=False
        )

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connection pool; later queries raise `RemoteModelError`."""
        self._client.close()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the wire --------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, message: str) -> RemoteModelError:
        return RemoteModelError(self._redact(f"Remote model {self.url}: {message}"))

    def _preview(self, text: str) -> str:
        text = self._redact(text.strip())
        return repr(text if len(text) <= 120 else text[:117] + "...")

    def _post(self, payload: dict[str, Any]) -> Any:
        httpx = self._httpx
        attempts = self.retries + 1
        problem, cause = "", None
        headers = None
        if self._keys:  # the next account's key, kept for this request's retries
            headers = {self._key_header: self._key_prefix + next(self._next_key)}
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                answer = self._client.post(self._target, json=payload, headers=headers)
            except httpx.TimeoutException as exc:
                problem, cause = f"timed out (timeout {self.timeout:g}s)", exc
                continue
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem, cause = f"could not be reached ({type(exc).__name__})", exc
                continue
            except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: client closed
                raise self._error(f"request failed: {type(exc).__name__}: {exc}") from exc
            if answer.status_code >= 500:
                problem, cause = f"answered HTTP {answer.status_code}", None
                continue
            if not 200 <= answer.status_code < 300:
                raise self._error(
                    f"expected HTTP 2xx, but got HTTP {answer.status_code} "
                    f"{answer.reason_phrase} with body {self._preview(answer.text)}"
                )
            try:
                return answer.json()
            except ValueError as exc:
                raise self._error(
                    f"expected a JSON body, but got {self._preview(answer.text)}"
                ) from exc
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        raise self._error(f"{problem}; gave up after {tries}") from cause

    def _extract(self, node: Any, depth: int = 0) -> Any:
        """Follow the response path from ``depth``; ``*`` maps the rest over a list."""
        parts = self._response.path
        for i in range(depth, len(parts)):
            part = parts[i]
            if part == "*" and isinstance(node, list):
                return [self._extract(item, i + 1) for item in node]
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                where = ".".join(parts[: i + 1])
                got = (
                    f"keys {sorted(map(str, node))[:10]}"
                    if isinstance(node, dict)
                    else (type(node).__name__)
                )
                raise self._error(
                    f"expected the response to hold '{'.'.join(parts)}', but '{where}' is "
                    f"missing (found {got})"
                )
        return node

    def _query(self, x: torch.Tensor) -> Any:
        batch = x.detach().cpu()
        if self._request.flatten:
            batch = batch.reshape(batch.shape[0], -1)
        return self._extract(self._post(self._request.body(batch.tolist())))

    # --- BaseModel -------------------------------------------------------------------------
    def _answer_scores(self, x: torch.Tensor) -> torch.Tensor:
        node, n, k = self._query(x), x.shape[0], self.num_classes
        key = ".".join(self._response.path)
        expected = f"expected '{key}' to be a list of {n} lists of {k} numbers"
        if not isinstance(node, list) or not all(isinstance(row, list) for row in node):
            raise self._error(f"{expected}, but got {self._preview(repr(node))}")
        if len(node) != n:
            raise self._error(f"{expected}, but got {len(node)} lists")
        for i, row in enumerate(node):
            if len(row) != k:
                raise self._error(f"{expected}, but list {i} holds {len(row)} values")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
                raise self._error(f"{expected}, but list {i} is {self._preview(repr(row))}")
        try:
            scores = check_score_array(f"'{key}'", node, n, k)
        except ValidationError as exc:
            raise self._error(str(exc).replace("Expected", "expected", 1)) from exc
        return torch.from_numpy(scores).to(torch.float32)

    def _answer_labels(self, x: torch.Tensor) -> torch.Tensor:
        node, n = self._query(x), x.shape[0]
        key = ".".join(self._response.path)
        classes = self._response.classes
        if not isinstance(node, list) or any(isinstance(v, bool) for v in node):
            raise self._error(
                f"expected '{key}' to be a list of {n} labels, but got {self._preview(repr(node))}"
            )
        if classes is not None:
            unknown = [v for v in node if not isinstance(v, (str, int, float)) or v not in classes]
            if unknown:
                raise self._error(
                    f"expected '{key}' to hold labels among {list(classes)}, "
                    f"but got {self._preview(repr(unknown[0]))}"
                )
            node = [classes[v] for v in node]
        if not all(isinstance(v, (int, float)) for v in node):
            raise self._error(
                f"expected '{key}' to hold integer labels, but got {self._preview(repr(node))}"
            )
        try:
            labels = check_label_array(f"'{key}'", np.asarray(node), n, self.num_classes)
        except ValidationError as exc:
            raise self._error(str(exc).replace("Expected", "expected", 1)) from exc
        return torch.from_numpy(labels)

    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.access is not Access.SCORES:
            raise AccessError("scores need 'scores' access, but this model grants only 'labels'")
        return self._answer_scores(x)

    def _labels_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self._response.holds is Access.LABELS:
            return self._answer_labels(x)
        return self._answer_scores(x).argmax(dim=1)

    def __repr__(self) -> str:
        return (
            f"RemoteModel({self.url!r}, access={self.access.value!r}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"bounds={self.bounds}, headers={self._header_names}"
            + (f", api_keys={len(self._keys)}" if self._keys else "")
            + ")"
        )
