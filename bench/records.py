"""A library of hundreds of builds (issue 16 item 7, issue 23 item 3): form changes of a local model with 40 recorded
builds, and the Engines library's list and load, with 306 builds across 20 models.

The engines folder is made from one real build with the stand-in: its build.json record is copied into 20 model
folders (19 of 14 builds and one local model of 40; its build.json is about 260 KB, as in the report), each build
with its own three engine files, so every build is listed "ready" and every recorded file is looked at. Then the
app's page is served from this process on that folder (SDPREP_ENGINES_DIR) and driven over HTTP as a browser does:
- form changes of the local model: server time (queue push + process_api, as form_change.py times it);
- the library's list (`library_list`, what every refresh after a build, cancel or save runs) and load
  (`library_load` of a variant into the form): round trip of each, and Gradio's duration of the handler.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.common import form_changes, preview_server_times, runtime_defaults, use_state_here
from testkit.app import free_port
from testkit.page_client import PageClient
from testkit.paths import STANDIN

MODELS = 20
BUILDS_PER_MODEL = 14
LOCAL_BUILDS = 40
LOCAL_MODEL = "local-model"


def populate(root: Path, models_dir: Path) -> tuple[Path, int]:
    """(the local model's folder, the number of builds) after filling `root` as the module docstring says."""
    from sdprep.jobs.build import BuildOptions, run_build
    from sdprep.jobs.process import ChildSpec
    from sdprep.params import params_from_values

    seed_root = root.parent / "seed-engines"
    options = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
    runtime = runtime_defaults()
    result = run_build(params_from_values({"engines_dir": str(seed_root)}), runtime, options)
    if not result.ok:
        raise RuntimeError(f"the seed build failed: {result.outcome}")
    seed = json.loads((seed_root / "stabilityai--sd-turbo" / "build.json").read_text(encoding="utf-8"))
    template = next(iter(seed["variants"].values()))
    local = models_dir / LOCAL_MODEL
    (local / "unet").mkdir(parents=True)
    (local / "unet" / "config.json").write_text('{"cross_attention_dim": 1024}', encoding="utf-8")
    folders = [(f"bench--model-{index:02d}", f"bench/model-{index:02d}", BUILDS_PER_MODEL) for index in range(19)]
    folders.append((LOCAL_MODEL, str(local), LOCAL_BUILDS))
    total = 0
    for slug, model, count in folders:
        folder = root / slug
        manifest: dict[str, Any] = {"model": model, "config": "config.yaml", "variants": {}, "engines": {}}
        for build in range(count):
            name = f"{build + 1}step-self-{512 + 64 * (build % 8)}x512-{build:06x}"
            record = copy.deepcopy(template)
            record["params"]["model"] = model
            record["config"] = f"configs/{name}.yaml"
            record["engines"] = []
            for kind in ("unet", "vae_encoder", "vae_decoder"):
                relative = f"bench/{slug}--{name}--{kind.split('_')[0]}/{kind}.engine"
                path = folder / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"engine " * 64)
                found = path.stat()
                record["engines"].append(relative)
                manifest["engines"][relative] = {
                    "kind": kind,
                    "size": found.st_size,
                    "mtime_ns": found.st_mtime_ns,
                    "key": "bench",
                    "engine_key": template["engine_key"],
                    "built_at": template["built_at"],
                    "fingerprint": template["fingerprint"],
                }
            (folder / "configs").mkdir(parents=True, exist_ok=True)
            (folder / "configs" / f"{name}.yaml").write_text(f"model_id: {model}\nwidth: 512\n", encoding="utf-8")
            manifest["variants"][name] = record
            manifest["latest_variant"] = name
            total += 1
        (folder / "config.yaml").write_text(f"model_id: {model}\nwidth: 512\n", encoding="utf-8")
        (folder / "build.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        past = time.time() - 60  # written a minute ago, as on a server that has run a while
        for written in (folder / "build.json", folder / "config.yaml"):
            os.utime(written, (past, past))
    return local, total


def measure(state: Path, previews: int, listings: int) -> dict[str, Any]:
    """Form changes of the local model with 40 builds, and library list/load with 306 builds, in this process."""
    use_state_here(state)
    root = state / "records" / "engines"
    local, builds = populate(root, state / "records" / "models")
    manifest_kb = (root / LOCAL_MODEL / "build.json").stat().st_size / 1024
    earlier_root = os.environ.get("SDPREP_ENGINES_DIR")
    os.environ["SDPREP_ENGINES_DIR"] = str(root)  # the server's engines folder, read on every request
    import gradio_prepare

    demo = gradio_prepare.demo
    out: dict[str, Any] = {"builds": builds, "models": MODELS, "local_builds": LOCAL_BUILDS}
    out["local_manifest_kb"] = round(manifest_kb, 1)
    try:
        with preview_server_times(demo) as timings:
            demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
            from sdprep.ui.app import freeze_startup_heap

            freeze_startup_heap()  # as the app does once it serves: a fresh server's heap, not this process's
            page = PageClient(demo.local_url or "")
            try:
                for values in form_changes(5):
                    page.call("preview", **values, model=str(local))
                timings["push"].clear()
                timings["process_api"].clear()
                # The local model and a hub id alternate, so the machine's load affects both alike.
                models = (str(local), "stabilityai/sd-turbo")
                load_before = os.getloadavg()[0]
                for index, values in enumerate(form_changes(2 * previews)):
                    page.call("preview", **values, model=models[index % 2])
                out["load_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # a shared machine's
                server = [a + b for a, b in zip(timings["push"], timings["process_api"], strict=True)]
                out["local_form_change_server_ms"] = server[0::2]
                out["hub_form_change_server_ms"] = server[1::2]
                out.update(_library(page, listings, root))
            finally:
                page.close()
    finally:
        with contextlib.suppress(Exception):
            demo.close()
        if earlier_root is None:
            os.environ.pop("SDPREP_ENGINES_DIR", None)
        else:
            os.environ["SDPREP_ENGINES_DIR"] = earlier_root
    return out


def _library(page: PageClient, count: int, root: Path) -> dict[str, list[float]]:
    slugs = sorted(folder.name for folder in root.iterdir())
    figures: dict[str, list[float]] = {
        name: [] for name in ("list_ms", "list_handler_ms", "load_ms", "load_handler_ms")
    }
    page.call("library_list")  # the page's first view: afterwards its model dropdown offers every model
    for index in range(count + 3):
        slug = slugs[index % len(slugs)]
        started = time.perf_counter()
        listed, listed_s = page.call("library_list", **{"library-model": slug})
        list_ms = (time.perf_counter() - started) * 1000
        if slug not in str(listed.get("library")):
            raise RuntimeError(f"the library did not list {slug}")
        variant = next(iter(_choices(listed)), "config.yaml")
        started = time.perf_counter()
        loaded, loaded_s = page.call("library_load", **{"library-model": slug, "library-variant": variant})
        load_ms = (time.perf_counter() - started) * 1000
        if "Loaded" not in str(loaded.get("library-message")):
            raise RuntimeError(f"library_load of {slug}/{variant}: {str(loaded.get('library-message'))[:200]}")
        if index >= 3:  # the first calls warm the caches, as a page's first library view does
            figures["list_ms"].append(list_ms)
            figures["list_handler_ms"].append(listed_s * 1000)
            figures["load_ms"].append(load_ms)
            figures["load_handler_ms"].append(loaded_s * 1000)
    return figures


def _choices(listed: dict[str, Any]) -> list[str]:
    """The variant dropdown's values after a listing (Gradio sends choices as [label, value] pairs)."""
    dropdown = listed.get("library-variant")
    choices = dropdown.get("choices") if isinstance(dropdown, dict) else None
    return [str(choice[1]) for choice in choices or [] if isinstance(choice, list) and len(choice) == 2]


def main() -> None:
    """`python -m bench.records [FORM_CHANGES] [LISTINGS]`: this measurement alone, its percentiles printed."""
    import shutil
    import sys
    import tempfile

    from bench.common import percentile

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    counts = [int(value) for value in sys.argv[1:3]] + [60, 40][len(sys.argv[1:3]) :]
    state = Path(tempfile.mkdtemp(prefix="sdprep-bench-records-"))
    try:
        for key, value in measure(state, counts[0], counts[1]).items():
            if isinstance(value, list):
                value = f"p50 {percentile(value, 50):.1f} ms, p95 {percentile(value, 95):.1f} ms"
            print(f"{key}: {value}")
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
