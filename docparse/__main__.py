"""`python -m docparse` runs the CLI."""

from docparse.cli.app import main

# Guarded: vLLM starts its EngineCore with multiprocessing's spawn, which imports this module again.
if __name__ == "__main__":
    main()
