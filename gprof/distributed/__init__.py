"""Multi-process training: cross-rank analysis of per-rank step files (straggler, divergence,
mismatched collectives). Capture needs nothing extra: every rank records its own files."""
from gprof.distributed.crossrank import cross_rank_report, format_cross_rank

__all__ = ["cross_rank_report", "format_cross_rank"]
