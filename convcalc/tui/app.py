"""The ``convcalc tui`` application: the designer screen, and the training screen over it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from functools import partial
from pathlib import Path

from textual import events
from textual.app import App, SystemCommand

from convcalc.errors import ConvcalcError
from convcalc.spec import LAYER_CLASSES, Network, load_spec
from convcalc.tui import model
from convcalc.tui.designer import DesignerScreen


def open_spec(path: str | Path | None) -> tuple[Network, Path | None]:
    """The network to start with: the spec at ``path``, or a new one on a 1×28×28 input
    (to be saved at ``path`` when that file does not exist yet). Raises ``SpecError``, or
    ``ConvcalcError`` for a path the file system refuses."""
    if path is None:
        return Network(name="network", input=model.NEW_INPUT), None
    path = Path(path)
    try:
        exists = path.exists()
    except OSError as error:  # e.g. a name longer than the file system allows: it could never be saved
        raise ConvcalcError(
            f"{path}: cannot open or create it ({error.strerror}); fix: give another path"
        ) from None
    if not exists:
        return Network(name=path.stem if path.stem.isidentifier() else "network", input=model.NEW_INPUT), path
    return model.editable(load_spec(path), path), path


class ConvcalcApp(App):
    """Design a CNN layer by layer with live shapes; train it on the training screen."""

    CSS_PATH = "convcalc.tcss"
    TITLE = "convcalc"
    # Screen classes by terminal size (convcalc.tcss): below 120 columns the designer's editor
    # goes under the table and the training form above the plots; below 30 rows panes shrink.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]

    def __init__(self, network: Network, path: Path | None = None):
        super().__init__()
        self.designer = DesignerScreen(network, path)
        self._keys: deque[events.Key] = deque()
        self._handing_over: asyncio.Task | None = None  # runs while keys wait (not a worker:
        # `workers.wait_for_complete()` would wait for it forever)

    def on_mount(self) -> None:
        self.push_screen(self.designer)

    # Keys, one at a time ---------------------------------------------------------------
    # Textual hands a key to the widget focused when the app reads it. Keys read while the work
    # of the key before (an analysis, an editor rebuild, a focus move, a dialog closing) is
    # still queued went to the old widget: "64" into in_channels, a second Enter closing one
    # dialog twice. So keys wait here, and each is handed over once that work is done.

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self._keys.append(event)
            if self._handing_over is None or self._handing_over.done():
                self._handing_over = asyncio.create_task(self._hand_over_keys())
        else:
            await super().on_event(event)

    async def _hand_over_keys(self) -> None:
        while self._keys:
            await self._settled()
            try:
                await super().on_event(self._keys.popleft())  # bindings run here, as in on_event
            except Exception as error:  # as Textual does for a failing handler: shown, app exits
                self._handle_exception(error)
                return

    async def _settled(self, limit: float = 2.0) -> None:
        """Wait until no message or callback is pending on any screen and no screen says it is
        ``busy`` (the designer while its editor is rebuilt); at most ``limit`` seconds: a key is
        late rather than lost."""
        deadline, spins = time.monotonic() + limit, 0
        while self._busy() and time.monotonic() < deadline:
            # a few bare yields, then 2 ms naps: each check walks the screens' widgets
            await asyncio.sleep(0 if spins < 3 else 0.002)
            spins += 1

    def _busy(self) -> bool:
        screens = self.screen_stack
        if any(screen._callbacks or getattr(screen, "busy", False) for screen in screens):
            return True
        pumps = [self, *(node for screen in screens for node in screen.walk_children(with_self=True))]
        return any(pump._message_queue.qsize() or pump._next_callbacks for pump in pumps)

    def get_system_commands(self, screen):
        """The command palette (ctrl+p): the designer's commands, then Textual's own."""
        if screen is self.designer:
            designer = self.designer
            for title, help_text, action in (
                ("Save", "write the spec (YAML)", designer.action_save),
                ("Save as", "write the spec to another file", designer.action_save_as),
                ("Open a spec", "a file browser", designer.action_open),
                ("New spec", "an empty spec on a 1×28×28 input", designer.action_new),
                ("Train", "the training screen", designer.action_train),
                ("Network name and input size", "e.g. 3x32x32", designer.action_network),
                ("Undo", "the last edit", designer.action_undo),
                ("Redo", "the last undone edit", designer.action_redo),
                ("Help", "the keys and the value syntax", designer.action_help),
            ):
                yield SystemCommand(title, help_text, action)
            for type_name in LAYER_CLASSES:
                yield SystemCommand(
                    f"Add {type_name}", "a layer at the end", partial(designer.add_layer, type_name), False
                )
        yield from super().get_system_commands(screen)

    async def action_quit(self) -> None:
        """Ctrl+Q: ask first when the designer holds unsaved changes."""
        from convcalc.tui.training import TrainingScreen

        running = [s for s in self.screen_stack if isinstance(s, TrainingScreen) and s.running]
        if running:  # ask before stopping a run; then the designer asks about unsaved changes
            running[0].confirm_stop("quit", lambda: self.call_later(self._quit_after_training))
            return
        await self._quit_after_training()

    async def _quit_after_training(self) -> None:
        from convcalc.tui.training import TrainingScreen

        for screen in self.screen_stack:
            if isinstance(screen, TrainingScreen):
                screen.stop_training()
        if isinstance(self.screen, DesignerScreen) or not self.designer.dirty:
            self.designer.request_quit()
        else:
            await self.pop_screen()
            self.designer.request_quit()
