"""The chat service: mentorship requests, conversations, messages, receipts and blocks."""
