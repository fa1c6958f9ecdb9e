"""The panes of the browse and debug screens, one widget per file. Each one fills itself from
``StepData`` or a pause dict and reports what the user did through ``gprof_tui.messages``."""
