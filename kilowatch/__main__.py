"""`python -m kilowatch` runs the CLI."""

from kilowatch.cli import main

main()
