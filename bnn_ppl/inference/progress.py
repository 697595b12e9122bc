"""A progress bar with the running loss, for terminals and Jupyter (rich only).

Engines call :meth:`Progress.update` between chunks of steps. In a terminal the bar is a rich
live display; in Jupyter it is one output cell updated in place through an IPython display
handle (rich's own Jupyter support needs ``ipywidgets``, which this avoids), so the final
state is also what an executed notebook keeps.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress

__all__ = ["Progress"]

#: Fewest seconds between two redraws of the Jupyter output.
_JUPYTER_REFRESH_S = 0.2


class Progress:
    """Progress of ``total`` optimisation steps with the latest loss.

    Parameters
    ----------
    total : int
        Steps the fit will run.
    enabled : bool
        False makes every method a no-op (``fit(progressbar=False)``).
    description : str
        Text left of the bar.
    console : rich.console.Console, optional
        Where to draw; default rich's console (stderr-free, stdout).

    Examples
    --------
    >>> bar = Progress(total=1000, enabled=False)
    >>> for done in range(100, 1001, 100):
    ...     bar.update(done, loss=123.4)
    >>> bar.close()

    It is also a context manager: ``with Progress(n, True) as bar: ...`` closes it.
    """

    def __init__(self, total: int, enabled: bool = True, description: str = "Fitting", console: Console | None = None) -> None:
        self.total = int(total)
        self.enabled = bool(enabled)
        self.steps_done = 0
        self.loss = math.nan
        self._closed = not self.enabled
        self._handle: Any = None
        self._last_draw = -math.inf
        if not self.enabled:
            return
        self._bar = _RichProgress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("loss = {task.fields[loss]}"),
            console=console,
            auto_refresh=False,
        )
        self._task = self._bar.add_task(description, total=self.total, loss="...")
        if self._bar.console.is_jupyter:
            from IPython.display import display

            self._handle = display(self._bar, display_id=True)
        else:
            self._bar.start()

    def update(self, steps_done: int, loss: float) -> None:
        """Record that ``steps_done`` steps (in all) have run and the latest (running) loss."""
        if self._closed:
            return
        self.steps_done = int(steps_done)
        self.loss = float(loss)
        self._bar.update(self._task, completed=self.steps_done, loss=_format_loss(self.loss))
        self._draw(force=False)

    def close(self) -> None:
        """Draw the final state and release the display; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._bar.update(self._task, loss=_format_loss(self.loss))
        if self._handle is not None:
            self._draw(force=True)
        else:
            self._bar.refresh()
            self._bar.stop()

    def _draw(self, force: bool) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < _JUPYTER_REFRESH_S:
            return
        self._last_draw = now
        if self._handle is not None:
            self._handle.update(self._bar)
        else:
            self._bar.refresh()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _format_loss(loss: float) -> str:
    return "..." if math.isnan(loss) else f"{loss:,.4g}"
