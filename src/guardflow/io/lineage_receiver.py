"""Delivery of serialized OpenLineage events to one HTTP endpoint, and what the endpoint answered.

Our own poster rather than the openlineage client's HTTP transport because spooled events are already JSON on
disk; it sends the same headers and body, so the receiver sees the same bytes either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

DEFAULT_ENDPOINT = "api/v1/lineage"
# Statuses that say the event itself is wrong: resending it would never succeed and would hold back every
# event behind it, so it is set aside in `rejected/`. Any other non-2xx (5xx, 429, a 401 while a key is
# fixed, a 404 while Marquez deploys) is worth another try later.
_REJECTED_STATUSES = frozenset({400, 413, 415, 422})


def endpoint_url(url: str, endpoint: str = DEFAULT_ENDPOINT) -> str:
    """The address events are POSTed to, joined the way the openlineage client joins it."""
    return urljoin(url.strip(), endpoint)


class NotDelivered(Exception):
    """An event the receiver did not acknowledge, with what it said (or why it could not be reached)."""


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY_LATER = "retry later"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    detail: str = ""


class HttpReceiver:
    """POSTs serialized events to one endpoint with the headers the openlineage client's HTTP transport sends.

    Our own poster rather than the client's transport because spooled events are already JSON on disk; the
    body is `Serde.to_json(event)` either way, so the receiver sees the same bytes.
    """

    def __init__(self, url: str, endpoint: str, timeout: float) -> None:
        self.target = endpoint_url(url, endpoint)
        self._timeout = timeout
        self._session: Any = None

    def post(self, body: bytes) -> Attempt:
        headers = {"Content-Type": "application/json"}
        if api_key := os.environ.get("OPENLINEAGE_API_KEY"):
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            response = self._session_for_first_use().post(
                self.target, data=body, headers=headers, timeout=(self._timeout, self._timeout)
            )
            response.close()
        except requests.RequestException as error:
            return Attempt(Outcome.RETRY_LATER, f"{type(error).__name__}: {error}")
        if 200 <= response.status_code < 300:
            return Attempt(Outcome.DELIVERED)
        detail = f"HTTP {response.status_code} {response.reason}"
        if response.status_code in _REJECTED_STATUSES:
            return Attempt(Outcome.REJECTED, detail)
        return Attempt(Outcome.RETRY_LATER, detail)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _session_for_first_use(self) -> Any:
        if self._session is None:
            # One retry, of connecting only: a refused connection never reached the receiver, while a
            # timed-out read may have been stored, and resending it would make a duplicate.
            retry = Retry(total=1, connect=1, read=0, status=0, other=0, backoff_factor=0.2)
            session = requests.Session()
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            self._session = session
        return self._session
