"""Ring 1: the egress decision, at the function: no socket is opened for any of these addresses."""

from __future__ import annotations

import pytest

from pantau.crawler.guard import EgressBlocked, check_url, parse_ip_literal, refusal


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # AWS, GCP, Azure metadata
        ("169.254.170.2", "link-local"),  # ECS task metadata
        ("100.100.100.200", "not a public"),  # Alibaba metadata, CGNAT range
        ("fd00:ec2::254", "private"),  # AWS IPv6 metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "private"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("::ffff:169.254.169.254", "IPv4-mapped"),
        ("2002:a9fe:a9fe::", "6to4"),  # 6to4 wrapping 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "NAT64"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo"),  # Teredo wrapping 10.0.0.1
    ],
)
def test_non_public_addresses_are_refused_even_with_the_loopback_allowance(address, why):
    assert why in (refusal(address) or "")
    assert why in (refusal(address, allow_loopback=True) or "")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_needs_the_explicit_allowance(address):
    assert "loopback" in refusal(address)
    assert refusal(address, allow_loopback=True) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert refusal(address) is None


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("3232235777", "192.168.1.1"),
        ("0251.0376.0251.0376", "169.254.169.254"),
    ],
)
def test_numeric_spellings_are_read_as_the_resolver_would(spelling, address):
    assert str(parse_ip_literal(spelling)) == address


@pytest.mark.parametrize("host", ["example.com", "kompas.tv", "1.example", "deadbeef.com"])
def test_names_are_not_mistaken_for_addresses(host):
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://0251.0376.0251.0376/",
        "http://2852039166/",
        "http://10.1.1.1:8080/x",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "http://user:pw@example.com/",
        "http:///no-host",
    ],
)
def test_check_url_refuses_before_any_connection(url):
    with pytest.raises(EgressBlocked):
        check_url(url)


def test_check_url_lets_names_through_to_the_resolver_check():
    check_url("https://www.kompas.tv/internasional")
