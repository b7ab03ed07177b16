"""The `cledecide` command line: thin Typer commands over the library."""
