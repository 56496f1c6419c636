"""The address classifier outsiders' targets are judged by: every spelling of a non-public host is refused."""

from __future__ import annotations

import ipaddress

import pytest

from statusd.core.addresses import AddressPolicy, classify, network_problem, parse_address, redact_url

STRICT = AddressPolicy()
LOOPBACK_ALLOWED = AddressPolicy.from_cidrs(["127.0.0.0/8"])


@pytest.mark.parametrize("host", [
    pytest.param("127.0.0.1", id="loopback"),
    pytest.param("127.1", id="loopback-short"),
    pytest.param("127.0.1", id="loopback-three-parts"),
    pytest.param("0x7f.1", id="loopback-hex-short"),
    pytest.param("0x7f000001", id="loopback-hex-whole"),
    pytest.param("2130706433", id="loopback-decimal-whole"),
    pytest.param("017700000001", id="loopback-octal-whole"),
    pytest.param("0177.0.0.1", id="loopback-octal-dotted"),
    pytest.param("127.0.0.1.", id="loopback-trailing-dot"),
    pytest.param("127.255.255.254", id="loopback-range-end"),
    pytest.param("[::1]", id="v6-loopback-bracketed"),
    pytest.param("::1", id="v6-loopback"),
    pytest.param("[::ffff:127.0.0.1]", id="v4-mapped-loopback"),
    pytest.param("::ffff:7f00:1", id="v4-mapped-loopback-hex"),
    pytest.param("::127.0.0.1", id="v4-compatible-loopback"),
    pytest.param("2002:7f00:1::", id="6to4-loopback"),
    pytest.param("64:ff9b::a00:1", id="nat64-private"),
    pytest.param("localhost", id="localhost"),
    pytest.param("LocalHost.", id="localhost-case-and-dot"),
    pytest.param("api.localhost", id="localhost-subdomain"),
    pytest.param("ip6-localhost", id="ip6-localhost"),
    pytest.param("169.254.169.254", id="metadata-address"),
    pytest.param("0xa9.0xfe.0xa9.0xfe", id="metadata-address-hex"),
    pytest.param("2852039166", id="metadata-address-decimal"),
    pytest.param("[::ffff:169.254.169.254]", id="metadata-v4-mapped"),
    pytest.param("metadata.google.internal", id="metadata-gcp-name"),
    pytest.param("metadata.google.internal.", id="metadata-gcp-name-dot"),
    pytest.param("fe80::1", id="v6-link-local"),
    pytest.param("fe80::1%25eth0", id="v6-link-local-zone"),
    pytest.param("10.0.0.5", id="private-10"),
    pytest.param("172.16.0.1", id="private-172-16"),
    pytest.param("172.31.255.255", id="private-172-31"),
    pytest.param("192.168.1.1", id="private-192-168"),
    pytest.param("012.0.0.1", id="private-octal"),
    pytest.param("fd12:3456::1", id="v6-unique-local"),
    pytest.param("fc00::1", id="v6-unique-local-fc"),
    pytest.param("100.64.0.1", id="cgnat"),
    pytest.param("100.127.255.254", id="cgnat-end"),
    pytest.param("224.0.0.1", id="multicast"),
    pytest.param("239.255.255.250", id="multicast-ssdp"),
    pytest.param("ff02::1", id="v6-multicast"),
    pytest.param("0.0.0.0", id="unspecified"),
    pytest.param("0", id="unspecified-short"),
    pytest.param("::", id="v6-unspecified"),
    pytest.param("255.255.255.255", id="broadcast"),
    pytest.param("192.0.2.1", id="documentation"),
    pytest.param("intranet", id="single-label-name"),
    pytest.param("jira.corp", id="corp-name"),
    pytest.param("printer.local", id="mdns-name"),
    pytest.param("db.internal", id="internal-name"),
    pytest.param("nas.home.arpa", id="home-arpa-name"),
])
def test_a_non_public_host_is_refused_in_every_spelling(host: str) -> None:
    assert STRICT.refusal(host) is not None


@pytest.mark.parametrize("host", [
    pytest.param("example.com", id="name"),
    pytest.param("hooks.example.com.", id="name-trailing-dot"),
    pytest.param("93.184.216.34", id="public-v4"),
    pytest.param("8.8.8.8", id="public-v4-dns"),
    pytest.param("0x08.0x08.0x08.0x08", id="public-v4-hex"),
    pytest.param("172.32.0.1", id="just-past-172-16-12"),
    pytest.param("100.128.0.1", id="just-past-cgnat"),
    pytest.param("2606:4700:4700::1111", id="public-v6"),
    pytest.param("[2001:4860:4860::8888]", id="public-v6-bracketed"),
    pytest.param("::ffff:8.8.8.8", id="v4-mapped-public"),
    pytest.param("127.0.0.1.nip.io", id="public-name-that-may-resolve-anywhere"),
])
def test_a_public_host_passes(host: str) -> None:
    # A name passes here on its spelling only; what it resolves to is judged at connect time.
    assert STRICT.refusal(host) is None


@pytest.mark.parametrize(("host", "refused"), [
    pytest.param("127.0.0.1", False, id="loopback-allowed"),
    pytest.param("127.1", False, id="loopback-short-allowed"),
    pytest.param("localhost", False, id="localhost-allowed"),
    pytest.param("[::ffff:127.0.0.1]", False, id="v4-mapped-loopback-allowed"),
    pytest.param("::1", True, id="v6-loopback-not-in-the-list"),
    pytest.param("10.0.0.1", True, id="private-not-in-the-list"),
    pytest.param("169.254.169.254", True, id="metadata-not-in-the-list"),
    pytest.param("metadata.google.internal", True, id="metadata-name-not-in-the-list"),
    pytest.param("intranet", False, id="internal-name-judged-at-connect-time"),
])
def test_the_allow_list_opens_only_its_own_networks(host: str, refused: bool) -> None:
    assert (LOOPBACK_ALLOWED.refusal(host) is not None) == refused


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("127.1", "127.0.0.1", id="two-parts"),
    pytest.param("10.1.257", "10.1.1.1", id="three-parts-last-fills-16-bits"),
    pytest.param("0x7f.0.0.1", "127.0.0.1", id="hex-part"),
    pytest.param("4294967295", "255.255.255.255", id="whole-max"),
    pytest.param("4294967296", None, id="whole-too-big"),
    pytest.param("256.0.0.1", None, id="part-too-big"),
    pytest.param("08.0.0.1", None, id="bad-octal"),
    pytest.param("1.2.3.4.5", None, id="five-parts"),
    pytest.param("1_0.0.0.1", None, id="underscore"),
    pytest.param("+1.0.0.1", None, id="sign"),
    pytest.param("example.com", None, id="name"),
    pytest.param("[::1]", "::1", id="v6-bracketed"),
])
def test_parse_address_reads_what_inet_aton_reads(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected


def test_the_refusal_names_the_address_and_its_kind() -> None:
    assert STRICT.refusal("0x7f.1") == "127.0.0.1 is not a public address (loopback)"
    assert classify(ipaddress.ip_address("100.64.1.1")) == "shared (CGNAT)"
    assert classify(ipaddress.ip_address("1.1.1.1")) is None


@pytest.mark.parametrize(("cidr", "ok"), [
    pytest.param("10.0.0.0/8", True, id="v4"),
    pytest.param("fd00::/8", True, id="v6"),
    pytest.param("127.0.0.1", True, id="one-address"),
    pytest.param("10.0.0.0/33", False, id="bad-prefix"),
    pytest.param("intranet", False, id="a-name"),
])
def test_network_problem(cidr: str, ok: bool) -> None:
    assert (network_problem(cidr) is None) == ok


@pytest.mark.parametrize(("url", "expected"), [
    pytest.param("https://user:pw@hooks.example.com/x", "https://hooks.example.com/x", id="user-and-password"),
    pytest.param("https://tok@hooks.example.com:8443/?a=b@c", "https://hooks.example.com:8443/?a=b@c", id="user-only"),
    pytest.param("https://hooks.example.com/p@th", "https://hooks.example.com/p@th", id="at-in-path-kept"),
    pytest.param("not a url", "not a url", id="not-a-url"),
])
def test_redact_url_strips_credentials_only(url: str, expected: str) -> None:
    assert redact_url(url) == expected
