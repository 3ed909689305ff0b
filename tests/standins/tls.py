"""A local certificate authority (trustme) and the stand-ins' server certificate."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trustme


class LocalCA:
    """`ca_file` is what PUSH_CA_FILE takes; `server_pem` holds the key and chain of a
    certificate for 127.0.0.1 and localhost, signed by the CA."""

    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="pushbox-standins-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name="Pushbox stand-ins")
        self.ca_file = str(self.dir / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        leaf = self._ca.issue_cert("127.0.0.1", "localhost")
        self.server_pem = str(self.dir / "server.pem")
        leaf.private_key_and_cert_chain_pem.write_to_path(self.server_pem)


__all__ = ["LocalCA"]
