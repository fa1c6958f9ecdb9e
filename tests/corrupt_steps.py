"""Corrupt step files for reader tests, made by editing a real step file (a copy of a golden one in
tests/data/report_golden/) with sqlite3: each kind is one way a file from a damaged disk, a buggy
writer or a newer torch-gprof can differ from what the reader expects. ``READABLE`` kinds must still
read (a newer writer's extra fields)."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _edit_meta(key: str, change: Callable[[Any], Any]) -> Callable[[sqlite3.Connection], None]:
    def edit(db: sqlite3.Connection) -> None:
        (value,) = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(change(json.loads(value))), key))
    return edit


def _sql(*statements: str) -> Callable[[sqlite3.Connection], None]:
    def edit(db: sqlite3.Connection) -> None:
        for s in statements:
            db.execute(s)
    return edit


def _without(name: str) -> Callable[[dict], dict]:
    return lambda d: {k: v for k, v in d.items() if k != name}


#: the ``node_*`` kinds' edits of a node row: tensors that do not parse, attrs that are not JSON
NODE_ROW_EDITS = {"node_inputs": "inputs = 'float32|cpu|2,x|8', outputs = 'garbage'", "node_attrs": "attrs = '{bad'"}

KINDS: dict[str, Callable[[sqlite3.Connection], None]] = {
    "meta_extra_field": _edit_meta("meta", lambda d: {**d, "from_a_newer_writer": {"x": 1}, "partial": False}),
    "meta_missing_field": _edit_meta("meta", _without("step")),
    "meta_list": _edit_meta("meta", lambda d: list(d.values())),
    "meta_wrong_type": _edit_meta("meta", lambda d: {**d, "rank": "zero", "devices": "cpu"}),
    "meta_not_json": _sql("UPDATE meta SET value = '{\"run\": ' WHERE key = 'meta'"),
    "meta_row_missing": _sql("DELETE FROM meta WHERE key = 'memory'"),
    "memory_null": _edit_meta("memory", lambda d: None),
    "memory_bad_category": _edit_meta("memory", lambda d: {**d, "by_category": [1, 2], "peak_node": "113"}),
    "analysis_bad_json": _sql("INSERT OR REPLACE INTO analyses VALUES ('fusion', '{not json')",
                              "INSERT OR REPLACE INTO analyses VALUES ('hazards', 'null')"),
    "analysis_odd_shape": _sql(
        "INSERT OR REPLACE INTO analyses VALUES ('fusion', '{\"chains\": [{\"nodes\": \"x\", \"ops\": 5}, 3]}')",
        "INSERT OR REPLACE INTO analyses VALUES ('hazards', '\"text\"')",
        "INSERT OR REPLACE INTO analyses VALUES ('op_classes', '[1, 2]')",
        "INSERT OR REPLACE INTO analyses VALUES ('compile_suggestions', '{\"suggestions\": 7, \"error\": 1}')"),
    "node_inputs": _sql("UPDATE nodes SET " + NODE_ROW_EDITS["node_inputs"]),
    "node_attrs": _sql("UPDATE nodes SET " + NODE_ROW_EDITS["node_attrs"]),
}
#: kinds a reader must read as if nothing were wrong
READABLE = {"meta_extra_field"}


def corrupt(path: Path, kind: str) -> Path:
    """Apply corruption ``kind`` to the step file at ``path`` in place."""
    db = sqlite3.connect(path)
    try:
        KINDS[kind](db)
        db.commit()
    finally:
        db.close()
    return path


def corrupt_node(path: Path, idx: int, kind: str) -> Path:
    """Apply node corruption ``kind`` (a key of ``NODE_ROW_EDITS``) to node ``idx``'s row only."""
    db = sqlite3.connect(path)
    try:
        db.execute(f"UPDATE nodes SET {NODE_ROW_EDITS[kind]} WHERE idx = ?", (idx,))
        db.commit()
    finally:
        db.close()
    return path


GOLDEN_LOGDIR = Path(__file__).parent / "data" / "report_golden" / "logdir"


def copy_step(src: Path, dst_dir: Path, step: int, rank: int = 0, world: int = 1) -> Path:
    """A copy of the step file ``src`` as (step, rank) of a run whose step files live in ``dst_dir``,
    its meta saying so, so readers see one more real step."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / f"step{step:06d}.rank{rank}-of-{world}.sqlite"
    dst.write_bytes(src.read_bytes())
    db = sqlite3.connect(dst)
    try:
        _edit_meta("meta", lambda d: {**d, "step": step, "rank": rank, "world_size": world})(db)
        db.commit()
    finally:
        db.close()
    return dst
