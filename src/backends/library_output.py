"""What the libraries print (DSPy's optimizers use print(), not logging: "Bootstrapping set 2/3", trial scores ...)
is marked as library output while an optimizer runs, so the console (src.commands.console) can file it in the run's
log instead of the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

LIBRARY_OUTPUT: ContextVar[bool] = ContextVar("ia_library_output", default=False)


@contextmanager
def library_output() -> Iterator[None]:
    """Within this block (this thread and the contexts copied from it), printed text is the library's."""
    token = LIBRARY_OUTPUT.set(True)
    try:
        yield
    finally:
        LIBRARY_OUTPUT.reset(token)
