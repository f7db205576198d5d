"""Lambda entry point of message search (API Gateway HTTP API, payload 2.0)."""

from functions.chat.search_api import app
from lwm_core.web import lambda_handler

handler = lambda_handler(app)
