"""What a command shows on the terminal versus what it files away: library log records (DSPy, LiteLLM, optuna, httpx
...), Python warnings and the libraries' own progress bars go to a log file in the results folder, counted by kind for
the closing summary line; `-v/--verbose` shows them live as well.

Why a log file rather than silence: a truncated reply or a parallelizer error is evidence a user may need ("why did
this seed score 0?"), but dozens of them on the terminal hide the few lines that say what the run is doing. The file is
opened only when something is written to it, so quiet runs leave no empty logs behind.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from pathlib import Path

import tqdm as _tqdm_package
from tqdm.std import tqdm as _Tqdm

from src.backends.library_output import LIBRARY_OUTPUT
from src.results.naming import log_path
from src.results.provenance import scrub

# Loggers of the libraries this product drives. DSPy's logger does not propagate (it writes to its own stderr stream),
# so each is re-pointed explicitly; anything else that reaches the root logger at WARNING and above is caught too.
LIBRARY_LOGGERS = ("library.print", "dspy", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx", "httpcore", "optuna",
                   "urllib3", "asyncio", "py.warnings")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# How a library message is counted in the summary: first matching (logger prefix, text fragment) wins.
_KINDS = (
    ("truncated replies", "", "response was truncated"),
    ("parse failures", "", "AdapterParseError"),
    ("parse failures", "", "failed to parse"),
    ("inputs not in signature", "dspy.predict", "not in signature"),
)


def _kind(record: logging.LogRecord) -> str:
    text = record.getMessage()
    for kind, prefix, fragment in _KINDS:
        if record.name.startswith(prefix) and fragment in text:
            return kind
    return "errors" if record.levelno >= logging.ERROR else "warnings"


class _Collector(logging.Handler):
    """Counts every library record by kind and holds the records until the log file is known (the results folder is
    learned only after the flags are parsed), then writes them there."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()
        self.pending: list[logging.LogRecord] = []
        self.file: logging.FileHandler | None = None
        self.path: Path | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.counts[_kind(record)] += 1
        if self.file is not None:
            self.file.handle(record)
        else:
            self.pending.append(record)

    def open(self, path: Path) -> None:
        if self.file is not None:
            return
        self.path = path
        self.file = _LazyFile(path)
        self.file.setFormatter(_Scrubbing(_FORMAT))
        for record in self.pending:
            self.file.handle(record)
        self.pending.clear()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


class _Scrubbing(logging.Formatter):
    """Library messages quote requests and replies (an auth error can echo the key): known secrets never reach the
    log (src.results.provenance.scrub), as for every other file this product writes."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class _LazyFile(logging.FileHandler):
    """A file handler that creates its folder and file on the first record only."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class _QuietBar(_Tqdm):
    """The libraries' own progress bars (DSPy's evaluator and parallelizer pass display_progress=True, which an
    environment default cannot override), switched off. The product's own bars use tqdm.std.tqdm directly."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


class _Routed:
    """stdout/stderr: text printed while library output is marked (src.backends.library_output) goes to the log as
    records of the logger "library.print" (live as well with -v); everything else passes through."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if LIBRARY_OUTPUT.get() and isinstance(text, str):
            line = text.strip()
            if line:  # with -v the live handler shows it
                logging.getLogger("library.print").info(line)
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class Console:
    """The process's one console policy, installed by the entry wrapper (src.commands.common.run)."""

    def __init__(self) -> None:
        self.verbose = False
        self.collector: _Collector | None = None
        self.started = time.time()
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []
        self._saved_bar = None
        self._streams: tuple | None = None

    def install(self, verbose: bool) -> None:
        """Route library output: to the collector always, to stderr as well with verbose."""
        if self.collector is not None:
            return
        self.verbose = verbose
        self.collector = _Collector()
        logging.captureWarnings(True)
        live = logging.StreamHandler(sys.stderr) if verbose else None
        if live is not None:
            live.setFormatter(_Scrubbing(_FORMAT))
        root = logging.getLogger()
        for name in LIBRARY_LOGGERS + ("",):
            logger = logging.getLogger(name) if name else root
            self._saved.append((logger, list(logger.handlers), logger.propagate, logger.level))
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    logger.removeHandler(handler)
            logger.addHandler(self.collector)
            if live is not None:
                logger.addHandler(live)
            if name:
                logger.propagate = False
            if logger.level == logging.NOTSET or logger.level > logging.WARNING:
                logger.setLevel(logging.WARNING)
        logging.getLogger("library.print").setLevel(logging.INFO)
        if not verbose:
            self._saved_bar = _tqdm_package.tqdm
            _tqdm_package.tqdm = _QuietBar
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Routed(sys.stdout), _Routed(sys.stderr)

    def attach(self, results_dir: Path, command: str) -> None:
        """From now on (and for what was held so far) library records go to results/logs/<command>-<time>.log."""
        if self.collector is not None:
            self.collector.open(log_path(results_dir, command, self.started))

    def summary(self) -> str | None:
        """One line for the end of a run: what the libraries reported, by kind, and where to read it."""
        if self.collector is None or not self.collector.counts:
            return None
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.collector.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        where = self.collector.path
        if where is not None and not self.verbose:
            return f"library messages: {parts} - see {where}"
        return f"library messages: {parts}" + (f" (also in {where})" if where is not None else "")

    def uninstall(self) -> None:
        """Put the loggers back as they were (tests run several commands in one process)."""
        if self.collector is None:
            return
        pending = self.collector.pending if self.collector.file is None else []
        for logger, handlers, propagate, level in self._saved:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            for handler in handlers:
                logger.addHandler(handler)
            logger.propagate, logger.level = propagate, level
        logging.captureWarnings(False)
        if self._saved_bar is not None:
            _tqdm_package.tqdm = self._saved_bar
        if self._streams is not None:
            sys.stdout, sys.stderr = self._streams
            self._streams = None
        self.collector.close()
        if pending and not self.verbose:  # no results folder was ever named: do not lose what was said
            for record in pending:
                if record.levelno >= logging.ERROR:
                    print(scrub(f"{record.name}: {record.getMessage()}"), file=sys.stderr)
        self.collector, self._saved, self._saved_bar = None, [], None


CONSOLE = Console()
