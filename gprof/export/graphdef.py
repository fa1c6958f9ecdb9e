"""A step as a TensorFlow GraphDef plus RunMetadata, for TensorBoard's built-in Graphs tab.

Module paths become name scopes (``encoder.layers.0.linear1`` -> ``encoder/layers/0/linear1``), so
the Graphs tab collapses the graph by module as our own tab does. Each node's time and memory go
into ``RunMetadata.step_stats`` (``all_start_micros``/``all_end_rel_micros``, ``memory.total_bytes``,
output tensor descriptions), which is what the Graphs tab reads to colour by compute time and
memory; ``torch.utils.tensorboard.SummaryWriter.add_graph`` leaves these empty.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from gprof.graph.keys import NO_MODULE
from gprof.graph.model import PHASES, Node
from gprof.store import StepReader
from gprof.store.queries import count_in_phases

#: a GraphDef is one protobuf message and the Graphs tab lays it out in the browser; past this many
#: nodes, export a phase subset or use the gprof tab, which collapses server-side.
DEFAULT_MAX_NODES = 200_000
OUTSIDE_SCOPE = "outside_modules"


class ExportTooLargeError(ValueError):
    pass


def scope_of(module: str | None) -> str:
    """The name scope for a module path ('' for the root model, whose ops sit at the top)."""
    if module is None:
        return OUTSIDE_SCOPE
    return module.replace("/", "_").replace(".", "/")


def node_name(n: Node) -> str:
    scope = scope_of(n.module if n.module != NO_MODULE else None)
    leaf = f"{n.op_short}_{n.idx}"
    return f"{scope}/{leaf}" if scope else leaf


def _dtype(name: str) -> int:
    from tensorboard.compat.proto import types_pb2

    table = {"float32": types_pb2.DT_FLOAT, "float64": types_pb2.DT_DOUBLE, "float16": types_pb2.DT_HALF,
             "bfloat16": types_pb2.DT_BFLOAT16, "int64": types_pb2.DT_INT64, "int32": types_pb2.DT_INT32,
             "int16": types_pb2.DT_INT16, "int8": types_pb2.DT_INT8, "uint8": types_pb2.DT_UINT8,
             "bool": types_pb2.DT_BOOL, "complex64": types_pb2.DT_COMPLEX64}
    return table.get(name, types_pb2.DT_INVALID)


def _device(n: Node) -> str:
    dev = (n.outputs or n.inputs or (None,))[0]
    kind, _, index = (dev.device if dev is not None else "cpu").partition(":")
    return f"/device:{kind.upper()}:{index or 0}"


def build(reader: StepReader, phases: tuple[str, ...] = PHASES, max_nodes: int = DEFAULT_MAX_NODES):
    """(GraphDef, RunMetadata) for the step's nodes in ``phases``."""
    from tensorboard.compat.proto import (
        allocation_description_pb2,
        attr_value_pb2,
        config_pb2,
        graph_pb2,
        step_stats_pb2,
        tensor_description_pb2,
        tensor_shape_pb2,
        versions_pb2,
    )

    wanted = tuple(p for p in phases if p in PHASES)
    count = count_in_phases(reader, wanted)
    if count > max_nodes:
        raise ExportTooLargeError(
            f"the step has {count:,} nodes in {', '.join(wanted)}; a GraphDef above {max_nodes:,} nodes is too large "
            "for TensorBoard's Graphs tab. Export fewer phases (--phases forward) or raise --max-nodes.")
    producers: dict[int, list[int]] = defaultdict(list)
    for e in reader.edges():
        producers[e.dst].append(e.src)
    graph = graph_pb2.GraphDef(versions=versions_pb2.VersionDef(producer=1))
    stats: dict[str, list] = defaultdict(list)
    names: dict[int, str] = {}
    t0 = None
    for n in reader.iter_nodes():
        if n.phase not in wanted:
            continue
        names[n.idx] = name = node_name(n)
        t0 = n.start_ns if t0 is None else t0
        shapes = [tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in t.shape])
                  for t in n.outputs]
        attr = {
            "_output_shapes": attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(shape=shapes)),
            "phase": attr_value_pb2.AttrValue(s=n.phase.encode()),
            "key": attr_value_pb2.AttrValue(s=n.key.encode()),
        }
        if n.source:
            attr["source"] = attr_value_pb2.AttrValue(s=n.source.encode())
        graph.node.add(name=name, op=n.op, device=_device(n), attr=attr,
                       input=[names[s] for s in dict.fromkeys(producers.get(n.idx, ())) if s in names])
        start_us = n.start_ns // 1000
        dur_us = max(1, n.dur_ns // 1000)
        outputs = [step_stats_pb2.NodeOutput(slot=i, tensor_description=tensor_description_pb2.TensorDescription(
            dtype=_dtype(t.dtype), shape=shapes[i],
            allocation_description=allocation_description_pb2.AllocationDescription(
                requested_bytes=t.nbytes, allocated_bytes=t.nbytes, allocator_name=t.device)))
            for i, t in enumerate(n.outputs)]
        stats[_device(n)].append(step_stats_pb2.NodeExecStats(
            node_name=name, all_start_micros=start_us, op_start_rel_micros=0, op_end_rel_micros=dur_us,
            all_end_rel_micros=dur_us, all_start_nanos=n.start_ns, all_end_rel_nanos=n.dur_ns,
            timeline_label=f"{n.op} ({n.phase})", thread_id=n.thread, output=outputs,
            memory=[step_stats_pb2.AllocatorMemoryUsed(allocator_name="cpu", total_bytes=n.alloc_bytes,
                                                      peak_bytes=n.live_bytes, live_bytes=n.live_bytes)]))
    run_metadata = config_pb2.RunMetadata(step_stats=step_stats_pb2.StepStats(
        dev_stats=[step_stats_pb2.DeviceStepStats(device=d, node_stats=s) for d, s in stats.items()]))
    return graph, run_metadata


def write_graph_events(reader: StepReader, run_dir: str | Path, phases: tuple[str, ...] = PHASES,
                       max_nodes: int = DEFAULT_MAX_NODES) -> Path:
    """Write the GraphDef and its tagged RunMetadata (tag ``step<N>``) as a tfevents file in ``run_dir``,
    where TensorBoard's Graphs tab finds them; returns the file's path."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    graph, run_metadata = build(reader, phases, max_nodes)
    step = reader.meta.step
    suffix = f".gprof-graph.step{step}.rank{reader.meta.rank}"
    run_dir = Path(run_dir)
    for old in run_dir.glob(f"events.out.tfevents.*{suffix}"):
        old.unlink()  # one graph per (step, rank): re-exporting replaces it
    writer = EventFileWriter(str(run_dir), filename_suffix=suffix)
    now = time.time()
    writer.add_event(event_pb2.Event(wall_time=now, step=step, graph_def=graph.SerializeToString()))
    writer.add_event(event_pb2.Event(wall_time=now, step=step, tagged_run_metadata=event_pb2.TaggedRunMetadata(
        tag=f"step{step}", run_metadata=run_metadata.SerializeToString())))
    writer.close()
    return next(run_dir.glob(f"events.out.tfevents.*{suffix}"))
