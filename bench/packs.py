"""Packs: pack and unpack throughput against a plain copy of the same files on the same disk, and the memory of the
pack and unpack commands for a small and a large build (it stays flat: files are streamed in 1 MiB chunks).

A build is made with the stand-in StreamDiffusion, then its engine files are replaced by large files of random
blocks (each 1 MiB block differs, so nothing can be deduplicated or skipped) and build.json re-stamped, as if a real
GPU had built engines of that size. All in one temporary folder, so copy, pack and unpack read and write one disk.
The copy is `shutil.copyfile` of every file of the build then an fsync, as pack and unpack fsync what they write.

    python bench/run.py --packs [--pack-mb 2048]     only this, written into its section of docs/performance.md
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.environment import probe
from sdprep.jobs.process import ChildSpec
from sdprep.model_folder import read_manifest, write_manifest
from sdprep.pack import pack
from sdprep.params import params_from_values
from sdprep.unpack import unpack
from testkit.app import runtime_defaults
from testkit.paths import APP, STANDIN

DEFAULT_MB = 2048
SMALL_MB = 64
BLOCK = 1024 * 1024
POLL = 0.02  # seconds between RSS readings of a pack or unpack process


def _fill(path: Path, size: int, seed: bytes) -> None:
    """`size` bytes of random-looking data: one random block, each copy stamped with its index."""
    block = bytearray(seed)
    with open(path, "wb") as out:
        for index in range(size // BLOCK):
            block[:8] = index.to_bytes(8, "little")
            out.write(block)
        out.write(bytes(size % BLOCK))
        out.flush()
        os.fsync(out.fileno())  # on disk before anything is timed: no flush of it is charged to the copy


def make_build(root: Path, size_mb: int) -> Path:
    """A stand-in build under `root`/engines whose engines total `size_mb` MB; its config.yaml."""
    result = run_build(
        params_from_values({"engines_dir": str(root / "engines")}),
        runtime_defaults(),
        BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN))),
    )
    if not result.ok or result.config_path is None:
        raise RuntimeError(f"the stand-in build failed: {result.reason}")
    folder = result.config_path.parent
    manifest = read_manifest(folder)
    engines = sorted(manifest.engines)
    shares = {"unet": 0.7, "vae_encoder": 0.15, "vae_decoder": 0.15}
    seed = os.urandom(BLOCK)
    for relative in engines:
        path = folder / relative
        share = shares.get(relative.rsplit("/", 1)[-1].removesuffix(".engine"), 0.0)
        _fill(path, int(size_mb * BLOCK * share), seed)
        found = path.stat()
        manifest.engines[relative].size, manifest.engines[relative].mtime_ns = found.st_size, found.st_mtime_ns
    write_manifest(folder, manifest)
    return result.config_path


def _copy(config: Path, target: Path) -> int:
    """A plain copy of every file of the build's folder, fsync'ed: the bytes copied."""
    copied = 0
    for path in sorted(config.parent.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(config.parent)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            with open(destination, "rb+") as file:
                os.fsync(file.fileno())
            copied += path.stat().st_size
    return copied


def peak_rss(command: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    """(peak RSS in bytes of the process and its children, seconds, its last stdout line), polled every POLL s."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            rss = watched.memory_info().rss + sum(child.memory_info().rss for child in watched.children(True))
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        time.sleep(POLL)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{command[2:4]} exited {process.returncode}: {err[-500:]}")
    return peak, time.perf_counter() - started, out.strip().splitlines()[-1]


def _mb_s(size: int, seconds: float) -> float:
    return size / 1e6 / seconds if seconds > 0 else 0.0


def measure(state: Path, size_mb: int, say: Callable[[str], None]) -> dict[str, Any]:
    work = state / "packs"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SDPREP_STREAMDIFFUSION_SRC": str(STANDIN), "SDPREP_REHEARSE": "0"}
    os.environ.update({"SDPREP_STREAMDIFFUSION_SRC": str(STANDIN), "SDPREP_REHEARSE": "0"})
    spec = ChildSpec(streamdiffusion_src=str(STANDIN))
    probe(spec)  # the probe is cached before anything is timed (unpack asks it)
    out: dict[str, Any] = {"size_mb": size_mb, "rss": {}}
    for mb in (SMALL_MB, size_mb):
        config = make_build(work / f"b{mb}", mb)
        say(f"  a build of {mb} MB: pack and unpack as commands, peak RSS")
        pack_rss, _, pack_path = peak_rss([sys.executable, str(APP), "pack", str(config)], env)
        unpack_rss, _, _ = peak_rss(
            [sys.executable, str(APP), "unpack", pack_path, "--engines-dir", str(work / f"u{mb}")], env
        )
        out["rss"][str(mb)] = {"pack": pack_rss, "unpack": unpack_rss}
        if mb != size_mb:
            shutil.rmtree(work / f"b{mb}")
            shutil.rmtree(work / f"u{mb}")
    say(f"  {size_mb} MB: a plain copy, pack, unpack and the copy again, in-process")
    config = make_build(work / f"b{size_mb}-again", size_mb)
    copies = []
    for _ in range(2):  # before and after: the disk's state drifts (other writers, its cache)
        started = time.perf_counter()
        copied = _copy(config, work / "copy")
        copies.append(time.perf_counter() - started)
        shutil.rmtree(work / "copy")
        if len(copies) == 1:
            started = time.perf_counter()
            packed = pack(config, work / "timed.sdpack.zip", spec=spec)
            out["pack"] = {"bytes": packed.manifest.size, "seconds": time.perf_counter() - started}
            started = time.perf_counter()
            unpack(packed.path, work / "unpacked", spec)
            out["unpack"] = {"bytes": packed.manifest.size, "seconds": time.perf_counter() - started}
    out["copy"] = {"bytes": copied, "seconds": sum(copies) / 2, "each": copies}
    out["load"] = f"{os.getloadavg()[0]:.2f}"
    shutil.rmtree(work, ignore_errors=True)
    return out


def render(data: dict[str, Any], when: str, machine: str) -> str:
    def row(name: str) -> str:
        size, seconds = data[name]["bytes"], data[name]["seconds"]
        return f"| {name} | {size / 1e6:,.0f} MB | {seconds:.2f} s | {_mb_s(size, seconds):,.0f} MB/s |"

    small, large = str(SMALL_MB), str(data["size_mb"])
    rss = data["rss"]
    copy_rate = _mb_s(data["copy"]["bytes"], data["copy"]["seconds"])
    ratios = {name: _mb_s(data[name]["bytes"], data[name]["seconds"]) / copy_rate for name in ("pack", "unpack")}
    lines = [
        "## Packs",
        "",
        f"Measured {when} on {machine} (shared with other test runs; load {data['load']} at the end), by "
        f"`python bench/run.py --packs --pack-mb {data['size_mb']}` (`bench/packs.py`). One disk, one temporary "
        "folder; the engine files are random 1 MiB blocks, each different.",
        "",
        "| what | bytes | time | throughput |",
        "|---|---:|---:|---:|",
        row("copy"),
        row("pack"),
        row("unpack"),
        "",
        "The copy is the mean of one before and one after pack and unpack ("
        + ", ".join(f"{seconds:.2f} s" for seconds in data["copy"].get("each", []))
        + "). Pack and unpack read and write every byte once, as the copy does, and hash it (SHA-256, and zip's "
        "CRC-32); an unpack writes into a working folder and then renames, never a second copy. Here they run at "
        f"{ratios['pack']:.2f}× and {ratios['unpack']:.2f}× the copy's speed.",
        "",
        "Peak memory (RSS of the command and its children, polled every 20 ms; the unpack's environment probe is "
        "answered from its cache, as on a machine that has probed once):",
        "",
        f"| command | build of {small} MB | build of {large} MB |",
        "|---|---:|---:|",
        f"| `pack` | {rss[small]['pack'] / 1e6:.0f} MB | {rss[large]['pack'] / 1e6:.0f} MB |",
        f"| `unpack` | {rss[small]['unpack'] / 1e6:.0f} MB | {rss[large]['unpack'] / 1e6:.0f} MB |",
        "",
        "Memory stays flat: the same with a build "
        f"{int(data['size_mb']) // SMALL_MB}× as large (files are streamed in 1 MiB chunks and hashed while written).",
    ]
    return "\n".join(lines) + "\n"
