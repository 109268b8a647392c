"""Every process's logging set-up: the threshold (`BOUNTY_LOG_LEVEL`) and the format (`BOUNTY_LOG_FORMAT`).

`text` is one human line per record; `json` one object per line (time, level, logger, message, and the request
id while a request is being answered, or `exc` with the traceback), for a log collector. The API's access log
sets the request id (`request_id`) for everything logged while it answers, so a submission's decision line
carries the id of the request that made it.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the message is formatted (lazy `%s` arguments applied) before it is encoded."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being answered (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: str = "WARNING", form: Literal["text", "json"] = "text") -> None:
    """Send this process's logs to stderr at `level` in `form`; calling it again replaces the set-up (Celery's
    worker calls it too, inside `bounty serve` as in its own process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


__all__ = ["JsonFormatter", "RequestIdFilter", "configure_logging", "request_id"]
