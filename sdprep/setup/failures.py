"""Known install and self-test failures: an error pattern, the reason in one line, and the fix.

The build stack breaks in a handful of ways again and again (StreamDiffusion issues, the A1111 TensorRT extension's
install threads, NVIDIA/TensorRT issues); each is recognised here from the text uv, git, Python or TensorRT print,
so a person reads the cause and what to do instead of a wall of log. The first pattern that matches wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sdprep.messages import Message, msg


@dataclass(frozen=True)
class KnownFailure:
    pattern: re.Pattern[str]
    reason: str  # text code
    fix: str  # text code


def _known(pattern: str, reason: str, fix: str) -> KnownFailure:
    return KnownFailure(re.compile(pattern, re.IGNORECASE), reason, fix)


KNOWN_FAILURES: tuple[KnownFailure, ...] = (
    # Linux, then Windows (ERROR_DISK_FULL 112, as uv and Python print it).
    _known(
        r"No space left on device|os error 28\b|disk full|not enough space on the disk|os error 112\b|WinError 112\b",
        "fail_disk_full",
        "fix_free_disk",
    ),
    # Windows file errors: a path over 260 characters, a file held by another program, access refused.
    _known(
        r"os error 206\b|WinError 206\b|filename or extension is too long|File name too long",
        "fail_path_too_long",
        "fix_path_too_long",
    ),
    _known(
        r"os error 32\b|WinError 32\b|being used by another process|os error 33\b|WinError 33\b",
        "fail_file_in_use",
        "fix_file_in_use",
    ),
    _known(r"os error 5\b|WinError 5\b|Access is denied", "fail_access_denied", "fix_access_denied"),
    # uv on a folder an earlier try left behind (setup removes it first; a held file can keep it).
    _known(r"A directory already exists at|already exists.{0,80}--clear", "fail_folder_exists", "fix_folder_exists"),
    # A company proxy or antivirus that inspects HTTPS: its certificate is in the system's store, not in uv's own.
    _known(
        r"invalid peer certificate|UnknownIssuer|certificate verify failed|self[- ]signed certificate",
        "fail_tls_certificate",
        "fix_tls_certificate",
    ),
    # git missing: uv's own words, and a shell's.
    _known(
        r"git executable (?:not found|could not be found)|git: (?:command )?not found|Git not found",
        "fail_git_missing",
        "fix_install_git",
    ),
    _known(
        r"couldn't find remote ref|did not match any file\(s\) known to git|fatal: reference is not a tree|"
        r"failed to (?:fetch|checkout|resolve) (?:commit|ref|reference)|Repository not found|Failed to clone",
        "fail_fork_ref",
        "fix_fork_ref",
    ),
    _known(
        r"No interpreter found for Python|requires-python|Python>=|is not compatible with Python",
        "fail_python",
        "fix_python",
    ),
    _known(r"wheel_stub|pypi\.nvidia\.com", "fail_nvidia_index", "fix_nvidia_index"),
    _known(
        r"dns error|failed to lookup address|Name or service not known|Temporary failure in name resolution|"
        r"Connection (?:refused|reset)|Network is unreachable|timed out|Failed to fetch|error sending request",
        "fail_network",
        "fix_network",
    ),
    _known(r"No module named 'tensorrt_bindings'", "fail_trt_bindings", "fix_setup_upgrade"),
    _known(r"libcudnn\S*|cudnn\S*\.dll|cudnn_ops", "fail_cudnn", "fix_setup_upgrade"),
    _known(
        r"CUDA initialization failure with error: 35|cudaErrorInsufficientDriver|driver version is insufficient|"
        r"factory function returned nullptr",
        "fail_driver_too_old",
        "fix_driver",
    ),
    _known(r"Torch not compiled with CUDA enabled", "fail_cpu_torch", "fix_setup_upgrade"),
    _known(
        r"is required for a normal functioning of this module|version conflict|incompatible",
        "fail_dependency_pin",
        "fix_setup_upgrade",
    ),
    # The forkni fork's TensorRT path imports it for every build (docs/streamdiffusion-facts.md §13); setup installs
    # it at the fork's pin.
    _known(r"No module named 'diffusers_ipadapter'", "fail_ipadapter_missing", "fix_setup_upgrade"),
    _known(r"No module named '([\w.]+)'", "fail_missing_module", "fix_setup_upgrade"),
)

_URL = re.compile(r"https?://([^/\s`'\"]+)((?:/[^\s`'\")]*)?)")
_PACKAGE = re.compile(r"Failed to (?:download|build) `([A-Za-z0-9_.\-]+)")
_MODULE = re.compile(r"No module named '([\w.]+)'")


def _where(text: str) -> tuple[str, str]:
    """The host and the package of the last URL the text names (uv says what it fetched last, after the cause)."""
    urls = list(_URL.finditer(text))
    if not urls:
        return "?", "?"
    host, path = urls[-1].group(1), urls[-1].group(2)
    named = _PACKAGE.search(text)
    parts = [part for part in path.split("/") if part]
    # An index page ends in the package's name: .../simple/torch/ or .../whl/cu128/torchvision/.
    package = named.group(1) if named else (parts[-1] if parts and "." not in parts[-1] else "?")
    return host, package


def explain(text: str) -> Message | None:
    """The known failure in `text` (a log tail or an error line) as "reason — fix", or None when none matches."""
    for known in KNOWN_FAILURES:
        match = known.pattern.search(text)
        if match is None:
            continue
        host, package = _where(text)
        module = _MODULE.search(text)
        details = {
            "host": host,
            "package": package,
            "module": module.group(1).split(".")[0] if module else "?",
            "line": match.group(0),
        }
        return msg("known_failure", reason=msg(known.reason, **details), fix=msg(known.fix))
    return None
