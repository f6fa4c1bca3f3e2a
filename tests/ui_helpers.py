"""Kept for imports written before the test support moved to the `testkit` package (testkit/app.py, testkit/api.py);
new code imports from there."""

from testkit.api import ALIASES, Api, Endpoint, component_name, value_of
from testkit.app import START_TIMEOUT, RunningApp, free_port, running_app
from testkit.paths import ARTIFACTS, ROOT, STANDIN

__all__ = [
    "ALIASES",
    "ARTIFACTS",
    "ROOT",
    "STANDIN",
    "START_TIMEOUT",
    "Api",
    "Endpoint",
    "RunningApp",
    "component_name",
    "free_port",
    "running_app",
    "value_of",
]
