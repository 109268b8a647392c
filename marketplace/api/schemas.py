"""Request bodies, path parameters and the API's own responses. The views of bounties, submissions and
verdicts are the service's (`marketplace.views`): the routes return them as they are."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field

Pixels = Annotated[list[Annotated[int, Field(strict=True, ge=0, le=255)]], Field(min_length=784, max_length=784)]
MAX_ID = 2**63 - 1  # ids are 64-bit in both databases: anything larger is a client's mistake, not a lookup
BountyId = Annotated[int, Path(ge=1, le=MAX_ID)]
SubmissionId = Annotated[int, Path(ge=1, le=MAX_ID)]


class SubmissionCreate(BaseModel):
    """An image as 784 integers 0..255 (row-major, white ink on black, as MNIST), and a P2PKH address.
    Vetted bounties only: `appeal` asks for payment of an image the classifier refused, claiming `digit` (the
    bounty's own when it has one); `digit` may also name the digit of an ordinary submission."""

    pixels: Pixels
    address: Annotated[str, Field(min_length=1, max_length=100)]
    appeal: Annotated[bool, Field(strict=True)] = False
    digit: Annotated[int, Field(strict=True, ge=0, le=9)] | None = None


class ClassifyRequest(BaseModel):
    pixels: Pixels
    bounty_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None


class Health(BaseModel):
    status: str
    tip_height: int
    network: str


# The two POST routes read their bodies by hand (JSON, or a multipart form with an image): these describe them
UPLOAD_FORMS: dict[str, Any] = {"requestBody": {"content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/SubmissionCreate"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image", "address"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "PNG or JPEG of a digit, any size"},
        "address": {"type": "string"},
        "appeal": {"type": "string", "enum": ["true", "false"], "description": "vetted bounties: an appeal"},
        "digit": {"type": "integer", "minimum": 0, "maximum": 9, "description": "the claimed digit"}}}}},
    "required": True}}
CLASSIFY_FORMS: dict[str, Any] = {"requestBody": {"content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/ClassifyRequest"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}, "bounty_id": {"type": "integer"}}}}}, "required": True}}
HAND_READ_BODIES = (SubmissionCreate, ClassifyRequest)
