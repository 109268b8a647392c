"""The service: configuration, database, chain, HTTP API, watcher daemon and the `bounty` CLI."""

__all__: list[str] = []
