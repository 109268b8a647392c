"""OP_PUSH_TX: the script checks that a pushed sighash preimage is the real one for its own spend.

The spender pushes the preimage; the script signs hash256(preimage) itself with a key whose
private half is public (nonce 1, so r is the x coordinate of G) and verifies that signature
with OP_CHECKSIG. The node computes the real preimage for that check, so the signature only
verifies when the pushed preimage is the true one.

Compact form: the script reads the hash as a little-endian number z', adds 1 and writes it back
as the 32 bytes of s. Read big-endian, as ECDSA does, that is s = z + 2**248 when the first hash
byte is at most 0x7E (no carry, s stays positive and low) and the last byte is below 0x80 (the
number is not negative). With private key d = 2**248 / r (mod n) a real signature has
s = z + r*d = z + 2**248, so the two agree. The builder varies nLockTime until both byte
conditions hold (about 4 tries).
"""

from __future__ import annotations

from bsv import PrivateKey
from bsv.constants import OpCode
from bsv.hash import hash256

from contracts.script import Item

SIGHASH_ALL_FORKID = 0x41
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G_X = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
SIGNING_KEY = PrivateKey((pow(2, 248, CURVE_ORDER) * pow(G_X, -1, CURVE_ORDER)) % CURVE_ORDER)
SIGNING_PUBKEY = SIGNING_KEY.public_key().serialize()  # 02b405d7...
# DER: SEQUENCE(0x44) { INTEGER(32) r = G.x, INTEGER(32) s }; s is appended by the script
DER_PREFIX = bytes([0x30, 0x44, 0x02, 0x20]) + G_X.to_bytes(32, "big") + bytes([0x02, 0x20])

OP = OpCode


def check_preimage() -> list[Item]:
    """Items that verify the preimage on top of the stack and leave it there."""
    return [OP.OP_DUP, OP.OP_HASH256, OP.OP_BIN2NUM, OP.OP_1ADD, 32, OP.OP_NUM2BIN, DER_PREFIX, OP.OP_SWAP,
            OP.OP_CAT, bytes([SIGHASH_ALL_FORKID]), OP.OP_CAT, SIGNING_PUBKEY, OP.OP_CHECKSIGVERIFY]


def preimage_is_signable(preimage: bytes) -> bool:
    """Whether the compact check accepts this preimage (see the module docstring)."""
    digest = hash256(preimage)
    return digest[0] <= 0x7E and digest[31] < 0x80
