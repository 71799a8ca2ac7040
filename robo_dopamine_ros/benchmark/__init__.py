"""Robo-Dopamine-Bench evaluation (spec §7) through the episode engine, and a generated mini
benchmark in the same layout.

``runner.run_benchmark`` evaluates; ``data.write_bench_data`` generates; ``commands`` adds the
``bench`` and ``bench-data`` subcommands. Nothing is imported here, so the CLI's ``--help`` stays
instant.
"""
