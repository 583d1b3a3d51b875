"""The `tastegraph` command: each subcommand is a thin call into a package. One module per
command group; importing it registers its commands on `app`."""

import importlib

from tastegraph.cli.apps import app

# In the order `tastegraph --help` lists them: the pipeline's order, then measuring.
COMMAND_MODULES = ("ingest", "jobs", "ask", "serving", "evaluate", "bench")
for module in COMMAND_MODULES:
    importlib.import_module(f"tastegraph.cli.{module}")

__all__ = ["app"]
