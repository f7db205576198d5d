"""moto's request dispatch, without a walk of its package on every request.

moto's server finds the backend of each request with
``DomainDispatcherApplication.get_backend_for_host``, which lists moto's
package folder (``os.listdir`` and an ``isdir`` per entry, some 200 of them)
and then tries every service's URL patterns in turn. It answers the same for
the same host every time, yet it was 15% of the CPU of a ``GetItem`` served
here. :func:`apply` remembers its answer per host.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_applied = False
_lock = threading.Lock()


def apply() -> None:
    """Patch moto's dispatcher (idempotent); call before its server starts."""
    global _applied
    with _lock:
        if _applied:
            return
        _applied = True
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    original = DomainDispatcherApplication.get_backend_for_host
    answers: dict[str | None, Any] = {}

    @functools.wraps(original)
    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        try:
            return answers[host]
        except KeyError:
            found = answers[host] = original(self, host)
            return found

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
