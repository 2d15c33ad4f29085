"""Tables of the database backend (SQLAlchemy Core), shared by the code and the migrations.

Each record is kept whole as a JSON document, with the columns it is filtered,
ordered or joined by beside it.  Sort keys are microseconds since the epoch, which
order the same way on SQLite and Postgres.  Callers import the package
(``from limit_graph.storage import schema as t``) and use the names below; the
modules hold one area each:

- ``columns``: the :data:`metadata`, the document column and the microsecond keys;
- ``records``: sessions, executions, workflow runs, archives, the store;
- ``ledger``: the ledger's entries, tree nodes, head and checkpoints;
- ``identity``, ``quotas``, ``keyring``, ``lineage``: the tables of those stores;
- ``dispatch``: the queue of work for runners shared by the API processes, and signals;
- ``leases``: which process runs the services that run once per platform;
- ``rows``: records as the rows and parameters the writers send;
- ``statements``: the ledger head's lock and move, the executemany updates.

>>> sorted(metadata.tables)[:3]
['limit_api_keys', 'limit_archives', 'limit_checkpoints']
"""

from limit_graph.storage.schema.columns import EPOCH, Document, from_micros, metadata, to_micros
from limit_graph.storage.schema.dispatch import dispatch, dispatch_runners, signals
from limit_graph.storage.schema.identity import (
    api_keys,
    grants,
    identity_epoch,
    policies,
    principals,
    signing_keys,
    tenants,
)
from limit_graph.storage.schema.keyring import data_keys
from limit_graph.storage.schema.leases import leases
from limit_graph.storage.schema.ledger import (
    ENTRY_COLUMNS,
    checkpoints,
    ledger,
    ledger_head,
    ledger_nodes,
)
from limit_graph.storage.schema.lineage import lineage_cursors, lineage_edges, lineage_nodes
from limit_graph.storage.schema.quotas import quota_counters, quota_limits, quota_reservations
from limit_graph.storage.schema.records import (
    archives,
    executions,
    kv,
    session_tags,
    sessions,
    workflow_runs,
)
from limit_graph.storage.schema.rows import (
    execution_changes,
    execution_row,
    ledger_entry,
    ledger_row,
    node_rows,
    session_row,
    tag_rows,
    workflow_run_changes,
    workflow_run_row,
)
from limit_graph.storage.schema.statements import (
    LOCK_LEDGER_HEAD,
    MOVE_LEDGER_HEAD,
    UPDATE_EXECUTIONS,
    UPDATE_WORKFLOW_RUNS,
    execution_by_key,
    head_values,
)

__all__ = [
    "ENTRY_COLUMNS",
    "EPOCH",
    "LOCK_LEDGER_HEAD",
    "MOVE_LEDGER_HEAD",
    "UPDATE_EXECUTIONS",
    "UPDATE_WORKFLOW_RUNS",
    "Document",
    "api_keys",
    "archives",
    "checkpoints",
    "data_keys",
    "dispatch",
    "dispatch_runners",
    "execution_by_key",
    "execution_changes",
    "execution_row",
    "executions",
    "from_micros",
    "grants",
    "head_values",
    "identity_epoch",
    "kv",
    "leases",
    "ledger",
    "ledger_entry",
    "ledger_head",
    "ledger_nodes",
    "ledger_row",
    "lineage_cursors",
    "lineage_edges",
    "lineage_nodes",
    "metadata",
    "node_rows",
    "policies",
    "principals",
    "quota_counters",
    "quota_limits",
    "quota_reservations",
    "session_row",
    "session_tags",
    "sessions",
    "signals",
    "signing_keys",
    "tag_rows",
    "tenants",
    "to_micros",
    "workflow_run_changes",
    "workflow_run_row",
    "workflow_runs",
]
