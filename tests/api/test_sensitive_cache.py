"""Sensitive work is neither answered from the result cache nor stored in it: its entry's
key, an unsalted hash of the inputs, would sit in the store's bookkeeping in the clear
(and tell a low-entropy input by guessing), and a hit would hand it another's result."""

from __future__ import annotations

import uuid
from typing import Any

from limit_graph.core.models import BackendKind
from limit_graph.orchestration.cache import NAMESPACE, cache_key
from tests.fixtures.api import Api


async def _twice(api: Api, session_id: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    body = {"agent": "echo", "inputs": inputs, "allow_cached": True}
    answers = []
    for _ in range(2):
        response = await api.client.post(f"/sessions/{session_id}/execute", json=body)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


async def _entry(api: Api, session_id: str, inputs: dict[str, Any]) -> object:
    """The cache entry these inputs of ``echo`` would have in this session's tenant."""
    session = await api.platform.storage.get_session(uuid.UUID(session_id))
    assert session is not None
    key = cache_key(
        api.platform.registry.find("echo"), inputs, BackendKind.LOCAL, tenant=session.tenant
    )
    return await api.platform.storage.get_value(NAMESPACE, key)


async def test_sensitive_work_is_neither_answered_from_the_cache_nor_stored_in_it(
    api: Api,
) -> None:
    shared = {"text": "078-05-1120"}
    plain = await api.new_session()
    first, again = await _twice(api, plain, shared)
    assert again["cache_hit"] is True and again["cached_from"] == first["id"]  # the control
    assert await _entry(api, plain, shared) is not None

    for config in ({"sensitive": True}, {"classification": {"text": "pii"}}):
        sid = await api.new_session(**config)
        # The plain session's entry (same tenant, same inputs) answers nothing here ...
        for answer in await _twice(api, sid, shared):
            assert answer["cache_hit"] is False and answer.get("cached_from") is None
            assert answer["result"] == shared
        # ... and its own inputs leave no entry behind.
        own = {"text": f"own-{uuid.uuid4()}"}
        for answer in await _twice(api, sid, own):
            assert answer["cache_hit"] is False and answer["result"] == own
        assert await _entry(api, sid, own) is None
        stored = await api.platform.storage.get_execution(uuid.UUID(answer["id"]))
        assert stored is not None and stored.sensitive
