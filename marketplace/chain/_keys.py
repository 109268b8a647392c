"""Private keys from the environment or from owner-only files, for the wallet and the attestor alike.

A key never appears in a message: errors name the variable or file and the key's role ("operator",
"attestor"), and a WIF that does not decode is reported without the SDK's own exception attached.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from bsv import PrivateKey
from bsv.constants import Network

from marketplace.chain.errors import WalletError

log = logging.getLogger(__name__)


def key_from_env(variable: str, role: str) -> PrivateKey:
    wif = os.environ.get(variable, "").strip()
    if not wif:
        raise WalletError(f"the environment variable {variable} holds no {role} key (a WIF)")
    return decode_wif(wif, f"the environment variable {variable}")


def key_from_file(path: Path | str, role: str) -> PrivateKey:
    """A WIF from a file that only its owner may read or write (mode 600 or 400)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise WalletError(f"the {role} key file {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise WalletError(f"the {role} key file {path} is open to other users (mode {stat.S_IMODE(mode):o}): "
                          f"run `chmod 600 {path}`")
    try:
        wif = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise WalletError(f"the {role} key file {path} cannot be read: {type(exc).__name__}") from None
    return decode_wif(wif, f"the {role} key file {path}")


def new_key_file(path: Path | str, testnet: bool, role: str) -> PrivateKey:
    """A new random key written to `path` (created with mode 600, never overwritten)."""
    path = Path(path)
    key = PrivateKey(network=Network.TESTNET if testnet else Network.MAINNET)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WalletError(f"{path} already exists: refusing to overwrite a key") from None
    with os.fdopen(fd, "w") as out:
        out.write(key.wif() + "\n")
    log.info("created %s key file %s for %s", role, path, key.address())
    return key


def decode_wif(wif: str, where: str) -> PrivateKey:
    try:
        return PrivateKey(wif)
    except Exception:  # bsv raises several types, and its message may quote the WIF
        pass
    # raised outside the except block so the SDK's exception is not even kept as __context__
    raise WalletError(f"{where} does not hold a valid WIF private key")
