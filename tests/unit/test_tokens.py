from __future__ import annotations

from datetime import timedelta

import jwt

from webapp.auth.tokens import ALGORITHM, decode_access_token, issue_access_token

KEY = "unit-test-key-that-is-long-enough-0123456789"


def test_a_fresh_token_decodes_to_its_user():
    claims = decode_access_token(issue_access_token(42, KEY, timedelta(minutes=15), "family-1"), KEY)
    assert claims is not None and claims.user_id == 42 and len(claims.jti) == 32
    assert claims.session == "family-1"


def test_expired_forged_and_malformed_tokens_are_refused():
    assert decode_access_token(issue_access_token(1, KEY, timedelta(seconds=-1), "test-session"), KEY) is None
    assert (
        decode_access_token(
            issue_access_token(1, "another-key-entirely-0123456789abcdef", timedelta(minutes=5), "test-session"), KEY
        )
        is None
    )
    assert decode_access_token("not.a.token", KEY) is None
    assert decode_access_token("", KEY) is None


def test_tokens_without_required_claims_or_with_another_algorithm_are_refused():
    no_jti = jwt.encode(
        {"sub": "1", "exp": 9999999999, "iat": 0, "aud": "tidings", "iss": "tidings"}, KEY, algorithm=ALGORITHM
    )
    assert decode_access_token(no_jti, KEY) is None
    unsigned = jwt.encode(
        {"sub": "1", "exp": 9999999999, "iat": 0, "aud": "tidings", "iss": "tidings", "jti": "x"},
        None,
        algorithm="none",
    )
    assert decode_access_token(unsigned, KEY) is None
    wrong_audience = jwt.encode(
        {"sub": "1", "exp": 9999999999, "iat": 0, "aud": "elsewhere", "iss": "tidings", "jti": "x"},
        KEY,
        algorithm=ALGORITHM,
    )
    assert decode_access_token(wrong_audience, KEY) is None


def test_tokens_without_a_session_or_with_a_non_string_one_are_refused():
    """Every token names the session that can end it; one that names none could not be logged out."""
    base = {"sub": "1", "exp": 9999999999, "iat": 0, "aud": "tidings", "iss": "tidings", "jti": "x"}
    assert decode_access_token(jwt.encode(base, KEY, algorithm=ALGORITHM), KEY) is None
    for sid in (5, None, "", ["a"]):
        assert decode_access_token(jwt.encode({**base, "sid": sid}, KEY, algorithm=ALGORITHM), KEY) is None
    assert decode_access_token(jwt.encode({**base, "sid": "abc"}, KEY, algorithm=ALGORITHM), KEY) is not None
