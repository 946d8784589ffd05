"""Run All stops at the first red box: cells the kernel failed to drop are skipped (course_utils.stop_at_error).

A real kernel, driven as JupyterLab drives it. Each request is sent with ``stop_on_error=False``, so that the
kernel itself drops nothing after an error: what it does when a request reaches it too late to be dropped.
"""

from __future__ import annotations

import time

import pytest
from jupyter_client.manager import start_new_kernel

from course_utils.stop_at_error import SKIPPED_LINE


@pytest.fixture
def kernel():
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client, code: str) -> tuple[str, str]:
    """Run ``code`` as a cell; return its reply status and what it printed."""
    printed = []

    def collect(message):
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    reply = client.execute_interactive(code, stop_on_error=False, output_hook=collect, timeout=60)
    return reply["content"]["status"], "".join(printed)


def test_a_cell_sent_before_the_failure_was_seen_is_skipped_and_a_later_one_runs(kernel):
    # Without the guard, the cell behind the failure runs (and here it would fail on the missing name too).
    assert run(kernel, "raise ValueError('the red box')")[0] == "error"
    assert run(kernel, "print('ran anyway')") == ("ok", "ran anyway\n")

    assert run(kernel, "from course_utils import stop_at_error\n"
                       "print(stop_at_error.stop_queued_cells_after_an_error())\n"
                       "stop_at_error.REACTION_SECONDS = 0.5") == ("ok", "True\n")
    assert run(kernel, "raise ValueError('the red box')")[0] == "error"
    status, printed = run(kernel, "behind = 1\nprint('ran anyway')")
    assert (status, printed) == ("ok", SKIPPED_LINE + "\n")
    assert run(kernel, "print('sent at once too')") == ("ok", SKIPPED_LINE + "\n")

    time.sleep(0.6)  # a person who read the red box runs the cell again
    assert run(kernel, "print('behind' in globals())") == ("ok", "False\n")  # the skipped cells ran nothing
    assert run(kernel, "behind = 1\nprint('ran')") == ("ok", "ran\n")
    assert run(kernel, "print(stop_at_error.stop_queued_cells_after_an_error(), "
                       "len(get_ipython().input_transformers_post))")[1].startswith("True 1")  # installed once
