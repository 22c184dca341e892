"""Where callbacks may go: hostile callback URLs are refused when a job or batch is submitted and again at
every delivery, a delivery connects only to the address it checked, and the allow-list of receivers.

There is no DNS here: names are answered by replacing `egress.resolve`; IP literals go through the real
getaddrinfo (it parses every numeric spelling without a network).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.errors import EgressRefused
from gateway import egress
from gateway.egress import callback_url_validate, egress_post
from gateway.models import Job, WebhookDelivery
from gateway.webhooks import webhook_attempt
from tests.gateway.test_jobs import submit
from tests.gateway.upstream import Receiver

PUBLIC = "93.184.216.34"

# The class of the report: every way to name an address inside the network.
HOSTILE_LITERALS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/hook",
    "https://172.16.3.4/hook",
    "https://172.31.255.254/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",
    "https://127.0.0.1/hook",
    "https://2130706433/hook",  # 127.0.0.1 as one decimal number
    "https://0x7f000001/hook",  # as one hex number
    "https://0177.0.0.1/hook",  # octal
    "https://0x7f.1/hook",  # hex, short form
    "https://127.1/hook",
    "https://0.0.0.0/hook",
    "https://0/hook",
    "https://[::]/hook",
    "https://[::1]/hook",
    "https://[0:0:0:0:0:0:0:1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:a9fe:a9fe]/hook",  # mapped 169.254.169.254
    "https://[::ffff:10.1.2.3]/hook",
    "https://[::127.0.0.1]/hook",  # IPv4-compatible
    "https://[2002:a9fe:a9fe::]/hook",  # 6to4 of 169.254.169.254
    "https://[2002:7f00:1::1]/hook",
    "https://[2002:5db8:d822::1]/hook",  # 6to4 of a public address: still a tunnel
    "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "https://[64:ff9b::10.0.0.1]/hook",
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
    "https://[2001:0:4136:e378:8000:63bf:a247:27dd]/hook",  # Teredo, client 93.184.216.34: still a tunnel
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd12:3456::1]/hook",
    "https://[fec0::1]/hook",
    "https://[ff02::1]/hook",
    "https://224.0.0.1/hook",
    "https://255.255.255.255/hook",
    "https://192.0.2.10/hook",
    "https://[2001:db8::1]/hook",
    "https://169.254.169.254:443/hook",
    "https://169.254.169.254./hook",  # trailing dot
]
# Names that resolve inside (what the replaced resolver answers for them).
HOSTILE_NAMES = {
    "localtest.me": ["127.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "rebind.example.com": [PUBLIC, "10.0.0.7"],  # one bad address refuses the name
    "db.internal.example.com.": ["192.168.0.10"],  # trailing dot
    "v6.example.com": ["fd00::5"],
    "mapped.example.com": ["::ffff:169.254.169.254"],
}
PLAIN = "must be a plain URL (no spaces, backslashes or non-ASCII characters)"
BAD_URLS = {
    "http://hooks.example.com/hook": "must be https",
    "http://169.254.169.254/latest/meta-data/": "must be https",
    "ftp://hooks.example.com/hook": "must be https",
    "file:///etc/passwd": "must be https",
    "gopher://127.0.0.1:6379/_FLUSHALL": "must be https",
    "https://api.example.com@169.254.169.254/": "must not contain a user name or password",
    "https://user:pw@hooks.example.com/hook": "must not contain a user name or password",
    "https://hooks.example.com\\@169.254.169.254/": PLAIN,
    "https://hooks.example.com /hook": PLAIN,
    "https://hooks.ex\u0430mple.com/hook": PLAIN,  # a Cyrillic a
    "https:///hook": "must name a host",
    "https://hooks.example.com..:443/hook": "must name a host",
    "https://hooks.example.com:0/hook": "must have a valid port",
    "https://hooks.example.com:99999/hook": "must be a valid URL",
    "https://[::1/hook": "must be a valid URL",
}
REFUSED_ADDRESS = "must resolve only to public addresses"


@pytest.fixture
def production(settings):
    """Production's settings: no loopback."""
    settings.TOLLGATE_WEBHOOK_ALLOW_LOOPBACK = False
    settings.TOLLGATE_WEBHOOK_ALLOWED_HOSTS = []
    return settings


class Dns:
    """Answers for names (`then`: the answer from a name's second lookup on: rebinding); IP literals go to
    the real getaddrinfo."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.then: dict[str, list[str]] = {}
        self.asked: list[str] = []
        self._real = egress.resolve

    def __call__(self, host: str, port: int) -> list[egress.IPAddress]:
        seen = host in self.asked
        self.asked.append(host)
        answer = self.then[host] if seen and host in self.then else self.answers.get(host)
        if answer is None:
            return self._real(host, port)
        return [ipaddress.ip_address(address) for address in answer]


@pytest.fixture
def dns(monkeypatch) -> Dns:
    fake = Dns()
    monkeypatch.setattr(egress, "resolve", fake)
    return fake


@pytest.fixture
def connections(monkeypatch) -> list[str]:
    """Every address a delivery opens a socket to."""
    opened: list[str] = []
    real = egress.connection_open

    def spy(address, port, timeout):
        opened.append(str(address))
        return real(address, port, timeout)

    monkeypatch.setattr(egress, "connection_open", spy)
    return opened


# --- at submission ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", HOSTILE_LITERALS)
def test_an_address_inside_the_network_is_refused_in_any_spelling(production, url):
    with pytest.raises(EgressRefused) as refused:
        callback_url_validate(url)

    assert refused.value.extra == {"errors": {"callback_url": REFUSED_ADDRESS}}
    assert refused.value.code == "invalid_request"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_name_that_resolves_inside_the_network_is_refused(production, dns, name):
    dns.answers = dict(HOSTILE_NAMES)

    with pytest.raises(EgressRefused) as refused:
        callback_url_validate(f"https://{name}/hook")

    assert refused.value.extra == {"errors": {"callback_url": REFUSED_ADDRESS}}
    assert dns.asked == [name]


@pytest.mark.parametrize(("url", "problem"), BAD_URLS.items())
def test_a_url_that_is_not_a_plain_https_url_is_refused_before_any_lookup(production, dns, url, problem):
    with pytest.raises(EgressRefused) as refused:
        callback_url_validate(url)

    assert refused.value.extra == {"errors": {"callback_url": problem}}
    assert dns.asked == []


def test_a_name_that_does_not_resolve_is_refused_in_the_words_of_a_refused_address(production):
    # The same answer as for an internal name: a client cannot map which internal names exist.
    with pytest.raises(EgressRefused) as refused:
        callback_url_validate("https://no-such-host.invalid/hook")

    assert refused.value.extra == {"errors": {"callback_url": REFUSED_ADDRESS}}


@pytest.mark.parametrize(
    "address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"]
)
def test_a_name_that_resolves_to_public_addresses_is_accepted_as_given(production, dns, address):
    dns.answers = {"hooks.example.com": [address], "HOOKS.example.com": [address]}

    assert callback_url_validate("https://hooks.example.com/hook?x=1") == "https://hooks.example.com/hook?x=1"
    assert callback_url_validate("https://HOOKS.example.com:8443/a") == "https://HOOKS.example.com:8443/a"


def test_loopback_is_allowed_only_in_its_plain_forms_with_the_loopback_setting(settings, dns):
    settings.TOLLGATE_WEBHOOK_ALLOW_LOOPBACK = True
    dns.answers = {"localhost": ["127.0.0.1", "::1"]}

    for url in ["http://127.0.0.1:8000/hook", "http://localhost:8000/hook", "https://[::1]/hook"]:
        assert callback_url_validate(url) == url
    for url in ["https://[::ffff:127.0.0.1]/hook", "https://169.254.169.254/", "https://10.0.0.1/"]:
        with pytest.raises(EgressRefused):
            callback_url_validate(url)
    with pytest.raises(EgressRefused, match="must be https"):
        callback_url_validate("http://2130706433/hook")  # plain http only to localhost or a loopback literal


@pytest.mark.django_db
def test_a_job_with_a_hostile_callback_is_refused_with_a_problem_that_names_no_address(world, production, dns):
    dns.answers = dict(HOSTILE_NAMES)

    for url in ["https://169.254.169.254/latest/meta-data/", "https://metadata.google.internal/computeMetadata/"]:
        response = submit(world, callback_url=url)

        assert response.status_code == 400
        problem = response.json()
        assert problem["code"] == "invalid_request"
        assert problem["errors"] == {"callback_url": REFUSED_ADDRESS}
        assert "169.254" not in json.dumps(problem)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_batch_with_a_hostile_callback_is_refused(world, production, dns):
    dns.answers = dict(HOSTILE_NAMES)
    item = {"custom_id": "a", "variables": {"ticket": "x", "customer_email": "a@example.com"}}

    for url in ["https://[::ffff:127.0.0.1]/hook", "https://localtest.me/hook"]:
        response = world["http"].post(
            "/api/v1/prompts/support-summary/batches", {"items": [item], "callback_url": url}, format="json"
        )

        assert response.status_code == 400
        assert response.json()["errors"] == {"callback_url": REFUSED_ADDRESS}


# --- at delivery -----------------------------------------------------------------------------------------


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.mark.django_db
def test_a_name_rebound_to_an_internal_address_after_submission_is_refused_once_and_never_connected(
    world, production, dns, connections, receiver, run_on_commit
):
    # Public when the job is accepted, then the receiver's loopback address: the rebinding attack.
    dns.answers, dns.then = {"hooks.example.com": [PUBLIC]}, {"hooks.example.com": ["127.0.0.1"]}
    url = f"https://hooks.example.com:{receiver.port}/hook"

    with run_on_commit():
        assert submit(world, callback_url=url).status_code == 202

    delivery = WebhookDelivery.objects.get()  # one attempt, not TOLLGATE_WEBHOOK_MAX_ATTEMPTS
    assert (delivery.error, delivery.delivered, delivery.status_code) == ("blocked_address", False, None)
    assert dns.asked == ["hooks.example.com", "hooks.example.com"]
    assert connections == []
    assert receiver.received == []


@pytest.mark.django_db
def test_a_delivery_connects_to_the_address_it_checked_and_names_the_host(
    world, settings, dns, connections, receiver, run_on_commit, monkeypatch
):
    settings.TOLLGATE_WEBHOOK_ALLOW_LOOPBACK = True
    dns.answers = {"localhost": ["127.0.0.1"]}
    with run_on_commit():
        submit(world, callback_url=f"http://localhost:{receiver.port}/hook?job=1")
    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        looked_up.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    job = Job.objects.get()

    assert webhook_attempt("job", job.pk, 2) is None

    assert connections == ["127.0.0.1", "127.0.0.1"]
    assert dns.asked == ["localhost"] * 3  # submission, and each delivery once
    assert looked_up == ["127.0.0.1"]  # the socket's own lookup is of the checked address, never of the name
    headers, _ = receiver.received[-1]
    assert headers["Host"] == f"localhost:{receiver.port}"
    assert WebhookDelivery.objects.filter(delivered=True).count() == 2


@pytest.mark.django_db
def test_a_redirect_is_a_failed_attempt_and_its_location_is_not_asked(world, settings, receiver, run_on_commit):
    settings.TOLLGATE_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.statuses = [307]

    with run_on_commit():
        submit(world, callback_url=receiver.url)

    assert list(WebhookDelivery.objects.values_list("status_code", "error", "delivered")) == [(307, "HTTP 307", False)]
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_a_name_that_stops_resolving_is_retried_like_a_network_error(world, production, dns):
    dns.answers = {"hooks.example.com": [PUBLIC]}
    submit(world, callback_url="https://hooks.example.com/hook")  # accepted, and left queued
    dns.answers = {}  # the real resolver: no DNS here

    delay = webhook_attempt("job", Job.objects.get().pk, 1)

    assert delay == pytest.approx(production.TOLLGATE_WEBHOOK_BACKOFF_SECONDS)
    assert WebhookDelivery.objects.get().error == "unresolvable"


# --- TLS to the checked address ----------------------------------------------------------------------------


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch) -> Iterator[tuple[Receiver, list[str | None]]]:
    """An https receiver on 127.0.0.1 whose certificate names hooks.example.com (trusted by this test only);
    the list holds the server name (SNI) each handshake asked for."""
    cert, key = _certificate(tmp_path, "hooks.example.com")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _socket, name, _context: server_names.append(name)
    receiver = Receiver([], tls=context)
    yield receiver, server_names
    receiver.server.shutdown()


def test_tls_is_verified_against_the_host_name_while_the_socket_goes_to_the_checked_address(
    settings, dns, connections, tls_receiver
):
    settings.TOLLGATE_WEBHOOK_ALLOW_LOOPBACK = True
    receiver, server_names = tls_receiver
    dns.answers = {"hooks.example.com": ["127.0.0.1"], "other.example.com": ["127.0.0.1"]}

    status = egress_post(f"https://hooks.example.com:{receiver.port}/hook", body=b"{}", headers={})
    with pytest.raises(ssl.SSLCertVerificationError):
        egress_post(f"https://other.example.com:{receiver.port}/hook", body=b"{}", headers={})

    assert status == 200
    assert server_names == ["hooks.example.com", "other.example.com"]
    assert connections == ["127.0.0.1", "127.0.0.1"]
    assert [headers["Host"] for headers, _ in receiver.received] == [f"hooks.example.com:{receiver.port}"]


# --- the allow-list ----------------------------------------------------------------------------------------


def test_with_an_allow_list_only_its_hosts_are_accepted_and_still_checked(production, dns):
    production.TOLLGATE_WEBHOOK_ALLOWED_HOSTS = ["*.partner.example", "hooks.example.com"]
    dns.answers = {
        name: [PUBLIC]
        for name in ["a.partner.example", "b.a.partner.example", "hooks.example.com", "hooks.example.com."]
    } | {"internal.partner.example": ["10.0.0.1"]}

    for url in [
        "https://a.partner.example/x",
        "https://b.a.partner.example/x",
        "https://hooks.example.com/x",
        "https://HOOKS.EXAMPLE.COM./x",
    ]:
        assert callback_url_validate(url) == url
    for url in [
        "https://partner.example/x",  # the wildcard is for names under it
        "https://evilpartner.example/x",
        "https://a.partner.example.evil.net/x",
        "https://x.hooks.example.com/x",
        "https://93.184.216.34/x",
    ]:
        with pytest.raises(EgressRefused) as refused:
            callback_url_validate(url)
        assert refused.value.extra == {"errors": {"callback_url": "host is not an allowed webhook receiver"}}
    with pytest.raises(EgressRefused, match="public addresses"):
        callback_url_validate("https://internal.partner.example/x")


@pytest.mark.django_db
def test_a_host_taken_off_the_allow_list_after_submission_is_not_delivered_to(world, production, dns, connections):
    production.TOLLGATE_WEBHOOK_ALLOWED_HOSTS = ["hooks.example.com"]
    dns.answers = {"hooks.example.com": [PUBLIC]}
    submit(world, callback_url="https://hooks.example.com/hook")  # accepted, and left queued
    production.TOLLGATE_WEBHOOK_ALLOWED_HOSTS = ["other.example.com"]

    assert webhook_attempt("job", Job.objects.get().pk, 1) is None

    assert WebhookDelivery.objects.get().error == "blocked_host"
    assert connections == []


# --- property: every refused network, in every spelling -------------------------------------------------------

REFUSED_V4 = [network for network, _ in egress.BLOCKED_NETWORKS if network.version == 4]
REFUSED_V6 = [network for network, _ in egress.BLOCKED_NETWORKS if network.version == 6]


def _inside(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[int]:
    return st.integers(int(network.network_address), int(network.broadcast_address))


refused_v4 = st.sampled_from(REFUSED_V4).flatmap(_inside).map(ipaddress.IPv4Address)
refused_v6 = st.sampled_from(REFUSED_V6).flatmap(_inside).map(ipaddress.IPv6Address)


@st.composite
def spelled(draw: st.DrawFn) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """A refused address and one way to write it as a URL host (each form getaddrinfo parses)."""
    kind = draw(st.sampled_from(["v4", "v6", "mapped", "nat64", "6to4", "teredo"]))
    if kind == "v6":
        address = draw(refused_v6)
        form = draw(st.sampled_from([address.compressed, address.exploded, address.exploded.upper()]))
        return f"[{form}]", address
    v4 = draw(refused_v4)
    number, octets = int(v4), v4.packed
    if kind == "v4":
        form = draw(
            st.sampled_from(
                [
                    str(v4),
                    str(number),
                    hex(number),
                    ".".join(f"0{octet:o}" for octet in octets),
                    ".".join(hex(octet) for octet in octets),
                    f"{octets[0]}.{int.from_bytes(octets[1:])}",
                ]
            )
        )
        return form, v4
    high, low = number >> 16, number & 0xFFFF
    suffix = draw(st.integers(0, 2**80 - 1))
    embedded = {
        "mapped": draw(st.sampled_from([f"::ffff:{v4}", f"::ffff:{high:x}:{low:x}", f"0:0:0:0:0:FFFF:{v4}"])),
        "nat64": f"64:ff9b::{v4}",
        "6to4": str(ipaddress.IPv6Address((0x2002 << 112) | (number << 80) | suffix)),
        # Teredo: a public server, and the client's address stored inverted.
        "teredo": str(
            ipaddress.IPv6Address(
                (0x20010000 << 96) | (int(ipaddress.IPv4Address(PUBLIC)) << 64) | (number ^ 0xFFFFFFFF)
            )
        ),
    }[kind]
    return f"[{embedded}]", ipaddress.ip_address(embedded)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spelled())
def test_property_every_refused_network_is_refused_at_submission_in_any_spelling(production, case):
    host, _ = case

    with pytest.raises(EgressRefused) as refused:
        callback_url_validate(f"https://{host}/hook")

    assert refused.value.reason == "blocked_address"


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=spelled(), public_first=st.booleans())
def test_property_a_name_resolving_to_a_refused_address_gets_no_connection(
    production, dns, connections, case, public_first
):
    _, address = case
    answer = [PUBLIC, str(address)] if public_first else [str(address)]
    dns.answers = {"hooks.example.com": answer}

    with pytest.raises(EgressRefused) as refused:
        egress_post("https://hooks.example.com/hook", body=b"{}", headers={})

    assert refused.value.reason == "blocked_address"
    assert connections == []
