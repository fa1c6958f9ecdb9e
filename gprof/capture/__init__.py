"""Capture: dispatch-mode recorder, module scope, storage tracking and the step builder.

The package imports nothing itself (``gprof.profile`` is ``gprof.capture.profile.profile``, resolved
lazily by ``gprof/__init__.py``), so the step worker (worker.py) can import the hand-off and the builder
without the recorder, the module hooks and ``torch._dynamo`` that ``profile`` brings.
"""
