"""`python -m docparse` runs the CLI."""

from docparse.cli import main

main()
