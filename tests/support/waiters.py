"""Deadline-based polling: tests wait on conditions, never on bare sleeps."""

import time


class StopWaiting(Exception):
    """Raised by a predicate when waiting longer is pointless (the process died):
    wait_until lets it through at once instead of retrying until the deadline."""


def wait_until(predicate, timeout=5.0, interval=0.02, message=None):
    """Call `predicate` until it returns a truthy value; return that value.

    `message` (a string, or a callable evaluated at the deadline) names what was awaited.
    Raises AssertionError after `timeout` seconds naming the last value seen
    (or the last exception the predicate raised), so a failure says why.
    """
    deadline = time.monotonic() + timeout
    last = None
    last_exc = None
    while True:
        try:
            last = predicate()
            last_exc = None
            if last:
                return last
        except StopWaiting:
            raise
        except Exception as exc:  # the predicate may legitimately fail while waiting
            last_exc = exc
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            what = what or getattr(predicate, "__name__", "condition")
            if last_exc is not None:
                detail = f"last error: {last_exc!r}"
            else:
                detail = f"last value: {last!r}"
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; {detail}")
        time.sleep(interval)
