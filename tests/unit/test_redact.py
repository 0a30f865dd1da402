"""redact: a password or token never survives redaction; a URL without one is kept exactly."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrig.redact import MASK, has_credentials, redact_text, redact_url

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgresql://mlrig:{SECRET}@127.0.0.1:5432/db",
            "postgresql://mlrig:***@127.0.0.1:5432/db",
        ),
        (
            f"postgresql+psycopg://u:{SECRET}@h/db?sslmode=require",
            "postgresql+psycopg://u:***@h/db?sslmode=require",
        ),
        (f"mysql://u:p@{SECRET}@h/db", "mysql://u:***@h/db"),  # an unencoded '@' in the password
        (f"postgresql://u:a/{SECRET}@h/db", "postgresql://u:***@h/db"),  # an unencoded '/'
        (f"https://u:{SECRET}@h/x.csv", "https://u:***@h/x.csv"),
        (f"https://u:{SECRET}@h", "https://u:***@h"),
        (
            f"https://b.s3.amazonaws.com/x.csv?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F{SECRET}"
            f"&X-Amz-Expires=60&X-Amz-Signature={SECRET}",
            "https://b.s3.amazonaws.com/x.csv?X-Amz-Algorithm=AWS4&X-Amz-Credential=***"
            "&X-Amz-Expires=60&X-Amz-Signature=***",
        ),
        (
            f"https://a.blob.core.windows.net/c/x.csv?sv=2022&sig={SECRET}",
            "https://a.blob.core.windows.net/c/x.csv?sv=2022&sig=***",
        ),
        (f"http://h/x.csv?access_token={SECRET}#part", "http://h/x.csv?access_token=***#part"),
        (
            f"http://h/x?token={SECRET}&password={SECRET}&sas_token={SECRET}",
            "http://h/x?token=***&password=***&sas_token=***",
        ),
        (f"postgresql://u@h/db?password={SECRET}", "postgresql://u@h/db?password=***"),
    ],
)
def test_credentials_are_masked_and_the_rest_kept(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert SECRET not in redact_url(url)
    assert has_credentials(url)
    assert redact_url(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/home/mlflow.db",
        "sqlite:///relative.db",
        "/data/wine.csv",
        "data/a?b.csv",
        "https://h/x.csv?page=2&sep=;",
        "http://127.0.0.1/a@b.csv",  # a path with '@', no userinfo
        "postgresql://mlrig@db:5432/mlrig",  # a user without a password
        "file:///tmp/x.parquet",
        "models:/m@champion",
    ],
)
def test_a_url_without_credentials_is_unchanged(url: str) -> None:
    assert redact_url(url) == url
    assert not has_credentials(url)


def test_urls_inside_a_message_are_redacted() -> None:
    text = f"Client error '401' for url 'http://u:{SECRET}@h:81/x.csv?sig={SECRET}' (see log)"
    out = redact_text(text)
    assert SECRET not in out
    assert "http://u:***@h:81/x.csv?sig=***" in out
    assert out.endswith("(see log)")


@pytest.mark.parametrize(
    "text",
    [
        f"store (postgresql://u:{SECRET}@db) refused",
        f"store 'http://u:{SECRET}@h:81', retrying",
        f"<mysql://u:{SECRET}@h/x>",
        f"url=https://u:{SECRET}@h.example;next",
    ],
)
def test_a_url_ending_in_punctuation_is_redacted(text: str) -> None:
    assert SECRET not in redact_text(text)


_PASSWORD = st.text(
    alphabet=string.ascii_letters + string.digits + "!$%&()*+,;=-._~:", min_size=1, max_size=24
)


@settings(max_examples=300, deadline=None)
@given(password=_PASSWORD, scheme=st.sampled_from(["postgresql", "mysql+pymysql", "https", "http"]))
def test_no_generated_password_survives(password: str, scheme: str) -> None:
    """Any password of URL-safe characters and ':' vanishes ('@' and '/' cases: above)."""
    url = f"{scheme}://user:{password}@db.example:5432/name"
    out = redact_url(url)
    assert out == f"{scheme}://user:{MASK}@db.example:5432/name"


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(
        alphabet=string.ascii_letters + string.digits + "%-_.~/+", min_size=1, max_size=40
    )
)
def test_no_generated_token_survives(token: str) -> None:
    url = f"https://h/x.csv?X-Amz-Signature={token}&X-Amz-Credential={token}&x=1"
    out = redact_url(url)
    assert out == "https://h/x.csv?X-Amz-Signature=***&X-Amz-Credential=***&x=1"
