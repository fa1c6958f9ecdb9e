"""Capture: dispatch-mode recorder, module scope, storage tracking and the step builder."""
from gprof.capture.profile import profile, schedule

__all__ = ["profile", "schedule"]
