"""Reports from evaluation results: mean ± std tables (markdown / CSV / HTML), plots
(matplotlib, Agg) and a single self-contained HTML file. Works from ``results.json`` alone."""

from mimlkit.reporting.report import build_report, read_results
from mimlkit.reporting.tables import metric_direction, summary_frame, summary_markdown

__all__ = ["build_report", "read_results", "metric_direction", "summary_frame",
           "summary_markdown"]
