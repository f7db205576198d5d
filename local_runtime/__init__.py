"""The local runtime: the whole platform on one machine, no AWS account, no Docker.

``python -m local_runtime up`` for people; :class:`LocalPlatform` for tests
and scripts. See ``docs/local-runtime.md``.
"""

from local_runtime.config import Ports
from local_runtime.platform import Endpoints, LocalPlatform, LocalPlatformError

__all__ = ["Endpoints", "LocalPlatform", "LocalPlatformError", "Ports"]
