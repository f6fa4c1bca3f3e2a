"""Whether a Hugging Face id exists, is gated, and which files it has: asked of the Hub in the background.

A typo in an id otherwise costs a build that fails at its download. The answer comes from the Hub's model API
(`GET {endpoint}/api/models/{id}`) with a short timeout, in a thread, and is kept for the server's life (a missing id
for a minute: it may be created). Offline, nothing waits: the first failed connection marks the Hub unreachable for a
few minutes, and every id meanwhile answers "skipped" at once, in this process and (through a small file in the
app's cache folder) in the next ones: a CLI command run offline waits once, not on every run. Reaching the Hub has a
timeout of its own, shorter than the question's: a network that drops packets costs about a second, not three. The
endpoint is $HF_ENDPOINT (as for huggingface_hub,
a mirror or a test server); $HF_HUB_OFFLINE=1 or $SDPREP_HUB_CHECK=0 turn the check off.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from sdprep.messages import Problem, error, warning
from sdprep.params import BakedParams
from sdprep.paths import atomic_write_text, is_hf_id

Status = Literal["exists", "gated", "missing", "skipped"]
DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT = 3.0  # seconds for one question to the Hub
# Seconds to open the connection (TCP and TLS): the Hub answers that in a few hundred milliseconds from anywhere it
# can be reached at all; a firewall that drops packets would otherwise hold the first question for all of TIMEOUT.
CONNECT_TIMEOUT = 1.5
UNREACHABLE_FILE = "hub-unreachable.json"  # in the app's cache folder: {"endpoint": ..., "until": unix time}
OFFLINE_FOR = 300.0  # after a failed connection, seconds before the Hub is asked again
MISSING_FOR = 60.0  # a missing id is asked again after this (it may have been created, or made public)
MAX_FILES = 2000  # a model repository lists at most a few hundred files
MAX_IDS = 1000  # answers kept; past it the oldest go


@dataclass(frozen=True)
class HubAnswer:
    status: Status
    files: tuple[str, ...] = ()
    at: float = 0.0

    @property
    def diffusers(self) -> bool:
        """A diffusers repository (what StreamDiffusion loads by id): it has model_index.json at its top."""
        return "model_index.json" in self.files


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def enabled() -> bool:
    off = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("SDPREP_HUB_CHECK", "") == "0"
    return not off


class HubChecker:
    """Answers by id, each asked once in a thread of its own; `answer(id, wait)` waits at most `wait` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, HubAnswer] = {}
        self._asking: dict[str, threading.Event] = {}
        self._offline_until = 0.0

    def answer(self, model_id: str, wait: float = 0.0) -> HubAnswer | None:
        """The Hub's answer for `model_id`; None while it is still being asked (after `wait` seconds)."""
        if not enabled():
            return HubAnswer("skipped")
        with self._lock:
            now = time.monotonic()
            known = self._answers.get(model_id)
            if known is not None and not (known.status == "missing" and now - known.at > MISSING_FOR):
                return known
            if now < self._offline_until:
                return HubAnswer("skipped")
            asking = self._asking.get(model_id)
            if asking is None and known_unreachable():  # found out by an earlier process, minutes ago
                self._offline_until = now + OFFLINE_FOR
                return HubAnswer("skipped")
            if asking is None:
                asking = self._asking[model_id] = threading.Event()
                threading.Thread(target=self._ask, args=(model_id, asking), name="sdprep-hub", daemon=True).start()
        if wait > 0:
            asking.wait(wait)
        if not asking.is_set():
            return None
        with self._lock:
            return self._answers.get(model_id) or HubAnswer("skipped")

    def _ask(self, model_id: str, done: threading.Event) -> None:
        import httpx  # here: a command that never asks (offline, or known out of reach) starts 0.1 s sooner

        try:
            answer = ask_hub(model_id)
        except httpx.HTTPError:  # no connection, a timeout: the Hub is out of reach for now
            answer = HubAnswer("skipped")
            with self._lock:
                self._offline_until = time.monotonic() + OFFLINE_FOR
            remember_unreachable()
        else:
            forget_unreachable()
        with self._lock:
            self._answers.pop(model_id, None)
            if answer.status != "skipped":  # a skipped one is not kept: asked again once the Hub is back
                if len(self._answers) >= MAX_IDS:
                    self._answers.pop(next(iter(self._answers)))
                self._answers[model_id] = answer
            self._asking.pop(model_id, None)
        done.set()


def ask_hub(model_id: str) -> HubAnswer:
    """One question to the Hub's model API. httpx.HTTPError when the Hub cannot be reached."""
    import httpx

    url = f"{endpoint()}/api/models/{quote(model_id, safe='/')}"
    token = os.environ.get("HF_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT)
    response = httpx.get(url, timeout=timeout, headers=headers, follow_redirects=True)
    now = time.monotonic()
    if response.status_code == 200:
        try:
            info = response.json()
        except ValueError:
            return HubAnswer("skipped")
        siblings = info.get("siblings") if isinstance(info, dict) else None
        files = tuple(
            str(item["rfilename"])
            for item in (siblings if isinstance(siblings, list) else [])[:MAX_FILES]
            if isinstance(item, dict) and isinstance(item.get("rfilename"), str)
        )
        gated = isinstance(info, dict) and info.get("gated") not in (None, False)
        return HubAnswer("gated" if gated else "exists", files, now)
    # The Hub answers 401 for an id that does not exist (or is private) to a caller without a token, 404 otherwise.
    not_found = response.headers.get("X-Error-Code") in ("RepoNotFound", "RepositoryNotFound")
    if response.status_code == 404 or (response.status_code == 401 and (not_found or not token)):
        return HubAnswer("missing", (), now)
    return HubAnswer("skipped")


def _unreachable_file() -> Path:
    from sdprep.jobs.environment import cache_dir  # the probe's cache folder (imported late: the CLI starts fast)

    return cache_dir() / UNREACHABLE_FILE


def known_unreachable() -> bool:
    """Whether a process found this endpoint out of reach less than OFFLINE_FOR seconds ago."""
    try:
        with _unreachable_file().open("rb") as file:
            said = json.loads(file.read(1024))
        until = float(said["until"])
        return said["endpoint"] == endpoint() and time.time() < until <= time.time() + OFFLINE_FOR
    except (OSError, ValueError, KeyError, TypeError):  # none, or not ours to trust: ask the Hub
        return False


def remember_unreachable() -> None:
    try:
        atomic_write_text(_unreachable_file(), json.dumps({"endpoint": endpoint(), "until": time.time() + OFFLINE_FOR}))
    except OSError:  # a read-only cache folder: this process still knows
        pass


def forget_unreachable() -> None:
    try:
        _unreachable_file().unlink(missing_ok=True)
    except OSError:
        pass


_CHECKER = HubChecker()


def hub_answer(model_id: str, wait: float = 0.0) -> HubAnswer | None:
    return _CHECKER.answer(model_id, wait)


def hub_problems(params: BakedParams, wait: float) -> list[Problem]:
    """What the Hub says against the model id: missing (an error: the build would fail at its download), gated
    (a warning: the build machine must be logged in), not a diffusers repository (an error)."""
    model = params.model.strip()
    if not is_hf_id(model):
        return []
    answer = hub_answer(model, wait)
    if answer is None or answer.status == "skipped":
        return []
    if answer.status == "missing":
        return [error("model", "hub_missing", model=model)]
    problems: list[Problem] = []
    if answer.status == "gated":
        problems.append(warning("model", "hub_gated", model=model))
    if answer.files and not answer.diffusers:
        problems.append(error("model", "hub_not_diffusers", model=model))
    return problems
