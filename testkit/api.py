"""The app's page endpoints called by the names of their components, through gradio_client.

Names are read from the app's /config: each component's elem_id, with `field-` dropped from form fields
("field-model" -> "model"), ControlNet slot fields as "cn0_model_id", and the hidden page-language field as "lang".
gr.State inputs and outputs (and buttons) are not part of the API: gradio_client neither sends nor returns them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testkit.timing import SUITE_TIMEOUT

ALIASES = {"page-lang": "lang"}


def component_name(elem_id: str | None) -> str | None:
    """The name tests use for a component: its elem_id, "field-model" -> "model", "cn0-model_id" ->
    "cn0_model_id", "page-lang" -> "lang" (None without an elem_id)."""
    if not elem_id:
        return None
    if elem_id in ALIASES:
        return ALIASES[elem_id]
    slot = re.fullmatch(r"cn(\d+)-(\w+)", elem_id)
    if slot:
        return f"cn{slot[1]}_{slot[2]}"
    return elem_id.removeprefix("field-")


@dataclass
class Endpoint:
    """One named dependency of the page, as gradio_client calls it: the components it sends and gets back."""

    api_name: str
    visibility: str
    parameters: list[str]  # names of the inputs the client sends (no State)
    defaults: list[Any]  # each parameter's value when the page is opened
    outputs: list[str]  # names of the outputs the client returns (no State, no buttons)
    unnamed: list[str]  # components of this endpoint without an elem_id


class Api:
    """A gradio_client session with calls by name: `api.call("/preview", model="x")["summary"]`.

    `lang` is the page's language (the hidden #page-lang field), sent with every call that reads it.
    """

    def __init__(self, url: str, lang: str = "en", auth: tuple[str, str] | None = None) -> None:
        from gradio_client import Client

        self.client = Client(url, verbose=False, auth=auth)
        self.lang = lang
        self.endpoints = self._endpoints()

    def _endpoints(self) -> dict[str, Endpoint]:
        components = {component["id"]: component for component in self.client.config["components"]}
        endpoints: dict[str, Endpoint] = {}
        for fn_id, endpoint in self.client.endpoints.items():
            if not endpoint.api_name:
                continue
            dependency = endpoint.dependency
            unnamed: list[str] = []

            def names(ids: list[int], kinds: list[Any], unnamed: list[str] = unnamed) -> list[tuple[str, int]]:
                named = []
                for cid, kind in zip(ids, kinds, strict=True):
                    if kind.skip:
                        continue
                    props = components[cid].get("props", {})
                    name = component_name(props.get("elem_id"))
                    if name is None:
                        name = f"<{components[cid]['type']} {cid}>"
                        unnamed.append(name)
                    named.append((name, cid))
                return named

            inputs = names(dependency["inputs"], endpoint.input_component_types)
            outputs = names(dependency["outputs"], endpoint.output_component_types)
            endpoints[str(endpoint.api_name)] = Endpoint(
                api_name=endpoint.api_name,
                visibility=endpoint.api_visibility,
                parameters=[name for name, _ in inputs],
                defaults=[components[cid].get("props", {}).get("value") for _, cid in inputs],
                outputs=[name for name, _ in outputs],
                unnamed=unnamed,
            )
            assert fn_id is not None
        return endpoints

    def parameter_names(self, api_name: str) -> list[str]:
        return self.endpoints[api_name].parameters

    def output_names(self, api_name: str) -> list[str]:
        return self.endpoints[api_name].outputs

    def arguments(self, api_name: str, values: dict[str, Any]) -> list[Any]:
        endpoint = self.endpoints[api_name]
        values = {"lang": self.lang, **values} if "lang" in endpoint.parameters else values
        unknown = set(values) - set(endpoint.parameters)
        assert not unknown, f"{api_name} has no parameters {sorted(unknown)}; it has {endpoint.parameters}"
        return [values.get(name, default) for name, default in zip(endpoint.parameters, endpoint.defaults, strict=True)]

    def named(self, api_name: str, result: Any) -> dict[str, Any]:
        names = self.output_names(api_name)
        values = list(result) if isinstance(result, (list, tuple)) and len(names) != 1 else [result]
        return dict(zip(names, values, strict=True))

    def call(self, api_name: str, **values: Any) -> dict[str, Any]:
        return self.named(api_name, self.client.predict(*self.arguments(api_name, values), api_name=api_name))

    def submit(self, api_name: str, **values: Any) -> Any:
        return self.client.submit(*self.arguments(api_name, values), api_name=api_name)

    def wait_for(
        self, job: Any, api_name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = SUITE_TIMEOUT
    ) -> dict[str, Any]:
        """Poll a streaming job's outputs until one satisfies `predicate(named_outputs)`; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for output in reversed(job.outputs()):
                named = self.named(api_name, output)
                if predicate(named):
                    return named
            if job.done():
                break
            time.sleep(0.1)
        outputs = [self.named(api_name, output) for output in job.outputs()[-3:]]
        raise AssertionError(f"no output of {api_name} matched within {timeout} s; last: {outputs}")

    def settled(self, api_name: str, job: Any, timeout: float = SUITE_TIMEOUT) -> dict[str, Any]:
        """What the page shows once a streaming job has ended: every output folded in order, an update without a
        value leaving the one before it (as the browser does)."""
        job.result(timeout=timeout)
        shown: dict[str, Any] = {}
        for output in job.outputs():
            for name, value in self.named(api_name, output).items():
                if isinstance(value, dict) and value.get("__type__") == "update":
                    before = shown.get(name)
                    merged = {**before, **value} if isinstance(before, dict) else dict(value)
                    if "value" not in value and name in shown and not isinstance(before, dict):
                        merged["value"] = before
                    shown[name] = merged if set(value) - {"__type__"} else before
                else:
                    shown[name] = value
        return shown

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def value_of(output: Any) -> Any:
    """An output's value: updates (dicts with __type__ "update") carry it under "value"."""
    if isinstance(output, dict) and output.get("__type__") == "update":
        return output.get("value")
    return output
