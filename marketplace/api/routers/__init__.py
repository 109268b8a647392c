"""The API's routes, one module per resource."""

from marketplace.api.routers import bounties, classify, pages, submissions

__all__ = ["bounties", "classify", "pages", "submissions"]
