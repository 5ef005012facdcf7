"""Command-line interface: ``frs`` / ``fastreasonseg`` with one subcommand per pipeline stage."""
