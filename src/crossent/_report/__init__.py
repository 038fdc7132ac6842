"""The calibration report of a model (``crossent.report``), computed by the library and
rendered as JSON, HTML or a notebook cell; ``crossent report`` is a thin layer over it."""

from ._compare import ReportComparison, compare_reports
from ._compute import FORMAT, Report, report

__all__ = ["FORMAT", "Report", "ReportComparison", "compare_reports", "report"]
