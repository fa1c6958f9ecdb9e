"""Subcommands of ``torch-gprof``; see gprof/cli.py."""
