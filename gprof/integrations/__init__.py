"""Training-framework integrations: ``gprof.integrations.hf.GprofCallback`` (Hugging Face ``Trainer``)
and ``gprof.integrations.lightning.GprofProfiler`` (Lightning ``Trainer(profiler=...)``).

Each submodule imports its framework when it is imported itself, never at ``import gprof`` time, so
neither framework is a dependency of the profiler. Both record through :mod:`gprof.integrations._steps`.
"""
