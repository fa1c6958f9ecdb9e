"""Exports of a recorded step for other viewers: TensorBoard's built-in Graphs tab (GraphDef with
RunMetadata step stats) and Perfetto / chrome://tracing (Chrome trace JSON)."""
