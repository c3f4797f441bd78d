from litestar._parsers import parse_cookie_string


def parse_cookies(header: str) -> dict[str, str]:
    return parse_cookie_string(header) if header else {}
