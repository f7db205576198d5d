"""Lambda entry point of the chat service (API Gateway HTTP API, payload 2.0)."""

from functions.chat.api import app
from lwm_core.web import lambda_handler

handler = lambda_handler(app)
