"""The read layer: every question a view asks of a stored step, as named queries.

All SQL of the project lives in ``gprof.store``; the report, the exporters, cross-rank analysis,
the TensorBoard tab and the terminal UI call these functions instead of writing SQL against the
step file's tables, so the schema can change in one place. Each function takes an open
:class:`~gprof.store.StepReader` (or a :class:`~gprof.store.Run`) and returns plain data: tuples
for rows that views aggregate further, JSON-able dicts for what they show as is.
"""
from __future__ import annotations

from gprof.store.queries.analyses import analyses_view, node_idx_for_keys, node_marks, regions_of
from gprof.store.queries.diff import key_counts, step_diff
from gprof.store.queries.memory import memory_curve, memory_series
from gprof.store.queries.modules import module_table
from gprof.store.queries.nodes import (
    NodeQuery,
    UndecodedNode,
    backward_partners,
    count_in_phases,
    direct_edges,
    direct_nodes,
    direct_op_edges,
    direct_op_stats,
    neighbours,
    node_briefs,
    node_idx,
    node_page,
    node_page_rows,
)
from gprof.store.queries.ops import (
    input_shapes,
    module_edge_rows,
    module_phase_rows,
    op_edge_rows,
    op_stat_rows,
    op_table,
    top_ops,
)
from gprof.store.queries.ranks import newest_readable, run_listing, step_files
from gprof.store.queries.summary import headline, step_summary

__all__ = [
    "NodeQuery", "UndecodedNode", "analyses_view", "backward_partners", "count_in_phases", "direct_edges",
    "direct_nodes", "direct_op_edges", "direct_op_stats", "headline", "input_shapes", "key_counts",
    "memory_curve", "memory_series", "module_edge_rows", "module_phase_rows", "module_table", "neighbours",
    "newest_readable", "node_briefs", "node_idx", "node_idx_for_keys", "node_marks", "node_page",
    "node_page_rows", "op_edge_rows", "op_stat_rows", "op_table", "regions_of", "run_listing", "step_diff",
    "step_files", "step_summary", "top_ops",
]
