"""One race of a stopped lesson, kept off the terminal: pyzmq's "Uncaught exception in ZMQStream callback".

When ``course run`` stops a lesson (Ctrl+C, SIGTERM, SIGHUP), the kernel shuts down while a callback of one of
its ZMQ streams may still be queued; that callback then fails on a closed socket with ``ENOTSOCK`` ("Socket
operation on non-socket") and pyzmq logs the error with its traceback on tornado's logger. The run has already
reported the stop in one line; the traceback only tells of the race. It is logged by the **kernel** process
(ipykernel gives tornado's logger a handler on the kernel's standard error, which is the terminal of ``course
run``), and possibly by ``course run`` itself, so the filter is installed in both: ``course run`` starts every
kernel with this module as an IPython extension (:data:`course_tools.runner.KERNEL_QUIET_ARGUMENTS`), and the
runner installs it in its own process. Every other error on that logger is still shown.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

__all__ = ["CLOSED_SOCKET_NOISE", "install", "load_ipython_extension"]

#: pyzmq logs a failed stream callback here (tornado's ``gen_log``).
_LOGGER = "tornado.general"


class _WithoutClosedSocketNoise(logging.Filter):
    """Drops a record whose exception is ``ENOTSOCK``; keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return getattr(error, "errno", None) != errno.ENOTSOCK


CLOSED_SOCKET_NOISE = _WithoutClosedSocketNoise()


def install() -> None:
    """Put :data:`CLOSED_SOCKET_NOISE` on tornado's logger in this process (once, however often it is called)."""
    logger = logging.getLogger(_LOGGER)
    if CLOSED_SOCKET_NOISE not in logger.filters:
        logger.addFilter(CLOSED_SOCKET_NOISE)


def load_ipython_extension(ipython: Any) -> None:
    """IPython's hook: a kernel started with ``--IPKernelApp.extensions=course_tools.kernel_noise`` installs it."""
    install()
