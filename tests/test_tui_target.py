"""The terminal UI's fusion target: ``t`` cycles the analysis tabs through the stored prediction, cpu and
cuda (re-targeted through the read layer), and ``torch-gprof tui --target/--gpu`` opens on one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gprof_tui.browse import BrowseApp, BrowseScreen
from gprof_tui.widgets.analyses import analysis_text
from test_tui_browse import mlp_run, pilot, show, text
from textual.widgets import TabbedContent

from gprof.cli import main
from gprof.store import StepReader, open_run
from gprof.store.queries.retarget import analyses_for

__all__ = ["mlp_run"]  # the module-scoped fixture, shared with the browse tests


def _expected(run_dir: Path, target: str | None, gpu: str | None = None) -> str:
    f = open_run(str(run_dir)).file(None, None)
    with StepReader(f.path) as r:
        value = r.analyses() if target is None else analyses_for(r, target, gpu)
    return str(analysis_text("fusion", value.get("fusion")))


def test_t_cycles_the_fusion_target(mlp_run: Path) -> None:
    stored, cuda = _expected(mlp_run, None), _expected(mlp_run, "cuda")
    assert stored != cuda  # otherwise the cycle below could not tell the targets apart

    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        assert "fusion: as recorded" in screen.sub_title
        await show(p, screen.query_one("#tabs", TabbedContent), "tab-fusion")
        assert text(app, "#fusion") == stored
        await p.press("t")
        await p.pause()
        assert "fusion: cpu" in screen.sub_title
        assert text(app, "#fusion") == _expected(mlp_run, "cpu")  # the open tab is rebuilt at once
        await p.press("t")
        await p.pause()
        assert "fusion: cuda" in screen.sub_title and text(app, "#fusion") == cuda
        await p.press("right_square_bracket")  # another step keeps the target (one step here: stays)
        await p.pause()
        assert "fusion: cuda" in screen.sub_title
        await p.press("t")
        await p.pause()
        assert "fusion: as recorded" in screen.sub_title and text(app, "#fusion") == stored

    pilot(BrowseApp(str(mlp_run)), body)


def test_opens_on_a_gpu_given_on_the_command_line(mlp_run: Path) -> None:
    a100 = _expected(mlp_run, "cuda", "A100")

    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert "fusion: cuda (A100)" in screen.sub_title
        await show(p, screen.query_one("#tabs", TabbedContent), "tab-fusion")
        assert text(app, "#fusion") == a100

    pilot(BrowseApp(str(mlp_run), target="cuda", gpu="A100"), body)


def test_inconsistent_target_and_gpu_is_a_clear_error(mlp_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", str(mlp_run), "--target", "cpu", "--gpu", "H100"]) == 2
    assert "applies to the cuda target only" in capsys.readouterr().err
