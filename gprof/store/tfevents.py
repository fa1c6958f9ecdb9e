"""A tiny tfevents summary tagged with the plugin name, so TensorBoard lists the run and enables
the tab without anyone walking the logdir first."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)


class MarkerWriter:
    """One events file per session; one small event per saved step."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:  # tensorboard is optional at capture time
            log.info("tensorboard is not installed; not writing the tfevents marker")
            self._writer: Any = None
            return
        os.makedirs(run_dir, exist_ok=True)
        self._writer = EventFileWriter(str(run_dir), filename_suffix=".gprof")

    def add(self, step: int, summary: dict[str, Any]) -> None:
        if self._writer is None:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

        content = json.dumps(summary).encode()
        meta = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="gprof", content=content),
            data_class=summary_pb2.DATA_CLASS_TENSOR,
        )
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[content])
        value = summary_pb2.Summary.Value(tag="gprof/step", metadata=meta, tensor=tensor)
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=step,
                                               summary=summary_pb2.Summary(value=[value])))
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
