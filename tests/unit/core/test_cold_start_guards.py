"""What keeps cold starts short stays in place: lazy imports and FastAPI's skipped v1 probe."""

from __future__ import annotations

import subprocess
import sys

from local_runtime.config import REPO_ROOT

_PROBE = """
import sys
import functions.users.handler
heavy = [m for m in ("pydantic.v1", "boto3", "botocore.session", "sqlalchemy", "argon2", "authlib",
                     "aws_xray_sdk", "alembic", "cryptography.hazmat.primitives.asymmetric.ec")
         if m in sys.modules]
print(",".join(heavy))
"""


def test_importing_the_users_handler_loads_no_heavy_module_it_does_not_need_yet() -> None:
    # When the handler module is imported in a fresh interpreter (a Lambda cold start)
    env = {"PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'layers' / 'core'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True
    )
    # Then none of the modules only some invocations need has been imported
    assert done.stdout.strip() == ""


def test_fastapi_still_recognises_pydantic_v1_models_once_v1_is_imported() -> None:
    # Given the probe skipped while pydantic.v1 is not imported
    import warnings

    from fastapi._compat import shared

    import lwm_core.web  # noqa: F401 - installs the skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pydantic import v1

    class Legacy(v1.BaseModel):
        name: str

    # Then, with v1 imported, FastAPI's own answer comes back
    assert shared.is_pydantic_v1_model_class(Legacy) is True
    assert shared.is_pydantic_v1_model_instance(Legacy(name="x")) is True
    assert shared.is_pydantic_v1_model_class(int) is False


_SOCKET_PROBE = """
import sys
import functions.chat.socket, functions.chat.outbox, functions.chat.presence
web = ("fastapi", "starlette", "mangum", "boto3", "sqlalchemy")
print(",".join(m for m in web if m in sys.modules))
"""


def test_the_socket_and_stream_handlers_do_not_load_the_web_stack() -> None:
    env = {"PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'layers' / 'core'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _SOCKET_PROBE], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == ""
