"""Built-in agents, each a Prefect task with typed inputs and outputs."""
