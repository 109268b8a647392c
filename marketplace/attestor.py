"""The attestor: the key that co-signs every payment of a vetted bounty, once the vetting passed.

It is not the operator's key. A vetted contract checks its signature over the whole spending transaction
(SIGHASH_ALL|FORKID), so the signature fixes payee, payout, successor and fee; the covenant still bounds
each spend, so a leaked attestor key can pay single payouts, never the balance. The key follows the
wallet's rules: an environment variable (``BOUNTY_ATTESTOR_WIF``) or an owner-only key file, created under
``BOUNTY_HOME`` on first use on the dev chain; it never appears in ``repr``, logs, exceptions or pickles.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from bsv import PrivateKey, Transaction
from bsv.constants import SIGHASH

from marketplace.chain._keys import key_from_env, key_from_file, new_key_file

ROLE = "attestor"
DEFAULT_KEY_VARIABLE = "BOUNTY_ATTESTOR_WIF"
SIGHASH_ALL_FORKID = int(SIGHASH.ALL_FORKID)


class Attestor:
    """Signs spending transactions of vetted bounties; holds its key and shows only the public half."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.public_key: bytes = key.public_key().serialize()

    @classmethod
    def from_env(cls, variable: str = DEFAULT_KEY_VARIABLE) -> Attestor:
        return cls(key_from_env(variable, ROLE))

    @classmethod
    def from_file(cls, path: Path | str) -> Attestor:
        return cls(key_from_file(path, ROLE))

    @classmethod
    def create_key_file(cls, path: Path | str, testnet: bool = False) -> Attestor:
        return cls(new_key_file(path, testnet, ROLE))

    def sign(self, tx: Transaction, input_index: int) -> bytes:
        """A DER signature plus the sighash byte over input `input_index` of the final `tx` (ALL|FORKID)."""
        return bytes(self._key.sign(tx.preimage(input_index))) + bytes([SIGHASH_ALL_FORKID])  # hash256(preimage)

    def __repr__(self) -> str:
        return f"Attestor(public_key={self.public_key.hex()!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("the attestor cannot be pickled: pass its key variable or key file path instead")
