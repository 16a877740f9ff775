"""Mutual TLS from PEM files, for a bank's two connections with the gateway.

``client_credentials`` is what a bank (or the platform, or an operator) passes as
``credentials=`` to ``BankClient.connect`` and the other clients: its certificate names it
(``colending://partner/<bank id>``), so no caller metadata is needed. ``receiver_credentials``
serves a bank's ``BankReceiverService`` over TLS and admits only clients whose certificate the
given CA signed; :func:`peer_is_gateway` then checks that the caller is the gateway itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import grpc
from cryptography import x509

GATEWAY_URI = "colending://gateway"


def client_credentials(
    *, ca: str | Path, certificate: str | Path, key: str | Path
) -> grpc.ChannelCredentials:
    """Trust servers ``ca`` signed; present ``certificate`` with its private ``key``."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes(),
        certificate_chain=Path(certificate).read_bytes(),
    )


def receiver_credentials(
    *, ca: str | Path, certificate: str | Path, key: str | Path
) -> grpc.ServerCredentials:
    """Serve with ``certificate``; require a client certificate ``ca`` signed."""
    return grpc.ssl_server_credentials(
        [(Path(key).read_bytes(), Path(certificate).read_bytes())],
        root_certificates=Path(ca).read_bytes(),
        require_client_auth=True,
    )


def peer_is_gateway(context: grpc.ServicerContext) -> bool:
    """Whether the TLS peer's certificate names ``colending://gateway``. Any client of the same
    CA passes the handshake (another bank's certificate too), so a receiver checks this."""
    auth = cast("dict[str, list[bytes]]", context.auth_context())
    certificates = auth.get("x509_pem_cert") or []
    if not certificates:
        return False
    try:
        names = x509.load_pem_x509_certificate(certificates[0]).extensions
        uris = names.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    identities = [
        u
        for u in uris.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith("colending://")
    ]
    # Exactly the gateway: a certificate that also names a bank (its CA's mistake) is neither,
    # as the gateway itself reads such a certificate.
    return identities == [GATEWAY_URI]
