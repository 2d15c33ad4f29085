"""Schema migrations on a database that holds data: a store made at an older revision
upgrades on start, keeps every record and its chain, and then stores what is new.

The older database is made as that release made it: Alembic up to the revision, then
rows written with the columns the revision had.
"""

from __future__ import annotations

from sqlalchemy import Engine, event, insert, inspect, select

from limit_graph.core.models import ExecutionState
from limit_graph.orchestration.ledger_verify import verify_ledger
from limit_graph.storage import schema as t
from limit_graph.storage.base import execution_draft, session_draft
from limit_graph.storage.database import DatabaseStorage, schema_versions
from limit_graph.storage.ledger import verify_entries
from limit_graph.storage.paging import Page
from tests.fixtures.legacy_ledger import chained_rows, same_entry, write_chain
from tests.fixtures.migrations import downgrade, migrate
from tests.fixtures.records import T0, make_execution, make_session
from tests.fixtures.workflow_records import make_workflow_run, step_execution


def _execution_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("limit_executions")}


async def test_a_database_made_at_0002_upgrades_with_its_data(engine: Engine, url: str) -> None:
    migrate(engine, "0002")
    assert "workflow_run_id" not in _execution_columns(engine)
    session = make_session(tags=("old",))
    execution = make_execution(session, key="k")
    execution = execution.model_copy(update={"provenance_entry": 1})
    chain = chained_rows(
        [
            (session_draft(session, actor="alice", action="created"), T0),
            (execution_draft(execution, actor="alice", action="saved"), T0),
        ]
    )
    old_row = {k: v for k, v in t.execution_row(execution).items() if k != "workflow_run_id"}
    with engine.begin() as conn:
        conn.execute(insert(t.sessions), [t.session_row(session)])
        conn.execute(insert(t.session_tags), t.tag_rows(session))
        conn.execute(insert(t.executions), [old_row])
        write_chain(conn, chain)

    store = DatabaseStorage(url)
    await store.start()
    try:
        assert "workflow_run_id" in _execution_columns(engine)
        with engine.connect() as conn:
            assert conn.scalar(select(t.executions.c.workflow_run_id)) is None
        assert await store.get_session(session.id) == session
        assert await store.get_execution(execution.id) == execution
        assert await store.find_execution_by_key(session.id, "k") == execution
        migrated = await store.list_entries()
        assert [same_entry(e, d) for e, d in zip(migrated, chain, strict=True)] == [True, True]
        assert {e.tenant for e in migrated} == {session.tenant}

        run = make_workflow_run(session)
        await store.write_workflow_run(run, actor="alice", action="workflow.created")
        step = await store.write_execution(
            step_execution(session, run, "load"), actor="engine", action="execution.saved"
        )
        later = execution.model_copy(update={"state": ExecutionState.CANCELLED})
        later = await store.write_execution(later, actor="alice", action="execution.cancelled")
        assert await store.list_workflow_executions(run.id) == [step]
        page = await store.list_workflow_runs(session.id, limit=5, cursor=None)
        assert page == Page([run], None)
        assert await store.get_execution(execution.id) == later
        entries = await store.list_entries()
        assert len(entries) == 5 and verify_entries(entries) is None
        assert (await verify_ledger(store)).ok
    finally:
        await store.close()


async def test_0003_downgrades_keeping_the_older_records(engine: Engine, url: str) -> None:
    store = DatabaseStorage(url)
    await store.start()
    try:
        session = make_session()
        await store.write_new_session(session, actor="alice", action="session.created")
        run = make_workflow_run(session)
        await store.write_workflow_run(run, actor="alice", action="workflow.created")
        step = await store.write_execution(
            step_execution(session, run, "load"), actor="alice", action="execution.saved"
        )
    finally:
        await store.close()

    downgrade(engine, "0002")
    assert "workflow_run_id" not in _execution_columns(engine)
    assert "limit_workflow_runs" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.scalar(select(t.executions.c.id)) == step.id
    migrate(engine, "head")
    assert "workflow_run_id" in _execution_columns(engine)


def test_a_database_at_the_newest_revision_is_only_read_as_a_process_starts(
    engine: Engine,
) -> None:
    """Every API process upgrades its database as it starts; one already at the newest
    revision gets its revision read and nothing else: no migration runs.  One revision
    behind, the upgrade runs."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    migrate(engine, "head")
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as conn:
            schema_versions.upgrade(conn)
        # Whether the version table exists, and what it says: reads alone.
        assert len(statements) == 2, statements
        assert all(s.split()[0] in ("SELECT", "PRAGMA") for s in statements), statements
        assert schema_versions.VERSION_TABLE in statements[-1]
        downgrade(engine, schema_versions.revisions()[-2].revision)
        statements.clear()
        with engine.begin() as conn:
            schema_versions.upgrade(conn)
            assert schema_versions.current_revision(conn) == schema_versions.head_revision()
        assert len(statements) > 1
    finally:
        event.remove(engine, "before_cursor_execute", seen)
