"""Page sessions stay bounded: a closed page's session is released, and an open page's session sheds the copies of
components that Gradio no longer reads.

Gradio keeps every page's session (its own copy of the page's config and its gr.State values) until 10,000 sessions
are held, so a server that runs for days would keep every page ever opened. When a page closes (Gradio's unload
event, on the end of its heartbeat), its session is dropped once a grace period has passed without the page coming
back (a page whose connection broke for a moment reconnects with the same session and keeps it, its running build's
Cancel included).

A component that gets new properties (the library's lists get new choices after a build) and is then read again
leaves one stale copy of itself in the session each time (docs/gradio-session-growth.md): drop_stale_copies removes
them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio.from_thread
import gradio as gr

# Seconds a closed page's session is kept for it to come back: as long as Gradio itself keeps a closed page's gr.State
# values (SessionState.STATE_TTL_WHEN_CLOSED), so a page that comes back later has lost them anyway.
CLOSED_SESSION_GRACE = 3600.0


def release_closed_sessions(demo: gr.Blocks) -> None:
    """Wire the page's unload to the release of its session (in the Blocks being built)."""

    def closed(request: gr.Request) -> None:
        session = request.session_hash
        if session:
            later(CLOSED_SESSION_GRACE, demo, session, time.time())

    demo.unload(closed)


def later(delay: float, demo: gr.Blocks, session: str, closed_at: float) -> None:
    timer = threading.Timer(delay, release, args=(demo, session, closed_at))
    timer.daemon = True
    timer.start()


def release(demo: gr.Blocks, session: str, closed_at: float) -> bool:
    """Drop `session` unless it was used after it closed (then look again after another grace period)."""
    holder: Any = getattr(demo, "state_holder", None)
    if holder is None:
        return False
    with holder.lock:
        if session not in holder.session_data:
            return False
        used = holder.time_last_used.get(session)
        # The unload event itself reads the session just before `closed_at`; a second's slack covers it.
        if used is not None and used.timestamp() > closed_at + 1.0:
            came_back = True
        else:
            came_back = False
            del holder.session_data[session]
            holder.time_last_used.pop(session, None)
    if came_back:
        later(CLOSED_SESSION_GRACE, demo, session, time.time())
    return not came_back


def drop_stale_copies(demo: gr.Blocks, session: str) -> int:
    """Remove from `session` the component copies Gradio will not read again; how many were removed.

    Gradio looks a page's components up by the ids of the page's own blocks; a property update replaces the instance
    kept under that id with a new one (with an id of its own), which the next read stores under its own id as well.
    Kept: every id of the page's blocks and the id of each instance now kept under one; the rest are earlier
    instances that no lookup reaches. Run on Gradio's event loop, where its reads and writes of a session happen
    without a break between them, so no event sees a copy vanish between storing and using it."""

    def drop() -> int:
        holder: Any = getattr(demo, "state_holder", None)
        state = holder.session_data.get(session) if holder is not None else None
        if state is None:
            return 0
        kept = state.blocks_config.blocks
        own = set(demo.blocks)
        current = {block._id for key, block in list(kept.items()) if key in own}
        stale = [key for key in list(kept) if key not in own and key not in current]
        for key in stale:
            kept.pop(key, None)
            state.config_values.pop(key, None)
        return len(stale)

    try:
        return int(anyio.from_thread.run_sync(drop))
    except RuntimeError:  # not in one of Gradio's worker threads (a direct call): nothing runs beside it
        return drop()
