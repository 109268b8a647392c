"""Every way a submission can be refused is told to its contributor in words, not as a code."""

from __future__ import annotations

from marketplace.errors import REASON_TEXT
from marketplace.schema import RejectReason


def test_every_refusal_reason_has_words_for_the_contributor() -> None:
    assert set(REASON_TEXT) == {str(reason) for reason in RejectReason}
    for reason, words in REASON_TEXT.items():
        assert words[0].islower() and not words.endswith(".") and "_" not in words, reason
