from __future__ import annotations

from datetime import timedelta

import jwt

from webapp.auth.tokens import ALGORITHM, _verified, decode_access_token, issue_access_token

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


def test_a_token_is_verified_once_and_its_expiry_judged_at_every_use(monkeypatch):
    """Every authenticated request and stream opening checks its token: the signature and claims
    of one already verified are remembered, its expiry is not (issue 12: the cost of a request)."""
    token = issue_access_token(7, KEY, timedelta(minutes=15), "family-7")
    decodes = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *args, **kwargs: decodes.append(1) or real_decode(*args, **kwargs))
    first = decode_access_token(token, KEY)
    again = decode_access_token(token, KEY)
    assert first is not None and again == first
    assert len(decodes) == 1
    assert decode_access_token(token, "another-key-entirely-0123456789abcdef") is None  # the key is part of it
    later = first.expires_at + timedelta(seconds=1)
    monkeypatch.setattr("webapp.auth.tokens.utcnow", lambda: later)
    assert decode_access_token(token, KEY) is None
    monkeypatch.setattr("webapp.auth.tokens.utcnow", lambda: first.expires_at)
    assert decode_access_token(token, KEY) is None  # expired at its exp, as PyJWT judges it


def test_a_refused_token_is_judged_afresh_at_every_use(monkeypatch):
    """Only tokens that verified are remembered: one refused for a moment (issued by a clock a
    little ahead of this one) is accepted once it is valid, and garbage never fills the cache."""
    token = issue_access_token(8, KEY, timedelta(minutes=15), "family-8")
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *args, **kwargs: (_ for _ in ()).throw(jwt.ImmatureSignatureError()))
    assert decode_access_token(token, KEY) is None
    monkeypatch.setattr(jwt, "decode", real_decode)
    assert decode_access_token(token, KEY) is not None
    remembered = _verified.cache_info().currsize
    for n in range(100):
        assert decode_access_token(f"garbage-{n}" * 50, KEY) is None
    assert _verified.cache_info().currsize == remembered
