"""The API's routes, one module per resource."""

from marketplace.api.routers import bounties, chain, classify, network, operator, pages, submissions

__all__ = ["bounties", "chain", "classify", "network", "operator", "pages", "submissions"]
