"""The command line: typer apps and main, the only code that prints to the user, exits, or picks exit codes."""
