"""The benchmark: `python bench/run.py` measures the app on this machine and rewrites docs/performance.md.

One module per thing measured (startup, form_change, builds, streaming, up_to_date, waiting_builds); common.py holds
the statistics and the process helpers; report.py turns the raw figures into metrics and the page. Starting apps,
free ports and naming components come from the `testkit` package, as the UI tests use them.
"""
