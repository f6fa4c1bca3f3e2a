"""A job pages follow (sdprep/jobs/background.py): a follower always ends on the job's result."""

from __future__ import annotations

import asyncio

from sdprep.jobs.background import BackgroundJob
from sdprep.jobs.job import JobResult
from sdprep.messages import msg
from testkit.timing import SUITE_TIMEOUT


def test_a_result_set_while_the_follower_draws_gets_one_more_round() -> None:
    """The result arrives after a round was yielded and before the follower asks again: it must be drawn."""
    job: BackgroundJob[JobResult] = BackgroundJob()
    drawn: list[JobResult | None] = []

    async def follow() -> None:
        async for _ in job.afollow(interval=0.01, poll=0.001):
            drawn.append(job.result)
            if job.result is None:
                job.set_result(JobResult("failed", msg("unknown")))  # while this round is being drawn

    asyncio.run(asyncio.wait_for(follow(), timeout=SUITE_TIMEOUT))
    assert drawn[0] is None
    assert drawn[-1] is not None and drawn[-1].outcome == "failed"


def test_a_follower_of_a_finished_job_draws_it_once_and_stops() -> None:
    job: BackgroundJob[JobResult] = BackgroundJob()
    job.set_result(JobResult("built", msg("unknown")))
    rounds = 0

    async def follow() -> None:
        nonlocal rounds
        async for _ in job.afollow(interval=0.01, poll=0.001):
            rounds += 1

    asyncio.run(asyncio.wait_for(follow(), timeout=SUITE_TIMEOUT))
    assert rounds == 1


def test_follow_in_a_thread_ends_on_the_result() -> None:
    job: BackgroundJob[JobResult] = BackgroundJob()
    seen = []
    for _events, result in job.follow(interval=0.01):
        seen.append(result)
        if result is None:
            job.set_result(JobResult("built", msg("unknown")))
    assert seen[-1] is not None and len(seen) == 2
