"""The ``convcalc tui`` application: the designer screen, and the training screen over it."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from convcalc.spec import Network, load_spec
from convcalc.tui import model
from convcalc.tui.designer import DesignerScreen


def open_spec(path: str | Path | None) -> tuple[Network, Path | None]:
    """The network to start with: the spec at ``path``, or a new one on a 1×28×28 input
    (to be saved at ``path`` when that file does not exist yet). Raises ``SpecError``."""
    if path is None:
        return Network(name="network", input=model.NEW_INPUT), None
    path = Path(path)
    if not path.exists():
        return Network(name=path.stem if path.stem.isidentifier() else "network", input=model.NEW_INPUT), path
    return model.editable(load_spec(path), path), path


class ConvcalcApp(App):
    """Design a CNN layer by layer with live shapes; train it on the training screen."""

    CSS_PATH = "convcalc.tcss"
    TITLE = "convcalc"

    def __init__(self, network: Network, path: Path | None = None):
        super().__init__()
        self.designer = DesignerScreen(network, path)

    def on_mount(self) -> None:
        self.push_screen(self.designer)

    async def action_quit(self) -> None:
        """Ctrl+Q: ask first when the designer holds unsaved changes."""
        from convcalc.tui.training import TrainingScreen

        for screen in self.screen_stack:
            if isinstance(screen, TrainingScreen):
                screen.stop_training()
        if isinstance(self.screen, DesignerScreen) or not self.designer.dirty:
            self.designer.request_quit()
        else:
            await self.pop_screen()
            self.designer.request_quit()
