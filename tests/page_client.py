"""Kept for imports written before the test support moved to the `testkit` package; new code imports
testkit.page_client."""

from testkit.page_client import PageClient, PageEndpoint

__all__ = ["PageClient", "PageEndpoint"]
