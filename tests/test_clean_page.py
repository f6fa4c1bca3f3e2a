"""The library's sizes and its Clean up, through the page's own protocol: anyone sees the sizes and what is unused;
only the machine's own user removes it, after "I am sure", and only what was listed (sdprep.ui.access)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.messages import Size
from sdprep.params import params_from_values
from sdprep.text import t
from testkit.app import RunningApp, running_app
from testkit.page_client import PageClient
from testkit.paths import STANDIN

from .conftest import runtime_defaults

REMOTE = {"X-Forwarded-For": "203.0.113.7"}  # a remote client, as a proxy on this machine presents one
SLUG = "stabilityai--sd-turbo"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("clean-page")) as running:
        options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
        params = params_from_values({"engines_dir": str(running.engines)})
        assert run_build(params, runtime_defaults(), options).ok
        yield running


def client(app: RunningApp, headers: dict[str, str] | None = None) -> Iterator[PageClient]:
    page = PageClient(app.url, http=httpx.Client(timeout=60, headers=headers or {}), deadline=60)
    yield page
    page.http.close()


@pytest.fixture
def local(app: RunningApp) -> Iterator[PageClient]:
    yield from client(app)


@pytest.fixture
def remote(app: RunningApp) -> Iterator[PageClient]:
    yield from client(app, REMOTE)


def leftover(app: RunningApp, name: str = "unet.onnx", size: int = 4096) -> Path:
    folder = next((app.engines / SLUG).rglob("unet.engine")).parent
    path = folder / name
    path.write_bytes(b"o" * size)
    return path


def test_the_library_shows_sizes_and_the_free_space(local: PageClient) -> None:
    listed, _ = local.call("library_list")
    html = str(listed["library"])
    assert t("lib_model_size", size="").strip() in html  # "on disk:" beside the model
    assert " free on its disk" in html and "Engines folder" in html


def test_clean_up_lists_with_sizes_and_removes_after_i_am_sure(app: RunningApp, local: PageClient) -> None:
    onnx = leftover(app)
    found, _ = local.call("library_clean_find")
    shown = str(found["library-clean-list"])
    assert "unet.onnx" in shown and t("size_only", size=Size(4096)) in shown
    assert found["library-clean-sure"]["interactive"] is True
    later = leftover(app, "weights.pb", 100)  # appeared after the list was shown: not removed this time

    unsure, _ = local.call("library_clean", **{"library-clean-sure": False})
    assert unsure["library-clean-list"] == t("lib_clean_sure_first") and onnx.exists()

    cleaned, _ = local.call("library_clean", **{"library-clean-sure": True})
    assert t("clean_removed", count=1, size=Size(4096)) in str(cleaned["library-clean-list"])
    assert not onnx.exists() and later.exists()
    assert next((app.engines / SLUG).rglob("unet.engine")).exists(), "referenced engines are never touched"

    again, _ = local.call("library_clean", **{"library-clean-sure": True})
    assert again["library-clean-list"] == t("lib_clean_find_first"), "a removal needs a fresh list"
    later.unlink()


def test_a_remote_client_sees_what_is_unused_but_cannot_remove_it(app: RunningApp, remote: PageClient) -> None:
    onnx = leftover(app)
    found, _ = remote.call("library_clean_find")
    assert "unet.onnx" in str(found["library-clean-list"])
    assert t("access_clean_owner_only") in str(found["library-clean-list"])
    assert found["library-clean-sure"]["interactive"] is False
    refused, _ = remote.call("library_clean", **{"library-clean-sure": True})  # sent without the page
    assert refused["library-clean-list"] == t("access_clean_owner_only")
    assert onnx.exists(), "nothing removed"
    onnx.unlink()
