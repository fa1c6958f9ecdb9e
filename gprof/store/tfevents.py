"""A tiny tfevents summary tagged with the plugin name, so TensorBoard lists the run and enables
the tab without anyone walking the logdir first."""
from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import time
from typing import Any

log = logging.getLogger(__name__)

#: tells apart two markers one process opens in the same second (as TensorBoard's own writer does)
_uid = itertools.count()


class MarkerWriter:
    """One events file per session; one small event per saved step.

    Written here, on the caller's thread, rather than by TensorBoard's ``EventFileWriter``: that one
    writes from a background thread, where a full disk became a traceback nobody could catch and
    the step pipeline could not report (gprof/capture/storage.py). Errors raise from :meth:`add`.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        try:
            from tensorboard.compat.proto import event_pb2
            from tensorboard.summary.writer.record_writer import RecordWriter
        except ImportError:  # tensorboard is optional at capture time
            log.info("tensorboard is not installed; not writing the tfevents marker")
            self._writer: Any = None
            return
        os.makedirs(run_dir, exist_ok=True)
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_uid)}"
                ".gprof")
        self._writer = RecordWriter(open(os.path.join(run_dir, name), "xb"))  # noqa: SIM115 - closed by close()
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())
        self._writer.flush()

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
        self._write(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])))

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:  # the last buffered bytes could not be written: the steps already are
                pass
            self._writer = None
