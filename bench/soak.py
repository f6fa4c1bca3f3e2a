"""A soak (issue 23): one real server driven for MINUTES by several simulated pages, as people use it for days.

    python bench/run.py --soak 20            4 pages for 20 minutes, then docs/reliability.md's soak section
    python bench/run.py --soak 5 --pages 2

One app (the stand-in StreamDiffusion, loopback only) gets from each page, at random: builds with random parameters
and every stand-in fault mode (the mode is the model id's last part, `standin/<mode>-<n>`), rebuilds of a model
built before, forced builds, builds with a check, cancels at random moments (a `hang` build is always cancelled),
Save, Load config, library list/load and deletes. Each page is one browser session (testkit's PageClient) and is
replaced by a fresh one now and then, as a closed tab is. A page refreshes the library after each build, cancel
and save, as the real page does.

Every few seconds the server's RSS, open file descriptors, threads and child processes are sampled. At the end:
every build.json readable, every engine it records present, no `.tmp`/`.partial`/`.aside` leftovers, no process
left that the server started, and the variants the pages saw built equal the ones build.json records; and every
raw error (Python exception text or "Errno" reaching a page outside the build log) is counted. The memory goal:
RSS slope over the second half under 1 MB/min (least squares).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import MB, app_server
from testkit.page_client import PageClient

PAGES = 4
SAMPLE_EVERY = 5.0  # seconds between samples of the server
RECYCLE_AFTER = 120  # operations of one page before it is closed and a fresh one opened
EVENT_DEADLINE = 120.0  # seconds one page event may take (a build waits behind the others' builds)
MODES = ("success", "slow", "exception", "exporterror", "crash", "oomkill", "hang", "fallback")
CHECK_MODES = ("success", "rebuild_on_load", "loadfail", "slowframes")
MODELS_PER_MODE = 3
LIBRARY_LEVEL = 60  # variants the library holds at most (about 150 engines); past it a page deletes models
SESSION_GRACE = 60.0  # seconds the soak's server keeps a closed page's session (the app: an hour), see measure()
SLOPE_GOAL = 1.0  # MB/min over the second half
ENV = {
    "STANDIN_SLOW_SECONDS": "0.6",
    "STANDIN_SLOW_STEPS": "3",
    "STANDIN_FRAME_SECONDS": "0.02",
}
LEFTOVER = re.compile(r"(\.tmp|\.partial|\.aside)$")
# Text a person must never see: Python's own words for an exception, or the OS error number. The build log is left
# out (it is the child's own output, a crash's traceback included, shown as the log).
RAW = re.compile(
    r"\[Errno \d+\]|Traceback \(most recent call last\)|"
    r"\b(?:FileNotFoundError|PermissionError|IsADirectoryError|NotADirectoryError|OSError|KeyError|TypeError|"
    r"AttributeError|IndexError|ValueError|UnboundLocalError|NameError|AssertionError)\b"
)
NOT_SHOWN_RAW = ("build-log",)
OUTCOMES = {
    "✔ Built": "built",
    "✔ Up to date": "up_to_date",
    "✘ Build failed": "failed",
    "■ Cancelled": "cancelled",
    "⊘ Not started": "refused",
    "No build of this page is running": "none_to_cancel",  # Cancel after a build the form refused
}
VARIANT = re.compile(r"Variant: `([^`]+)`")
FOLDER = re.compile(r"` → `([^`]+)`")  # the model folder the build view names (prog_what)


# --- the pure parts ------------------------------------------------------------------------------------------------
def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, bytes) samples over the second half of their time span, in MB a minute
    (NaN with fewer than 2 samples there)."""
    if not samples:
        return float("nan")
    start, end = samples[0][0], samples[-1][0]
    half = [(t, value) for t, value in samples if t >= start + (end - start) / 2]
    if len(half) < 2:
        return float("nan")
    mean_t = sum(t for t, _ in half) / len(half)
    mean_v = sum(value for _, value in half) / len(half)
    spread = sum((t - mean_t) ** 2 for t, _ in half)
    if spread == 0:
        return float("nan")
    slope = sum((t - mean_t) * (value - mean_v) for t, value in half) / spread  # bytes per second
    return slope * 60 / MB


def raw_errors(outputs: dict[str, Any]) -> list[str]:
    """The raw error texts in a page's outputs (each a short excerpt), the build log left out."""
    found = []
    for name, value in outputs.items():
        if name in NOT_SHOWN_RAW:
            continue
        text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
        for match in RAW.finditer(text):
            found.append(f"{name}: …{text[max(0, match.start() - 80) : match.end() + 80]}…")
    return found


@dataclass
class Consistency:
    models: int = 0
    engines: int = 0
    unreadable: list[str] = field(default_factory=list)  # build.json that is not JSON with its records
    missing: list[str] = field(default_factory=list)  # engines or configs build.json records that are not there
    leftovers: list[str] = field(default_factory=list)  # .tmp, .partial, .aside
    mismatched: list[str] = field(default_factory=list)  # variants the pages saw built != build.json's

    def problems(self) -> int:
        return len(self.unreadable) + len(self.missing) + len(self.leftovers) + len(self.mismatched)


def check_folder(engines: Path, seen: dict[str, set[str]] | None = None) -> Consistency:
    """The engines folder after a soak: what build.json records is there and readable, no working files are left,
    and (with `seen`: each model folder's variants the pages saw built since its last delete) the variants agree."""
    result = Consistency()
    for path in sorted(engines.rglob("*")):
        if LEFTOVER.search(path.name):
            result.leftovers.append(str(path.relative_to(engines)))
    for folder in sorted(p for p in engines.iterdir() if p.is_dir()) if engines.is_dir() else []:
        manifest = folder / "build.json"
        if not manifest.exists():
            continue
        result.models += 1
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            variants: dict[str, Any] = data.get("variants") or {}
            recorded: dict[str, Any] = data.get("engines") or {}
        except (OSError, ValueError, AttributeError) as problem:
            result.unreadable.append(f"{folder.name}: {problem}")
            continue
        for relative in recorded:
            result.engines += 1
            if not (folder / relative).is_file():
                result.missing.append(f"{folder.name}/{relative}")
        for name, variant in variants.items():
            config = variant.get("config") if isinstance(variant, dict) else None
            if config and not (folder / config).is_file():
                result.missing.append(f"{folder.name}/{config} (variant {name})")
            if isinstance(variant, dict) and not variant.get("stale"):
                for relative in variant.get("engines") or []:
                    if not (folder / relative).is_file():
                        result.missing.append(f"{folder.name}/{relative} (variant {name})")
        if seen is not None and set(variants) != seen.get(folder.name, set()):
            result.mismatched.append(
                f"{folder.name}: build.json {sorted(variants)}, pages saw {sorted(seen.get(folder.name, set()))}"
            )
    if seen is not None:
        for slug, names in sorted(seen.items()):
            if names and not (engines / slug / "build.json").exists():
                result.mismatched.append(f"{slug}: pages saw {sorted(names)} built, no build.json")
    return result


def write_section(page: Path, text: str, name: str = "soak") -> None:
    """Replace the block between `<!-- name:start -->` and `<!-- name:end -->` in `page` with `text` (appended
    when the page has none): the rest of the page is not touched."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    current = page.read_text(encoding="utf-8") if page.exists() else ""
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        updated = before + block + after
    else:
        updated = current.rstrip("\n") + ("\n\n" if current else "") + block
    page.write_text(updated, encoding="utf-8")


# --- the pages -----------------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("value")
    return "" if value is None else str(value)


@dataclass
class Tally:
    """What every page saw, shared: counts by operation and outcome, raw errors, variants seen built."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=dict)
    raw: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # an event that failed or timed out (Gradio's error)
    seen: dict[str, set[str]] = field(default_factory=dict)
    building: dict[str, int] = field(default_factory=dict)  # model folder -> builds of it a page has in flight
    cancel_s: list[float] = field(default_factory=list)
    unclassified: list[str] = field(default_factory=list)  # build views that showed none of OUTCOMES (a few kept)

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1


def slug_of(model: str) -> str:
    return model.replace("/", "--")


def build_then_cancel(page: PageClient, values: dict[str, Any], delay: float) -> tuple[dict[str, Any], float]:
    """Build, and `delay` seconds after the page first shows the build, press Cancel; the view Cancel answers with
    and how long it took. Both events are read from the page's one stream, as the browser reads them."""
    from gradio_client.utils import apply_diff

    build_id, cancel_id = page.join("build", **values), ""
    current: dict[str, list[Any]] = {}
    pressed = 0.0
    give_up = time.monotonic() + EVENT_DEADLINE
    with page.http.stream("GET", f"{page.url}/gradio_api/queue/data", params={"session_hash": page.session}) as sse:
        for line in sse.iter_lines():
            if time.monotonic() > give_up:
                raise TimeoutError(f"/build then /cancel did not finish within {EVENT_DEADLINE} s")
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            kind, event = message.get("msg"), message.get("event_id")
            if kind == "close_stream":
                break
            if kind not in ("process_generating", "process_completed") or event not in (build_id, cancel_id):
                continue
            output = message.get("output") or {}
            if not message.get("success", True) or "error" in output:
                raise RuntimeError(f"/{'cancel' if event == cancel_id else 'build'} failed: {output.get('error')}")
            if kind == "process_generating" and event in current:
                pairs = zip(current[event], output["data"], strict=True)
                current[event] = [apply_diff(old, diff) for old, diff in pairs]
            else:
                current[event] = list(output["data"])
            if event == cancel_id and kind == "process_completed":
                names = page.endpoints["cancel"].outputs
                return dict(zip(names, current[event], strict=True)), time.monotonic() - pressed
            if event == build_id and not cancel_id:
                time.sleep(delay)  # the page shows the build; the person presses Cancel a moment later
                cancel_id, pressed = page.join("cancel"), time.monotonic()
    if not cancel_id:  # the build's stream closed before it showed anything
        raise RuntimeError("/build closed its stream before its first update")
    # The stream closed (the build had ended) before Cancel's answer: a page opens it again for that answer.
    last: dict[str, Any] = {}
    for _, outputs, _ in page.follow("cancel", cancel_id):
        last = outputs
    return last, time.monotonic() - pressed


class SoakPage:
    """One simulated page: picks an operation at random and does it as the page's buttons do."""

    def __init__(self, url: str, engines: Path, tally: Tally, rng: random.Random, until: float) -> None:
        self.url, self.engines, self.tally, self.rng, self.until = url, engines, tally, rng, until
        self.page = self.open()
        self.done = 0

    def open(self) -> PageClient:
        """A fresh page: its own session, with the heartbeat an open tab holds (its end tells the server the page
        closed, as a closed tab's does)."""
        page = PageClient(self.url, deadline=EVENT_DEADLINE)
        page.beat()
        # The page lists the library as it opens (a Delete offers only the models listed: before this, a fresh page's
        # delete of a model it had not listed was refused by Gradio, which a person cannot do)
        outputs, _ = page.call("library_list")
        self.observe("library_list", outputs)
        return page

    def run(self) -> None:
        operations: list[tuple[Callable[[], object], int]] = [
            (self.build, 40),
            (self.cancel_at_random, 12),
            (self.save, 10),
            (self.load_config, 8),
            (self.library, 18),
            (self.delete, 4),
        ]
        actions, weights = zip(*operations, strict=True)
        try:
            while time.monotonic() < self.until:
                action = self.rng.choices(actions, weights)[0]
                try:
                    action()
                except (RuntimeError, TimeoutError) as problem:  # an event that failed, as the page shows an error
                    self.tally.count("event_failed")
                    with self.tally.lock:
                        self.tally.failures.append(f"{action.__name__}: {str(problem)[:300]}")
                self.done += 1
                if self.done % RECYCLE_AFTER == 0:
                    self.page.close()
                    self.page = self.open()
                    self.tally.count("pages_opened")
        finally:
            self.page.close()

    # the form
    def params(self, check: bool) -> dict[str, Any]:
        mode = self.rng.choice(CHECK_MODES if check else MODES)
        return {
            "model": f"standin/{mode}-{self.rng.randrange(MODELS_PER_MODE)}",
            "denoise_steps": self.rng.randint(1, 4),
            "width": self.rng.choice((512, 576, 640)),
            "height": self.rng.choice((512, 576, 640)),
            "cfg_type": self.rng.choice(("self", "none", "initialize")),
            "use_tiny_vae": self.rng.random() < 0.7,
            "force": self.rng.random() < 0.15,
            "check": check,
        }

    def observe(self, api: str, outputs: dict[str, Any]) -> None:
        self.tally.count(api)
        found = raw_errors(outputs)
        if found:
            with self.tally.lock:
                self.tally.raw.extend(f"/{api} {item}" for item in found)

    def outcome(self, outputs: dict[str, Any], model: str) -> str:
        shown = _text(outputs.get("build-progress")) + "\n" + _text(outputs.get("build-result"))
        outcome = next((name for label, name in OUTCOMES.items() if label in shown), "other")
        if outcome in ("built", "up_to_date"):
            variant, folder = VARIANT.search(shown), FOLDER.search(shown)
            slug = Path(folder[1]).name if folder else slug_of(model)
            if variant:
                with self.tally.lock:
                    self.tally.seen.setdefault(slug, set()).add(variant[1])
        self.tally.count(f"build_{outcome}")
        if outcome == "other":
            with self.tally.lock:
                if len(self.tally.unclassified) < 20:
                    self.tally.unclassified.append(shown[:300])
        return outcome

    def refresh(self) -> None:
        """What the page runs after a build, cancel or save: the library's list."""
        outputs, _ = self.page.call("library_list")
        self.observe("library_list", outputs)

    def _start(self, values: dict[str, Any]) -> None:
        with self.tally.lock:
            slug = slug_of(values["model"])
            self.tally.building[slug] = self.tally.building.get(slug, 0) + 1

    def _end(self, values: dict[str, Any]) -> None:
        with self.tally.lock:
            self.tally.building[slug_of(values["model"])] -= 1

    # the operations
    def build(self) -> None:
        values = self.params(check=self.rng.random() < 0.15)
        if values["model"].startswith("standin/hang"):
            self.cancel_at_random(values)
            return
        known = [slug for slug, names in self.tally.seen.items() if names]
        if known and self.rng.random() < 0.3:  # a rebuild of a model built before (up to date unless forced)
            values["model"] = known[self.rng.randrange(len(known))].replace("--", "/", 1)
        self._start(values)
        try:
            outputs, _ = self.page.call("build", **values)
            self.observe("build", outputs)
            self.outcome(outputs, values["model"])
        finally:
            self._end(values)
        self.refresh()
        self.keep_level()

    def keep_level(self) -> None:
        """Delete models (idle ones, at random) while the library holds more than LIBRARY_LEVEL variants: the
        library stays about one size, so the memory's slope is about the server, not about more data."""
        for _ in range((len(MODES) + len(CHECK_MODES)) * MODELS_PER_MODE):
            with self.tally.lock:
                held = sum(len(names) for names in self.tally.seen.values())
            if held <= LIBRARY_LEVEL or not self.delete():
                return

    def cancel_at_random(self, values: dict[str, Any] | None = None) -> None:
        """Start a build and, once the page shows it (and with it the Cancel button), cancel it after a random
        moment: before it starts, while it runs, or after it has ended. A hung build only ends this way."""
        values = values or self.params(check=False)
        self._start(values)
        try:
            self.tally.count("build_joined_to_cancel")
            outputs, took = build_then_cancel(self.page, values, self.rng.uniform(0.0, 4.0))
            self.observe("cancel", outputs)
            outcome = self.outcome(outputs, values["model"])
            if outcome == "cancelled":
                with self.tally.lock:
                    self.tally.cancel_s.append(took)
            if "still stopping" in _text(outputs.get("build-progress")):
                self.tally.count("cancel_slow")
                self.wait_idle()
        finally:
            self._end(values)
        self.refresh()

    def wait_idle(self) -> None:
        """After a slow cancel: ask again until this page's build has ended (a person presses Cancel again)."""
        for _ in range(30):
            time.sleep(1.0)
            outputs, _ = self.page.call("cancel")
            self.observe("cancel", outputs)
            if "still stopping" not in _text(outputs.get("build-progress")):
                return

    def save(self) -> None:
        values = self.params(check=False)
        outputs, _ = self.page.call("save_config", model=values["model"], denoise_steps=values["denoise_steps"])
        self.observe("save_config", outputs)
        self.tally.count("save_ok" if "Saved" in _text(outputs.get("action-message")) else "save_refused")
        self.refresh()

    def _models(self) -> list[Path]:
        try:
            return [folder for folder in self.engines.iterdir() if (folder / "config.yaml").exists()]
        except OSError:
            return []

    def load_config(self) -> None:
        models = self._models()
        if not models:
            return
        path = models[self.rng.randrange(len(models))] / "config.yaml"
        outputs, _ = self.page.call("load_config", load_path=str(path))
        self.observe("load_config", outputs)

    def library(self) -> None:
        outputs, _ = self.page.call("library_list")
        self.observe("library_list", outputs)
        with self.tally.lock:
            built = [slug for slug, names in self.tally.seen.items() if names]
        if not built:
            return
        slug = built[self.rng.randrange(len(built))]
        outputs, _ = self.page.call("library_variants", **{"library-model": slug})
        self.observe("library_variants", outputs)
        offered = outputs.get("library-variant")
        choices = [choice[1] for choice in offered.get("choices") or []] if isinstance(offered, dict) else []
        if not choices:  # deleted meanwhile: the page offers nothing to load
            self.tally.count("library_nothing_to_load")
            return
        chosen = {"library-model": slug, "library-variant": self.rng.choice(choices)}
        outputs, _ = self.page.call("library_load", **chosen)
        self.observe("library_load", outputs)

    def delete(self) -> bool:
        """Delete a model no page is building (the pages' record of what is built follows the delete); whether one
        was deleted."""
        with self.tally.lock:
            idle = [folder.name for folder in self._models() if not self.tally.building.get(folder.name)]
            if not idle:
                return False
            slug = idle[self.rng.randrange(len(idle))]
            self.tally.building[slug] = self.tally.building.get(slug, 0) + 1  # no build of it starts meanwhile
        try:
            outputs, _ = self.page.call("library_delete", **{"library-model": slug, "library-sure": True})
            self.observe("library_delete", outputs)
            said = _text(outputs.get("library-message"))
            if "Deleted" in said:
                self.tally.count("delete_done")
                with self.tally.lock:
                    self.tally.seen.pop(slug, None)
                return True
            self.tally.count("delete_refused")
            return False
        finally:
            with self.tally.lock:
                self.tally.building[slug] -= 1


# --- the server ----------------------------------------------------------------------------------------------------
SERVER = Path(__file__).with_name("soak_server.py")


def server_stats(path: Path) -> list[dict[str, Any]]:
    """The lines bench/soak_server.py wrote: sessions held, glibc's heap, traced bytes, over time."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample(pid: int) -> dict[str, float]:
    process = psutil.Process(pid)
    with process.oneshot():
        return {
            "rss_mb": process.memory_info().rss / MB,
            "fds": float(process.num_fds()),
            "threads": float(process.num_threads()),
            "children": float(len(process.children(recursive=True))),
        }


def strays(marker: str, exclude: set[int]) -> list[str]:
    """Processes (other than `exclude`) whose command line or environment names `marker`: what the server started
    and left behind."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid in exclude:
            continue
        try:
            cmdline = " ".join(process.info.get("cmdline") or [])
            environ = process.environ() if marker not in cmdline else {}
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker in cmdline or any(marker in value for value in environ.values()):
            found.append(f"{process.pid} {cmdline[:200]}")
    return found


def measure(
    state: Path,
    minutes: float,
    pages: int,
    say: Callable[[str], None],
    seed: int = 23,
    out: Path | None = None,
    trace: int = 0,
    grace: float = SESSION_GRACE,
) -> dict[str, Any]:
    """Drive one server for `minutes` from `pages` pages; the samples, the counts and the checks at the end.

    The server (bench/soak_server.py) writes what it holds to `out` (the state folder unless given): its page
    sessions and glibc's heap, and with `trace` (frames) tracemalloc's largest growths. It keeps a closed page's
    session `grace` seconds, not the app's hour: a page is replaced every RECYCLE_AFTER operations, far more often
    than a person opens one, and an hour of them would be held at the end of any soak shorter than an hour (the
    size of one session is measured apart, and shown)."""
    tally = Tally()
    samples: list[dict[str, float]] = []
    out = out or state
    out.mkdir(parents=True, exist_ok=True)
    stats = out / "server-stats.jsonl"
    env = {**ENV, "SOAK_STATS": str(stats), "SOAK_SESSION_GRACE": str(grace), "SOAK_STATS_EVERY": str(SAMPLE_EVERY)}
    if trace:
        env["SOAK_TRACEMALLOC"] = str(trace)
    with app_server(state, "soak", env=env, script=SERVER) as server:
        pid = server.process.pid
        started = time.monotonic()
        until = started + minutes * 60
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                try:
                    samples.append({"t": time.monotonic() - started, **sample(pid)})
                except psutil.NoSuchProcess:
                    return
                stop.wait(SAMPLE_EVERY)

        threading.Thread(target=sampler, daemon=True).start()
        workers = [
            SoakPage(server.url, server.engines, tally, random.Random(seed + index), until) for index in range(pages)
        ]
        threads = [threading.Thread(target=worker.run, name=f"page-{i}") for i, worker in enumerate(workers)]
        for thread in threads:
            thread.start()
        last = started
        while any(thread.is_alive() for thread in threads):
            time.sleep(1.0)
            if time.monotonic() - last >= 60:
                last = time.monotonic()
                rss = samples[-1]["rss_mb"] if samples else float("nan")
                say(f"  {(last - started) / 60:.0f} min: {sum(w.done for w in workers)} operations, RSS {rss:.0f} MB")
        for thread in threads:
            thread.join(EVENT_DEADLINE * 2)
        stop.set()
        elapsed = time.monotonic() - started
        # Every page has ended; the server must come to rest with no build and no child of its own.
        rest = time.monotonic() + 60
        while time.monotonic() < rest and psutil.Process(pid).children(recursive=True):
            time.sleep(0.5)
        children_at_rest = [f"{c.pid} {' '.join(c.cmdline())[:200]}" for c in psutil.Process(pid).children(True)]
        final = sample(pid)
        marker = str(server.workdir)
        consistency = check_folder(server.engines, tally.seen)
    orphans = strays(marker, {psutil.Process().pid})
    series = [(point["t"], point["rss_mb"] * MB) for point in samples]
    held = server_stats(stats)
    return {
        "server_stats": held,
        "server_clock_offset": server.ready - server.started,  # its clock starts this much before the samples'
        "variants_at_end": sum(len(names) for names in tally.seen.values()),
        "traced": trace,
        "session_grace_s": grace,
        "library_level": LIBRARY_LEVEL,
        "malloc_slope_mb_min": slope_mb_per_min(
            [(line["t"], float(line["malloc_in_use"])) for line in held if "malloc_in_use" in line]
        ),
        "minutes": minutes,
        "pages": pages,
        "seconds": elapsed,
        "operations": sum(w.done for w in workers),
        "counts": dict(sorted(tally.counts.items())),
        "builds": sum(v for k, v in tally.counts.items() if k.startswith("build_") and k != "build_joined_to_cancel"),
        "raw_errors": tally.raw,
        "event_failures": tally.failures,
        "cancel_s": tally.cancel_s,
        "unclassified": tally.unclassified,
        "samples": samples,
        "final": final,
        "rss_slope_mb_min": slope_mb_per_min(series),
        "children_at_rest": children_at_rest,
        "orphans": orphans,
        "consistency": consistency.__dict__,
        "consistency_problems": consistency.problems(),
    }


def held_text(data: dict[str, Any], held: list[dict[str, Any]]) -> list[str]:
    """What the server said it holds (bench/soak_server.py), in words: sessions, glibc's heap."""
    if not held:
        return []
    per_session = [line["session_components"] / line["sessions"] for line in held if line["sessions"]]
    text = [
        f"The library was held at about {data.get('library_level', LIBRARY_LEVEL)} variants (a page deletes models "
        f"past it; {data.get('variants_at_end', '?')} at the end), so that the slope is about the server and not "
        "about more data. A closed page's session was released "
        f"{data.get('session_grace_s', SESSION_GRACE):g} s after its heartbeat ended (the app waits an hour, for a "
        "page that comes back; the soak replaces a page far more often than a person opens one, and an hour of "
        "closed pages would all still be held at the end of a 20-minute run). The server held "
        f"{min(line['sessions'] for line in held)}–{max(line['sessions'] for line in held)} page sessions of "
        f"{min(per_session, default=0):.0f}–{max(per_session, default=0):.0f} components each.",
    ]
    heap = [line for line in held if "malloc_in_use" in line]
    if heap:
        slope = data.get("malloc_slope_mb_min", float("nan"))
        text.append(
            f"glibc's heap (mallinfo2; Python's own small-object arenas are not in it): in use "
            f"{heap[0]['malloc_in_use'] / MB:.0f} → {heap[-1]['malloc_in_use'] / MB:.0f} MB (slope over the second "
            f"half {slope:.2f} MB/min), free but kept by the allocator {heap[0]['malloc_free'] / MB:.0f} → "
            f"{heap[-1]['malloc_free'] / MB:.0f} MB."
        )
    return text


def render(data: dict[str, Any]) -> str:
    """docs/reliability.md's soak section."""
    samples = data["samples"]
    consistency = data["consistency"]
    slope = data["rss_slope_mb_min"]
    goal = "met" if slope < SLOPE_GOAL else "MISSED"
    lines = [
        "## Soak: one server driven for minutes from several pages",
        "",
        f"Figures from `python bench/run.py --soak {data['minutes']:g}` on {data['when']} ({data['machine']}): "
        f"{data['pages']} simulated pages drove one server with the stand-in StreamDiffusion for "
        f"{data['seconds'] / 60:.1f} min, {data['operations']} operations, {data['builds']} builds (random "
        "parameters, every fault mode, rebuilds, forced builds, checks, cancels at random moments), Saves, Load "
        "config, library list/load, deletes; a page is replaced by a fresh session every "
        f"{RECYCLE_AFTER} operations. Written by bench/soak.py; only this section is regenerated.",
        "",
        "| goal | measured | |",
        "|---|---|---|",
        f"| server RSS slope over the second half < {SLOPE_GOAL:g} MB/min | {slope:.2f} MB/min | {goal} |",
        f"| raw errors (exception text or Errno reaching a page) = 0 | {len(data['raw_errors'])} | "
        f"{'met' if not data['raw_errors'] else 'MISSED'} |",
        f"| leftovers (.tmp/.partial/.aside) = 0 | {len(consistency['leftovers'])} | "
        f"{'met' if not consistency['leftovers'] else 'MISSED'} |",
        f"| orphaned processes = 0 (after the server stopped; its children at rest: "
        f"{len(data['children_at_rest'])}) | {len(data['orphans'])} | "
        f"{'met' if not data['orphans'] and not data['children_at_rest'] else 'MISSED'} |",
        f"| build.json readable, recorded engines present ({consistency['models']} models, "
        f"{consistency['engines']} engines) | {len(consistency['unreadable'])} unreadable, "
        f"{len(consistency['missing'])} missing | "
        f"{'met' if not consistency['unreadable'] and not consistency['missing'] else 'MISSED'} |",
        f"| variants the pages saw built = build.json's | {len(consistency['mismatched'])} mismatched | "
        f"{'met' if not consistency['mismatched'] else 'MISSED'} |",
        f"| events that failed or timed out | {len(data['event_failures'])} | |",
        "",
        "Counts the pages saw: " + ", ".join(f"{name} {value}" for name, value in data["counts"].items()) + ".",
    ]
    if samples:
        first, last = samples[0], samples[-1]
        lines.append("")
        lines.append(
            f"Over the run the server's RSS went from {first['rss_mb']:.0f} to {last['rss_mb']:.0f} MB; open fds "
            f"stayed within {min(p['fds'] for p in samples):.0f}–{max(p['fds'] for p in samples):.0f}, threads "
            f"{min(p['threads'] for p in samples):.0f}–{max(p['threads'] for p in samples):.0f}, child processes at "
            f"most {max(p['children'] for p in samples):.0f}. The engines folder grew alongside: "
            f"{consistency['models']} models with {consistency['engines']} recorded engines at the end."
        )
    if data["cancel_s"]:
        cancels = sorted(data["cancel_s"])
        lines.append(
            f"Cancel answered (request → cancelled view) in median {cancels[len(cancels) // 2]:.2f} s, "
            f"max {cancels[-1]:.2f} s over {len(cancels)} cancels."
        )
    held = data.get("server_stats") or []
    lines += ["", *held_text(data, held)]
    lines += [
        "",
        "| minute | RSS MB | open fds | threads | children | sessions | components in them | malloc in use MB | "
        "malloc free MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    step = max(1, len(samples) // 20)
    shown = samples[::step]
    if samples and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    offset = float(data.get("server_clock_offset") or 0.0)
    for point in shown:
        near = min(held, key=lambda line: abs(line["t"] - offset - point["t"])) if held else {}
        server = (
            f"{near['sessions']} | {near['session_components']} | {near.get('malloc_in_use', float('nan')) / MB:.1f} | "
            f"{near.get('malloc_free', float('nan')) / MB:.1f}"
            if near
            else "– | – | – | –"
        )
        lines.append(
            f"| {point['t'] / 60:.1f} | {point['rss_mb']:.1f} | {point['fds']:.0f} | {point['threads']:.0f} | "
            f"{point['children']:.0f} | {server} |"
        )
    for title, items in (
        ("Raw errors", data["raw_errors"]),
        ("Failed events", data["event_failures"]),
        ("Build views with no outcome", data["unclassified"]),
        ("Orphans", data["orphans"] + data["children_at_rest"]),
        (
            "Consistency problems",
            consistency["unreadable"] + consistency["missing"] + consistency["leftovers"] + consistency["mismatched"],
        ),
    ):
        if items:
            lines += ["", f"{title} (first 10 of {len(items)}):", ""]
            lines += ["- `" + item[:300].replace("`", "'") + "`" for item in items[:10]]
    return "\n".join(lines) + "\n"
