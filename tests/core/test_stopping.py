"""Background loops stop between rounds: a round under way finishes (a transaction is
never cut in two by a cancellation), and only one that overruns the grace is cancelled."""

from __future__ import annotations

import asyncio

from limit_graph.core.stopping import Stopper


async def test_a_round_under_way_finishes_before_the_loop_stops() -> None:
    stopper, log = Stopper(), []
    started = asyncio.Event()

    async def loop() -> None:
        while True:
            log.append("begin")
            started.set()
            await asyncio.sleep(0.05)  # the round's own awaits are not interrupted
            log.append("commit")
            if not await stopper.wait(3600):
                return

    task = asyncio.create_task(loop())
    await started.wait()
    await stopper.stop(task)
    assert log == ["begin", "commit"]
    assert task.done() and not task.cancelled()


async def test_a_round_that_overruns_the_grace_is_cancelled() -> None:
    stopper = Stopper()
    started = asyncio.Event()

    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await started.wait()
    await stopper.stop(task, grace_s=0.01)
    assert task.cancelled()


async def test_waiting_ends_early_when_woken_and_says_whether_to_go_on() -> None:
    stopper, wake = Stopper(), asyncio.Event()
    wake.set()
    assert await stopper.wait(3600, wake) is True
    assert not wake.is_set()  # cleared for the next round
    await stopper.stop(None)
    assert stopper.stopping
    assert await stopper.wait(3600, wake) is False
