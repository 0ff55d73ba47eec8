"""Playing a generated world live: the `Game` (a stream, the toy world's truth beside it, recordings that replay
exactly), the WebSocket protocol and the server of the `play` command's page."""
