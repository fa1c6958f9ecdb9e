"""torch-gprof's terminal UI (Textual): browse a recorded run, or debug a live one.

It reads runs only through ``gprof.store`` and talks to live processes only through the debug
protocol (``gprof.debug.client``), never through capture internals.
"""
