from __future__ import annotations

import pytest

from webapp.bookings.payment_gateway import TestPaymentGateway, is_plausible_card_number, passes_luhn


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        ("4242 4242 4242 4242", True),
        ("4000-0000-0000-0002", True),
        ("4242424242424241", False),
        ("1234", False),
        ("abcd", False),
        ("", False),
    ],
)
def test_card_numbers_are_checked_for_shape_and_luhn(card, expected):
    assert is_plausible_card_number(card) is expected


def test_luhn_rejects_a_single_wrong_digit():
    assert passes_luhn("4000000000009995")
    assert not passes_luhn("4000000000009996")


async def test_test_cards_give_their_documented_outcomes():
    gateway = TestPaymentGateway()
    ok = await gateway.charge(amount_cents=100, currency="EUR", card_number="4242 4242 4242 4242", description="x")
    declined = await gateway.charge(amount_cents=100, currency="EUR", card_number="4000000000000002", description="x")
    broke = await gateway.charge(amount_cents=100, currency="EUR", card_number="4000 0000 0000 9995", description="x")
    other = await gateway.charge(amount_cents=100, currency="EUR", card_number="5555555555554444", description="x")
    assert ok.succeeded and ok.reference and ok.reference.startswith("test_")
    assert (declined.succeeded, declined.failure_code) == (False, "card_declined")
    assert (broke.succeeded, broke.failure_code) == (False, "insufficient_funds")
    assert (other.succeeded, other.failure_code) == (False, "card_not_supported")
