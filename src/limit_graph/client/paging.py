"""Pages of a listing (``{"items", "next_cursor"}``) and walking through all of them.

>>> pages = {None: Page([1, 2], "c2"), "c2": Page([3], None)}
>>> list(paginate(lambda cursor=None: pages[cursor]))
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Page", "apaginate", "paginate"]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` fetches the next (``None`` on the last)."""

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def paginate(fetch: Callable[..., Page[T]], /, **kwargs: Any) -> Iterator[T]:
    """Every item of a listing, page after page: ``fetch`` is a ``list_*`` method of
    :class:`~limit_graph.client.LimitClient`, ``kwargs`` its filters.

    >>> # for run in paginate(client.list_workflow_runs, session_id=sid): print(run.state)
    """
    cursor: str | None = None
    while True:
        page = fetch(**kwargs, cursor=cursor)
        yield from page.items
        if not page.next_cursor:
            return
        cursor = page.next_cursor


async def apaginate(fetch: Callable[..., Awaitable[Page[T]]], /, **kwargs: Any) -> AsyncIterator[T]:
    """:func:`paginate` for :class:`~limit_graph.client.AsyncLimitClient`.

    >>> # async for session in apaginate(client.list_sessions, state="active"): ...
    """
    cursor: str | None = None
    while True:
        page = await fetch(**kwargs, cursor=cursor)
        for item in page.items:
            yield item
        if not page.next_cursor:
            return
        cursor = page.next_cursor
