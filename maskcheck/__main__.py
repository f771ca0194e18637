"""`python -m maskcheck` runs the CLI."""

from maskcheck.cli import main

if __name__ == "__main__":
    main(prog_name="maskcheck")
