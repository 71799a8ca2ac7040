"""Robo-Dopamine-Bench (docs/upstream.md §7): a GRM evaluated through the episode engine, and its
metrics.

A generated mini benchmark in the same layout comes with it. Named ``evaluation`` so it is not
confused with the repository's ``bench/`` (performance scripts). ``runner.run_benchmark``
evaluates; ``data.write_bench_data`` generates; ``metrics`` holds every metric (VOC, AUC,
Spearman); ``commands`` adds the ``bench`` and ``bench-data`` subcommands. Nothing is imported
here, so the CLI's ``--help`` stays instant.
"""
