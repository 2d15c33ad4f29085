"""Classical data agents: ``data.load_csv``, ``data.transform`` and ``data.summarize``.

They pass a table as a list of row objects with its ``columns`` beside it
(:mod:`.table`), so a workflow wires them as
``load → transform → summarize`` with references such as
``${steps.load.outputs.rows}``.  None of them evaluates code: a transform is a list
of operations, and the loader reads only files inside the root folder it is given.

>>> from limit_graph.core.agents import AgentRegistry
>>> sorted(a.name for a in AgentRegistry(AGENTS).list())
['data.load_csv', 'data.summarize', 'data.transform']
"""

from limit_graph.core.agents import AgentSpec
from limit_graph.core.models import BackendKind
from limit_graph.tasks.data.load import LoadCsvInput, LoadCsvOutput, load_csv
from limit_graph.tasks.data.summarize import SummarizeInput, SummarizeOutput, summarize
from limit_graph.tasks.data.transform import TransformInput, TransformOutput, transform

__all__ = ["AGENTS"]

CLASSICAL = (BackendKind.LOCAL, BackendKind.REMOTE)

AGENTS = (
    AgentSpec(
        name="data.load_csv",
        version="1.0.0",
        description="Reads a CSV file inside a root folder as typed rows (integer, number, "
        "boolean, text; nulls), with the file's SHA-256.",
        input_model=LoadCsvInput,
        output_model=LoadCsvOutput,
        fn=load_csv.fn,
        backends=CLASSICAL,
        deterministic=False,  # the file may change between runs
        task=load_csv,
    ),
    AgentSpec(
        name="data.transform",
        version="1.0.0",
        description="Filters, derives, selects, renames and sorts a table's columns by a "
        "list of declarative operations.",
        input_model=TransformInput,
        output_model=TransformOutput,
        fn=transform.fn,
        backends=CLASSICAL,
        deterministic=True,
        task=transform,
    ),
    AgentSpec(
        name="data.summarize",
        version="1.0.0",
        description="Count, mean, min, max (sum, stdev) of a table's numeric columns, "
        "overall or grouped by one column, as a table.",
        input_model=SummarizeInput,
        output_model=SummarizeOutput,
        fn=summarize.fn,
        backends=CLASSICAL,
        deterministic=True,
        task=summarize,
    ),
)
