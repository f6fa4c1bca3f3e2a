"""The library's Pack and Import through the page's own protocol: the machine's own user packs a build (offered for
download, served from where it lies) and imports a pack found in the engines folder; a remote client sees both
disabled with the reason, and the server refuses them sent without the page.

A remote client is played as in tests/test_ui_access.py (X-Forwarded-For from a proxy on this machine).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sdprep.pack_manifest import PACK_SUFFIX
from sdprep.text import t
from tests.conftest import run_cli
from tests.page_client import PageClient
from tests.ui_helpers import RunningApp, running_app

REMOTE = {"X-Forwarded-For": "203.0.113.7"}
SLUG = "stabilityai--sd-turbo"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("ui-packs")) as running:
        yield running


def page(app: RunningApp, headers: dict[str, str] | None = None) -> PageClient:
    return PageClient(app.url, http=httpx.Client(timeout=60, headers=headers or {}), deadline=60)


@pytest.fixture
def built(app: RunningApp) -> Path:
    """A build in the app's engines folder (through the CLI, as another terminal on the machine would)."""
    if app.engines.exists():
        shutil.rmtree(app.engines)
    done = run_cli("build", "--engines-dir", str(app.engines))
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def test_pack_then_import_from_the_page(app: RunningApp, built: Path) -> None:
    local = page(app)
    try:
        listed, _ = local.call("library_list")
        assert listed["library-model"]["value"] == SLUG and listed["library-variant"]["value"] == "config.yaml"
        packs, _ = local.call("library_packs")
        assert packs["library-pack"]["interactive"] is True and packs["library-import"]["interactive"] is False

        packed, _ = local.call("library_pack", **{"library-model": SLUG, "library-variant": "config.yaml"})
        path = next(app.engines.glob(f"*{PACK_SUFFIX}"))
        assert packed["library-message"].startswith(t("lib_packed", path=path, size="").split("(")[0])
        offered = packed["library-pack-file"]["value"]
        assert offered["path"] == str(path), "served from where it lies, not copied into a cache"
        download = local.http.get(offered["url"])
        assert download.status_code == 200 and download.content == path.read_bytes()
        assert packed["library-import-pack"]["choices"] == [[path.name, path.name]]

        shutil.rmtree(built.parent)  # the build is gone from this machine; its pack is in the engines folder
        imported, _ = local.call("library_import", **{"library-import-pack": path.name})
        assert imported["library-message"].startswith(t("lib_imported", variant="x", path="").split("x")[0])
        assert built.is_file() and (built.parent / "build.json").is_file()
        listed, _ = local.call("library_list")
        assert SLUG in listed["library"] and t("status_ready") in listed["library"]
        assert "imported from " in listed["library"], "the library says where an imported build came from"

        with pytest.raises(RuntimeError, match="not in the list of choices"):  # a name only among those listed
            local.call("library_import", **{"library-import-pack": "../../etc/passwd"})
    finally:
        local.http.close()


def test_a_remote_client_can_neither_pack_nor_import(app: RunningApp, built: Path) -> None:
    remote = page(app, REMOTE)
    try:
        shown, _ = remote.call("library_packs")
        assert shown["library-pack"]["interactive"] is False and shown["library-import"]["interactive"] is False
        assert shown["library-pack-access"]["value"] == t("access_pack_owner_only")
        remote.call("library_list")
        refused, _ = remote.call("library_pack", **{"library-model": SLUG, "library-variant": "config.yaml"})
        assert refused["library-message"] == t("access_pack_owner_only")
        assert not list(app.engines.glob(f"*{PACK_SUFFIX}")), "nothing packed"
        packed = run_cli("pack", str(built))  # a pack the owner made: listed for anyone, imported by none
        assert packed.returncode == 0, packed.stderr
        name = Path(packed.stdout.strip().splitlines()[-1]).name
        assert remote.call("library_packs")[0]["library-import-pack"]["choices"] == [[name, name]]
        shutil.rmtree(built.parent)
        refused, _ = remote.call("library_import", **{"library-import-pack": name})
        assert refused["library-message"] == t("access_pack_owner_only")
        assert not built.parent.exists(), "nothing imported"
    finally:
        remote.http.close()
