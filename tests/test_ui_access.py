"""Who may do what, through the page's own protocol (tests/page_client.py): building, saving and loading for anyone
who reaches the page; Setup, Upgrade and Delete only for the machine's own user (sdprep.ui.access); a fork only by
name from the page.

A remote client is simulated as a proxy on this machine presents one: a request from 127.0.0.1 with
`X-Forwarded-For: 203.0.113.7`, which Uvicorn (under Gradio) turns into the request's client address, as it does for
any reverse proxy on the machine. A client that is really remote cannot send that header with effect: Uvicorn takes
it only from 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sdprep.config import render_config
from sdprep.params import params_from_values
from sdprep.paths import atomic_write_text
from sdprep.text import t
from sdprep.ui.access import is_loopback, is_owner
from tests.conftest import runtime_defaults
from tests.page_client import PageClient
from tests.ui_helpers import RunningApp, running_app

REMOTE = {"X-Forwarded-For": "203.0.113.7"}
SLUG = "KBlueLeaf--kohaku-v2.1"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("ui-access")) as running:
        yield running


def page(app: RunningApp, headers: dict[str, str] | None = None) -> PageClient:
    return PageClient(app.url, http=httpx.Client(timeout=60, headers=headers or {}), deadline=60)


@pytest.fixture
def remote(app: RunningApp) -> Iterator[PageClient]:
    client = page(app, REMOTE)
    yield client
    client.http.close()


@pytest.fixture
def local(app: RunningApp) -> Iterator[PageClient]:
    client = page(app)
    yield client
    client.http.close()


@pytest.fixture
def model(app: RunningApp) -> Path:
    folder = app.engines / SLUG
    atomic_write_text(
        folder / "config.yaml",
        render_config(params_from_values({"model": "KBlueLeaf/kohaku-v2.1"}), runtime_defaults()),
    )
    return folder


def test_loopback_and_logged_in_are_the_owner() -> None:
    for host in ("127.0.0.1", "127.4.5.6", "::1", "::ffff:127.0.0.1", "[::1]"):
        assert is_loopback(host), host
    for other in ("203.0.113.7", "192.168.1.5", "::ffff:10.0.0.1", "localhost", "", None, "testclient"):
        assert not is_loopback(other), other
    assert not is_owner(None)


def test_a_remote_client_sees_setup_and_delete_disabled_with_the_reason(
    remote: PageClient, local: PageClient, model: Path
) -> None:
    shown, _ = remote.call("setup_access")
    assert shown["setup-button"]["interactive"] is False and shown["setup-upgrade"]["interactive"] is False
    assert shown["setup-fork"]["interactive"] is False
    assert shown["setup-access"]["visible"] is True
    assert shown["setup-access"]["value"] == t("access_setup_owner_only")
    listed, _ = remote.call("library_list")
    assert SLUG in listed["library"], "listing and loading are for anyone"
    assert listed["library-delete"]["interactive"] is False and listed["library-sure"]["interactive"] is False
    assert listed["library-access"]["value"] == t("access_delete_owner_only")

    mine, _ = local.call("setup_access")
    assert mine["setup-button"]["interactive"] is True and mine["setup-access"]["visible"] is False
    listed, _ = local.call("library_list")
    # Delete itself waits for "I am sure", which the machine's own user may tick.
    assert listed["library-sure"]["interactive"] is True and listed["library-access"]["visible"] is False


def test_the_server_refuses_setup_and_delete_from_a_remote_client(remote: PageClient, model: Path) -> None:
    # Sent without the page (whose buttons are disabled): the server itself refuses, and nothing starts.
    refused, _ = remote.call("setup", **{"setup-fork": "forkni", "setup-upgrade": True})
    assert refused["setup-progress"] == t("access_setup_owner_only")
    assert "value" not in refused["setup-log"], "no setup started: nothing logged"
    remote.call("library_list")  # as the page does on load: the model becomes a choice of this page
    out, _ = remote.call("library_delete", **{"library-model": SLUG, "library-sure": True})
    assert out["library-message"] == t("access_delete_owner_only")
    assert (model / "config.yaml").is_file(), "nothing deleted"
    saved, _ = remote.call("save_config", model="KBlueLeaf/kohaku-v2.1")
    assert saved["action-message"].startswith("Saved"), "saving is for anyone"


def test_the_page_offers_only_the_named_forks(remote: PageClient, local: PageClient) -> None:
    evil = "git+file:///tmp/evil@0123456789abcdef0123456789abcdef01234567"
    for client in (local, remote):
        with pytest.raises(RuntimeError, match="not in the list of choices"):
            client.call("setup", **{"setup-fork": evil})
    assert not Path("/tmp/evil").exists()


class _FakeDemo:
    def launch(self, **kwargs: object) -> None:
        self.launched = kwargs

    def block_thread(self) -> None:  # launch() serves without blocking, then waits here until Ctrl-C
        pass


def test_the_policy_is_printed_at_start_beside_the_open_server_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from sdprep.ui.app import launch

    assert launch(_FakeDemo(), "0.0.0.0", 7861, None, open_browser=False) == 0  # type: ignore[arg-type]
    said = capsys.readouterr().err
    assert "warning: serving on all interfaces" in said and t("access_policy") in said
    assert said.index("warning") < said.index(t("access_policy"))
    assert launch(_FakeDemo(), "0.0.0.0", 7861, "me:secret", open_browser=False) == 0  # type: ignore[arg-type]
    assert t("access_policy_auth") in capsys.readouterr().err


def test_a_served_page_is_kept_out_of_the_collectors_full_passes() -> None:
    """What exists once the page is served lives as long as the server: a full collection that walked it held a
    request for 171 ms in the benchmark's server."""
    import gc

    from sdprep.ui.app import launch

    gc.unfreeze()
    try:
        assert launch(_FakeDemo(), "127.0.0.1", 7861, None, open_browser=False) == 0  # type: ignore[arg-type]
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
