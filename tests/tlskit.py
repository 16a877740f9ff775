"""Real certificates for tests over mutual TLS: a development CA, the gateway's certificate,
one client certificate per caller (made on first use) and server certificates for mock banks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc

from gateway.certs import init_ca, issue_client, issue_server
from gateway.server import TlsFiles
from partners.sdk.tls import client_credentials, receiver_credentials

HOSTS = ["localhost", "127.0.0.1"]


@dataclass
class Pki:
    root: Path
    _credentials: dict[str, grpc.ChannelCredentials] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path) -> Pki:
        init_ca(root / "ca")
        issue_server(root / "ca", hosts=HOSTS, out=root / "gateway")
        return cls(root=root)

    @property
    def ca(self) -> Path:
        return self.root / "ca" / "ca.pem"

    def gateway_files(self) -> TlsFiles:
        return TlsFiles(
            key=self.root / "gateway" / "server.key",
            certificate=self.root / "gateway" / "server.pem",
            client_ca=self.ca,
        )

    def credentials(self, identity: str) -> grpc.ChannelCredentials:
        """``identity`` ("platform", "admin", "partner/<id>") as a client certificate."""
        if identity not in self._credentials:
            files = issue_client(self.root / "ca", identity=identity, out=self.root / "clients")
            self._credentials[identity] = client_credentials(
                ca=self.ca, certificate=files.certificate, key=files.key
            )
        return self._credentials[identity]

    def channel(self, target: str, identity: str) -> grpc.Channel:
        return grpc.secure_channel(target, self.credentials(identity))

    def receiver(self, bank_id: str) -> grpc.ServerCredentials:
        """A mock bank's push receiver: a server certificate for loopback, gateway-only."""
        files = issue_server(
            self.root / "ca",
            hosts=HOSTS,
            out=self.root / "receivers",
            stem=bank_id,
            identity=None,
        )
        return receiver_credentials(ca=self.ca, certificate=files.certificate, key=files.key)
