"""The integrations cost nothing to users of other stacks: ``import gprof`` (and the integrations
package itself) imports no training framework."""
from __future__ import annotations

import subprocess
import sys


def test_import_gprof_imports_no_framework() -> None:
    code = ("import sys, gprof, gprof.integrations; gprof.profile; "
            "print(sorted(m for m in ('transformers', 'lightning', 'pytorch_lightning', 'accelerate') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
