"""Gradio's browser protocol, as the page's JavaScript client speaks it: for tests and the benchmark that need to
see what the page sees (every streamed update, the server's own duration of a step) or to act as many pages at
once (each PageClient is one page: one session for all its events).

`POST /gradio_api/queue/join` puts an event in the queue for this session; `GET /gradio_api/queue/data` is the
session's stream of server-sent events, which carries each event's updates (streamed ones as diffs, applied here).
Components are named as testkit/api.py names them (their elem_id); gr.State inputs are sent as None, as the
page does: the server uses the session's own value.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from testkit.api import component_name


@dataclass
class PageEndpoint:
    fn_index: int
    inputs: list[tuple[str, str, Any]]  # (name, component type, value when the page opens)
    outputs: list[str]


def _name(component: dict[str, Any]) -> str:
    return component_name(component.get("props", {}).get("elem_id")) or f"<{component['type']} {component['id']}>"


class PageClient:
    """One page of the app at `url`: its session, and its events by api_name with values by component name."""

    def __init__(
        self, url: str, timeout: float = 120.0, http: httpx.Client | None = None, deadline: float | None = None
    ) -> None:
        """`timeout`: for each HTTP request; `deadline`: for each event, start to result (TimeoutError after it,
        although the server's heartbeats keep the stream alive)."""
        self.url = url.rstrip("/")
        self.deadline = deadline
        self.http = http or httpx.Client(timeout=timeout)
        self._own_http = http is None
        self.session = uuid.uuid4().hex[:12]
        self._heartbeat: threading.Thread | None = None
        self._beating: socket.socket | None = None
        config = self.http.get(f"{self.url}/config").json()
        components = {component["id"]: component for component in config["components"]}
        self.endpoints: dict[str, PageEndpoint] = {}
        for dependency in config["dependencies"]:
            if not dependency.get("api_name"):
                continue
            inputs = [
                (_name(components[i]), components[i]["type"], components[i].get("props", {}).get("value"))
                for i in dependency["inputs"]
            ]
            outputs = [_name(components[i]) for i in dependency["outputs"]]
            self.endpoints[dependency["api_name"]] = PageEndpoint(dependency["id"], inputs, outputs)

    def data(self, api_name: str, values: dict[str, Any]) -> list[Any]:
        endpoint = self.endpoints[api_name]
        unknown = set(values) - {name for name, _, _ in endpoint.inputs}
        if unknown:
            raise KeyError(f"/{api_name} has no inputs {sorted(unknown)}")
        return [None if kind == "state" else values.get(name, default) for name, kind, default in endpoint.inputs]

    def join(self, api_name: str, **values: Any) -> str:
        """Queue the event for this page's session; its event id. Nothing is read: the server runs it anyway."""
        joined = self.http.post(
            f"{self.url}/gradio_api/queue/join",
            json={
                "data": self.data(api_name, values),
                "fn_index": self.endpoints[api_name].fn_index,
                "session_hash": self.session,
                "event_data": None,
            },
        )
        joined.raise_for_status()
        return str(joined.json()["event_id"])

    def stream(self, api_name: str, **values: Any) -> Iterator[tuple[float, dict[str, Any], dict[str, Any]]]:
        """(arrival wall time, outputs by name, the raw `output` message) for every update until the result."""
        event_id = self.join(api_name, **values)
        yield from self.follow(api_name, event_id)

    def follow(self, api_name: str, event_id: str) -> Iterator[tuple[float, dict[str, Any], dict[str, Any]]]:
        """The updates of an event already joined, read from this session's stream until it completes."""
        from gradio_client.utils import apply_diff

        names = self.endpoints[api_name].outputs
        current: list[Any] | None = None
        give_up = time.monotonic() + self.deadline if self.deadline is not None else None
        with self.http.stream("GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": self.session}) as sse:
            for line in sse.iter_lines():
                if give_up is not None and time.monotonic() > give_up:
                    raise TimeoutError(f"/{api_name} did not finish within {self.deadline} s")
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                if kind == "close_stream":
                    return
                if kind not in ("process_generating", "process_completed") or message.get("event_id") != event_id:
                    continue
                output = message.get("output") or {}
                if not message.get("success", True) or "error" in output:
                    raise RuntimeError(f"/{api_name} failed: {output.get('error')}")
                if kind == "process_generating" and current is not None:
                    current = [apply_diff(old, diff) for old, diff in zip(current, output["data"], strict=True)]
                else:
                    current = list(output["data"])
                yield time.time(), dict(zip(names, current, strict=True)), output
                if kind == "process_completed":
                    return

    def call(self, api_name: str, **values: Any) -> tuple[dict[str, Any], float]:
        """The final outputs and the server's duration of the call (seconds, Gradio's own figure)."""
        last: tuple[dict[str, Any], float] = ({}, float("nan"))
        for _, outputs, output in self.stream(api_name, **values):
            last = (outputs, float(output.get("duration") or 0.0))
        return last

    def beat(self) -> None:
        """Hold the page's heartbeat open, as an open browser tab does, until close(): its end is how Gradio learns
        that the page closed (the app's unload event). A plain socket, so that close() ends it at once (an HTTP
        client's read would wait for the server's next beat)."""
        address = urllib.parse.urlsplit(self.url)
        sock = socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=30)
        path = f"{address.path}/gradio_api/heartbeat/{self.session}"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())
        sock.recv(1)  # the server has taken the page as open
        sock.settimeout(None)

        def heartbeat() -> None:
            with contextlib.suppress(OSError):
                while sock.recv(4096):
                    pass

        self._beating = sock
        self._heartbeat = threading.Thread(target=heartbeat, name=f"heartbeat-{self.session}", daemon=True)
        self._heartbeat.start()

    def close(self) -> None:
        if self._beating is not None and self._heartbeat is not None:
            with contextlib.suppress(OSError):
                self._beating.shutdown(socket.SHUT_RDWR)  # the server sees the page close
            self._beating.close()
            self._heartbeat.join(30)
        if self._own_http:
            self.http.close()
