"""Lambda entry point of the users service (API Gateway HTTP API, payload 2.0)."""

from functions.users.api import app
from lwm_core.web import lambda_handler

handler = lambda_handler(app)
