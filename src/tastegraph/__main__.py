from tastegraph.cli import app

app(prog_name="tastegraph")
