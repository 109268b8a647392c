"""The HTTP API (FastAPI) and the web page. Thin: parse and check the request, call the service functions the
CLI uses too, and map the project's errors to status codes (this package is the only place that does).

- `app`: the factory (lifespan, error handlers, rate limit, the OpenAPI document);
- `routers/`: one module per resource (bounties, submissions, classify, the page and the health check);
- `schemas`: request bodies and API-only responses (the views come from `marketplace.views`);
- `errors`: the one error schema every route documents;
- `_forms`: reading a body sent as JSON or as a multipart form with an image;
- `body_limits`: the body read as a stream within the size and time limits (413, 408);
- `server`: uvicorn with a time limit on headers (`bounty serve` runs it).
"""

from marketplace.api.app import create_app

__all__ = ["create_app"]
