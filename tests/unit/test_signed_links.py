from datetime import timedelta

from webapp.auth.tokens import decode_access_token, issue_access_token
from webapp.signed_links import open_link_token, read_link, sign_link, unsubscribe_token

SECRET = "s" * 40


def test_an_open_link_names_its_user_and_notification() -> None:
    claims = read_link(open_link_token(7, 42, SECRET), "open", SECRET)
    assert claims is not None
    assert (claims.user_id, claims.purpose, claims.target) == (7, "open", "42")


def test_a_link_is_refused_for_another_purpose_another_key_or_after_expiry() -> None:
    token = unsubscribe_token(7, "general", SECRET)
    assert read_link(token, "open", SECRET) is None
    assert read_link(token, "unsubscribe", "t" * 40) is None
    expired = sign_link(7, "open", 42, SECRET, timedelta(seconds=-1))
    assert read_link(expired, "open", SECRET) is None
    assert read_link(token[:-2] + "xx", "unsubscribe", SECRET) is None


def test_links_and_access_tokens_never_pass_for_each_other() -> None:
    access = issue_access_token(7, SECRET, timedelta(minutes=5), "sess")
    assert read_link(access, "open", SECRET) is None
    assert decode_access_token(open_link_token(7, 42, SECRET), SECRET) is None
