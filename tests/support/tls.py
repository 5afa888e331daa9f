"""A throw-away PKI for the HTTPS tests: a CA, a server certificate for 127.0.0.1 and
localhost signed by it, a client certificate signed by it, and an unrelated second CA.

Made with the `cryptography` package (already pinned: paramiko needs it). EC P-256 keys,
which Go (helm, kubectl) and Python's ssl both take; PEM files, keys 0600.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PKI:
    ca: Path             # the CA the API server's certificate is signed by (and client certs)
    server_cert: Path    # CN kube-emu; SANs IP 127.0.0.1, DNS localhost; serverAuth
    server_key: Path
    client_cert: Path    # CN octopod, O octopod-control; clientAuth; signed by `ca`
    client_key: Path
    other_ca: Path       # an unrelated CA: trusting it must fail verification
    other_client_cert: Path  # a client certificate signed by `other_ca`
    other_client_key: Path


def make_pki(directory: Path) -> PKI:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return cert_path, key_path

    def builder(subject: x509.Name, issuer: x509.Name, key) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2)))

    def ca(cn: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (builder(name(cn), name(cn), key)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cert, key

    def leaf(issuer_cert, issuer_key, subject: x509.Name, usage, sans=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (builder(subject, issuer_cert.subject, key)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                          crl_sign=False, content_commitment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False),
                            critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(issuer_key, hashes.SHA256()), key

    ca_cert, ca_key = ca("octopod test CA")
    ca_path, _ = write("ca", ca_cert, ca_key)
    server = leaf(ca_cert, ca_key, name("kube-emu"), ExtendedKeyUsageOID.SERVER_AUTH,
                  [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    server_cert, server_key = write("server", *server)
    client = leaf(ca_cert, ca_key, name("octopod", "octopod-control"), ExtendedKeyUsageOID.CLIENT_AUTH)
    client_cert, client_key = write("client", *client)
    other_cert, other_key = ca("unrelated test CA")
    other_path, _ = write("other-ca", other_cert, other_key)
    stranger = leaf(other_cert, other_key, name("stranger"), ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger_cert, stranger_key = write("other-client", *stranger)
    return PKI(ca=ca_path, server_cert=server_cert, server_key=server_key, client_cert=client_cert,
               client_key=client_key, other_ca=other_path, other_client_cert=stranger_cert,
               other_client_key=stranger_key)
