"""Tiny WebSocket handlers for the local gateway's e2e tests (not the platform's own)."""
