"""The CLI's ingest progress bar, fed by the ingest run's folder (batch files appear as batches finish)."""

from __future__ import annotations


class ProgressBar:
    """A text progress bar for the CLI, fed by the run directory (batch files appear as batches finish).

    Polling the store keeps the flow free of callbacks (flow parameters must serialise).
    """

    def __init__(self, run_dir, stream=None, interval: float = 0.5, width: int = 30) -> None:
        import sys
        import threading
        from pathlib import Path

        self.run_dir = Path(run_dir)
        self.stream = stream or sys.stderr
        self.interval = interval
        self.width = width
        self._shown: str | None = None  # the state last drawn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingest-progress", daemon=True)

    def counts(self) -> tuple[int, int]:
        from numerflow.tasks.core.store import read_json

        plan = self.run_dir / "plan.json"
        if not plan.exists():
            return 0, 0
        total = len(read_json(plan)["batches"])
        return len(list(self.run_dir.glob("batch-*.json"))), total

    def render(self) -> str:
        done, total = self.counts()
        if total == 0:
            return "ingest: planning..."
        filled = int(self.width * done / total)
        return f"ingest [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} batches"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw(self.render())

    def _draw(self, line: str, *, final: bool = False) -> None:
        """Draw a changed state: in place on a terminal, as a new line elsewhere (logs, CI);
        ``final`` ends a terminal's line."""
        tty = self.stream.isatty()
        if line != self._shown:
            self.stream.write("\r" + line if tty else line + "\n")
            self._shown = line
        if final and tty:
            self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._draw(self.render(), final=True)
