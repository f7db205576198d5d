"""Functions behind the WebSocket API: the $connect authorizer, connections, $default."""
