"""Signing side of DSSE; the encoding, signing and verification live in the SDK so the gateway
and the banks share one implementation."""

from partners.sdk._dsse import Envelope, Signature, sign_envelope

__all__ = ["Envelope", "Signature", "sign_envelope"]
