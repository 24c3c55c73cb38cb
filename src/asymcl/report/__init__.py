"""Aggregation and reporting: runs.csv, LaTeX tables, paired statistics, figures.

`aggregate` collects metrics.json files into one row per run, `stats` holds the
summaries and the paired t intervals, `tables` renders the paper's layouts with pandas'
Styler, `figures` draws with matplotlib (Agg). The CLI is `asymcl.commands.report`.
"""
