"""The operator's wallet: one P2PKH key that funds bounty deployments and receives change.

The key comes from an environment variable holding a WIF, or from a file only its owner can read.
It never leaves this object: not in ``repr``, logs, exceptions or return values, and the wallet
refuses to be pickled (so it cannot ride a task queue message). Pass the variable's name or the
file's path between processes instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bsv import P2PKH, PrivateKey, Transaction, TransactionOutput
from bsv.curve import curve

from contracts.bounty import BountyContract
from contracts.pool import PoolContract
from contracts.transactions import DEFAULT_FEE_RATE, Utxo, address_pkh, deploy, migrate, pay, pool_move, withdraw
from marketplace.chain._keys import key_from_env, key_from_file, new_key_file
from marketplace.chain.base import Chain
from marketplace.chain.errors import WalletError
from marketplace.chain.local import LocalChain

log = logging.getLogger(__name__)

DEFAULT_KEY_VARIABLE = "BOUNTY_OPERATOR_WIF"
ROLE = "operator"
P2PKH_OUTPUT_BYTES = 34  # value 8 + length 1 + script 25
TX_OVERHEAD_BYTES = 10  # version 4 + input and output counts + locktime 4 (counts below 253)


class Wallet:
    """A P2PKH wallet around one private key; build transactions with it, broadcast them yourself."""

    __slots__ = ("_key", "address", "public_key")

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.address: str = key.address()
        self.public_key: bytes = key.public_key().serialize()

    @classmethod
    def from_env(cls, variable: str = DEFAULT_KEY_VARIABLE) -> Wallet:
        return cls(key_from_env(variable, ROLE))

    @classmethod
    def from_file(cls, path: Path | str) -> Wallet:
        """Load a WIF from a file that only its owner may read or write (mode 600 or 400)."""
        return cls(key_from_file(path, ROLE))

    @classmethod
    def create_key_file(cls, path: Path | str, testnet: bool = False) -> Wallet:
        """Write a new random key to `path` (created with mode 600, never overwritten) and load it."""
        return cls(new_key_file(path, testnet, ROLE))

    def __repr__(self) -> str:
        return f"Wallet(address={self.address!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("the operator wallet cannot be pickled: pass its key variable or key file path instead")

    # -- coins ------------------------------------------------------------------------------------

    def utxos(self, chain: Chain) -> list[Utxo]:
        return chain.utxos_for_address(self.address)

    def balance(self, chain: Chain) -> int:
        return sum(u.satoshis for u in self.utxos(chain))

    def select(self, utxos: Sequence[Utxo], amount: int, output_bytes: int,
               fee_rate: int = DEFAULT_FEE_RATE) -> list[Utxo]:
        """Largest coins first until they pay `amount`, plus the fee of a transaction with those inputs,
        outputs of `output_bytes` and a change output."""
        per_input = 41 + (107 if self._key.compressed else 139)  # outpoint, sequence, length, sig + pubkey
        chosen: list[Utxo] = []
        for utxo in sorted(utxos, key=lambda u: u.satoshis, reverse=True):
            chosen.append(utxo)
            size = TX_OVERHEAD_BYTES + per_input * len(chosen) + output_bytes + P2PKH_OUTPUT_BYTES
            if sum(u.satoshis for u in chosen) >= amount + -(-size * fee_rate // 1000):
                return chosen
        raise WalletError(f"the wallet {self.address} holds {sum(u.satoshis for u in utxos)} sats in {len(utxos)} "
                          f"outputs, not enough to pay {amount} sats and the fee")

    # -- building ---------------------------------------------------------------------------------

    def build_deploy(self, chain: Chain, contract: BountyContract, amount: int,
                     fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
        """A signed transaction locking `amount` sats in `contract` (output 0), change back to this wallet."""
        script_bytes = len(contract.lock().serialize())
        coins = self.select(self.utxos(chain), amount, 8 + 5 + script_bytes, fee_rate)
        return deploy(contract, amount, coins, self._key, self.address, fee_rate)

    def build_payment(self, chain: Chain, to: str, amount: int, fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
        """A signed transaction paying `amount` sats to a P2PKH address, change back to this wallet."""
        coins = self.select(self.utxos(chain), amount, P2PKH_OUTPUT_BYTES, fee_rate)
        payee = TransactionOutput(P2PKH().lock(address_pkh(to)), amount)
        return pay([payee], coins, self._key, self.address, fee_rate)

    def build_withdraw(self, contract: BountyContract, utxo: Utxo, fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
        """Owner path: the contract's whole balance, less the fee, back to this wallet."""
        return withdraw(contract, utxo, self._key, self.address, fee_rate)

    def build_migrate(self, chain: Chain, contract: BountyContract, utxo: Utxo, successor: BountyContract,
                      top_up: int = 0, fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
        """Owner path: move the balance, plus `top_up` sats from this wallet, into `successor` (output 0)."""
        coins = self.select(self.utxos(chain), top_up, len(successor.lock().serialize()), fee_rate) if top_up else []
        return migrate(contract, utxo, self._key, successor, coins, self._key, self.address, fee_rate,
                       top_up=top_up)

    # -- prize pools ------------------------------------------------------------------------------

    def _reserve_key(self, bounty_id: int) -> PrivateKey:
        """A pool bounty's reserve key, derived from the operator key (nothing more to keep secret): a P2PKH
        address of its own, so the wallet's coin selection never spends a bounty's reserve."""
        seed = hashlib.sha256(b"digit-bounty pool reserve" + self._key.serialize() + bounty_id.to_bytes(8, "big"))
        return PrivateKey(int.from_bytes(seed.digest(), "big") % (curve.n - 1) + 1, network=self._key.network)

    def reserve_address(self, bounty_id: int) -> str:
        return str(self._reserve_key(bounty_id).address())

    def build_pool_move(self, chain: Chain, bounty_id: int, *, pool: PoolContract | None = None, count: int = 0,
                        prizes: Sequence[tuple[PoolContract, Utxo]] = (), reserve: Utxo | None = None,
                        add: int = 0, withdraw: bool = False, fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
        """An owner transaction of pool bounty `bounty_id` (contracts.transactions.pool_move): `add` sats from this
        wallet, `count` new prizes of `pool`, the rest to the bounty's reserve (to this wallet if `withdraw`)."""
        coins = self.select(self.utxos(chain), add, P2PKH_OUTPUT_BYTES, fee_rate) if add else []
        return pool_move(self.address if withdraw else self.reserve_address(bounty_id), pool=pool, count=count,
                         prizes=prizes, owner_key=self._key, reserve=reserve,
                         reserve_key=self._reserve_key(bounty_id), coins=coins, wallet_key=self._key, add=add,
                         change_to=self.address, fee_rate=fee_rate)

    def fund_from_faucet(self, chain: LocalChain, amount: int) -> str:
        """Development only: pay `amount` sats to this wallet out of the local chain's faucet."""
        if not isinstance(chain, LocalChain):
            raise WalletError("only a LocalChain has a faucet; fund a network wallet with a real payment")
        return chain.faucet(self.address, amount)

