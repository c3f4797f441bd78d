"""The payment gateway interface, and the test gateway Tidings ships with.

A real provider implements `PaymentGateway.charge` and `refund`; nothing else in Tidings needs
to change. A refund carries an idempotency key (providers' refund APIs take one): asked twice
with the same key, the provider refunds once and answers the same."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    refund_reference: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class RecordedRefund:
    reference: str  # the charge refunded
    amount_cents: int
    currency: str
    refund_reference: str


class PaymentGateway(Protocol):
    async def charge(self, *, amount_cents: int, currency: str, card_number: str, description: str) -> ChargeResult: ...

    async def refund(
        self, *, reference: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> RefundResult: ...


def normalize_card_number(card_number: str) -> str:
    return "".join(ch for ch in card_number if ch not in " -")


def passes_luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_plausible_card_number(card_number: str) -> bool:
    digits = normalize_card_number(card_number)
    return digits.isdigit() and 12 <= len(digits) <= 19 and passes_luhn(digits)


class TestPaymentGateway:
    """Behaves like a provider's test mode: fixed card numbers give fixed outcomes."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        # Every refund made, by idempotency key (what a provider's dashboard would list).
        self.refunds: dict[str, RecordedRefund] = {}

    OUTCOMES = {
        "4242424242424242": ChargeResult(succeeded=True),
        "4000000000000002": ChargeResult(
            False, failure_code="card_declined", failure_message="Your card was declined."
        ),
        "4000000000009995": ChargeResult(
            False, failure_code="insufficient_funds", failure_message="Your card has insufficient funds."
        ),
    }

    async def charge(self, *, amount_cents: int, currency: str, card_number: str, description: str) -> ChargeResult:
        outcome = self.OUTCOMES.get(
            normalize_card_number(card_number),
            ChargeResult(
                False,
                failure_code="card_not_supported",
                failure_message="This test gateway accepts only its documented test cards.",
            ),
        )
        if outcome.succeeded:
            return ChargeResult(succeeded=True, reference=f"test_{secrets.token_hex(8)}")
        return outcome

    async def refund(self, *, reference: str, amount_cents: int, currency: str, idempotency_key: str) -> RefundResult:
        if not reference.startswith("test_"):
            return RefundResult(False, failure_message="No such charge.")
        if idempotency_key not in self.refunds:
            self.refunds[idempotency_key] = RecordedRefund(
                reference, amount_cents, currency, refund_reference=f"test_re_{secrets.token_hex(8)}"
            )
        return RefundResult(True, refund_reference=self.refunds[idempotency_key].refund_reference)
