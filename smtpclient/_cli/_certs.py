"""TLS details for the ``smtpclient`` command: version, cipher and the server's certificate.

With verification on, ``getpeercert()`` gives the certificate's fields; with
``--no-tls-verify`` it gives only the DER bytes, which a small DER reader here
decodes (subject, issuer, validity, subjectAltName) for display only.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Any, cast

from ._args import _Options

__all__ = ["_tls_report"]


# -- TLS details -----------------------------------------------------------------------------


_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "domainComponent": "DC",
    "emailAddress": "emailAddress",
    "serialNumber": "serialNumber",
}
_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_SAN_OID = "2.5.29.17"


@dataclass
class _CertInfo:
    subject: list[tuple[str, str]] = field(default_factory=list)
    issuer: list[tuple[str, str]] = field(default_factory=list)
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    sans: list[tuple[str, str]] = field(default_factory=list)


def _cert_from_dict(cert: dict[str, Any]) -> _CertInfo:
    """What ``getpeercert()`` says about a verified certificate."""

    def names(rdns: Any) -> list[tuple[str, str]]:
        return [(_SHORT_NAMES.get(k, k), str(v)) for rdn in rdns for k, v in rdn]

    def when(text: Any) -> datetime.datetime | None:
        if not isinstance(text, str):
            return None
        seconds = ssl.cert_time_to_seconds(text)
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)

    return _CertInfo(
        subject=names(cert.get("subject", ())),
        issuer=names(cert.get("issuer", ())),
        not_before=when(cert.get("notBefore")),
        not_after=when(cert.get("notAfter")),
        sans=[
            ("IP" if kind == "IP Address" else kind, str(value))
            for kind, value in cert.get("subjectAltName", ())
        ],
    )


def _der_item(data: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """The DER element at ``pos``: (tag, start of its content, end of its content)."""
    if pos + 2 > limit:
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        octets = length & 0x7F
        if not 0 < octets <= 4 or pos + octets > limit:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + octets], "big")
        pos += octets
    if pos + length > limit:
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _der_item(data, start, end)
        items.append(item)
        start = item[2]
    return items


def _der_oid(raw: bytes) -> str:
    first = raw[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for octet in raw[1:]:
        value = value << 7 | octet & 0x7F
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _der_text(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    return raw.decode("utf-8", "replace")


def _der_name(data: bytes, start: int, end: int) -> list[tuple[str, str]]:
    out = []
    for _, set_start, set_end in _der_children(data, start, end):
        for _, atv_start, atv_end in _der_children(data, set_start, set_end):
            (_, oid_start, oid_end), (tag, value_start, value_end) = _der_children(
                data, atv_start, atv_end
            )[:2]
            oid = _der_oid(data[oid_start:oid_end])
            out.append((_OID_NAMES.get(oid, oid), _der_text(tag, data[value_start:value_end])))
    return out


def _der_time(tag: int, raw: bytes) -> datetime.datetime:
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime: RFC 5280 §4.1.2.5.1, 50-99 are 19xx
        year = int(text[:2])
        text = str(1900 + year if year >= 50 else 2000 + year) + text[2:]
    parsed = datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    return parsed.replace(tzinfo=datetime.timezone.utc)


def _cert_from_der(der: bytes) -> _CertInfo | None:
    """Subject, issuer, validity and SANs read from a DER certificate; None if unreadable.

    Used when verification is off: ``getpeercert()`` then returns nothing but
    the binary form.
    """
    try:
        _, start, end = _der_item(der, 0, len(der))
        _, tbs_start, tbs_end = _der_children(der, start, end)[0]
        fields = _der_children(der, tbs_start, tbs_end)
        if fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        issuer, validity, subject = fields[2], fields[3], fields[4]
        info = _CertInfo(
            subject=_der_name(der, subject[1], subject[2]),
            issuer=_der_name(der, issuer[1], issuer[2]),
        )
        times = _der_children(der, validity[1], validity[2])
        info.not_before = _der_time(times[0][0], der[times[0][1] : times[0][2]])
        info.not_after = _der_time(times[1][0], der[times[1][1] : times[1][2]])
        for tag, ext_start, ext_end in fields[6:]:
            if tag != 0xA3:  # [3] extensions
                continue
            _, list_start, list_end = _der_item(der, ext_start, ext_end)
            for _, x_start, x_end in _der_children(der, list_start, list_end):
                parts = _der_children(der, x_start, x_end)
                if _der_oid(der[parts[0][1] : parts[0][2]]) != _SAN_OID:
                    continue
                _, octets_start, octets_end = parts[-1]
                _, names_start, names_end = _der_item(der, octets_start, octets_end)
                for name_tag, n_start, n_end in _der_children(der, names_start, names_end):
                    raw = der[n_start:n_end]
                    if name_tag == 0x82:
                        info.sans.append(("DNS", raw.decode("ascii", "replace")))
                    elif name_tag == 0x87 and len(raw) in (4, 16):
                        info.sans.append(("IP", str(ipaddress.ip_address(raw))))
                    elif name_tag == 0x81:
                        info.sans.append(("email", raw.decode("ascii", "replace")))
                    elif name_tag == 0x86:
                        info.sans.append(("URI", raw.decode("ascii", "replace")))
    except (IndexError, ValueError, UnicodeError):
        return None
    return info


def _tls_report(sock: ssl.SSLSocket, opts: _Options, server_name: str) -> list[tuple[str, str]]:
    """(label, text) lines on the TLS session of ``sock``."""
    lines = []
    cipher = sock.cipher()
    what = sock.version() or "TLS"
    if cipher is not None:
        what += f", {cipher[0]} ({cipher[2]} bits)"
    lines.append(("TLS", what))
    der = sock.getpeercert(binary_form=True)
    info: _CertInfo | None = None
    if opts.tls_verify:
        lines.append(("certificate", f"verified for {server_name}"))
        info = _cert_from_dict(cast("dict[str, Any]", sock.getpeercert() or {}))
    else:
        lines.append(("certificate", "NOT verified (--no-tls-verify)"))
        info = None if der is None else _cert_from_der(der)
        if info is None and der is not None:
            lines.append(("", "the certificate could not be decoded"))
    if info is not None:
        lines.append(("  subject", ", ".join(f"{k}={v}" for k, v in info.subject) or "(empty)"))
        lines.append(("  issuer", ", ".join(f"{k}={v}" for k, v in info.issuer) or "(empty)"))
        if info.not_after is not None:
            days = (info.not_after - datetime.datetime.now(datetime.timezone.utc)).days
            state = f"expires in {days} days" if days >= 0 else f"EXPIRED {-days} days ago"
            start = "" if info.not_before is None else f"{info.not_before:%Y-%m-%d %H:%M:%S} to "
            lines.append(("  valid", f"{start}{info.not_after:%Y-%m-%d %H:%M:%S} UTC ({state})"))
        lines.append(("  SANs", ", ".join(f"{k}:{v}" for k, v in info.sans) or "(none)"))
    if der is not None:
        digest = hashlib.sha256(der).hexdigest().upper()
        lines.append(("  SHA-256", ":".join(digest[i : i + 2] for i in range(0, 64, 2))))
    return lines
