"""The platform declared once: read by the CDK app and by the local runtime."""

from blueprint.platform import PLATFORM

__all__ = ["PLATFORM"]
