"""Is a raw Ed25519 public key one a signature can be held to?

A key of small order (the identity point, say) verifies forged signatures that need no private
key, so a bank registering one could later disown anything "it signed". Checked once, at
registration, by decoding the point (RFC 8032, section 5.1.3) and multiplying it by the
cofactor 8: the result is the neutral element exactly when the point's order divides 8. Plain
integer arithmetic; speed does not matter here.
"""

from __future__ import annotations

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
SQRT_MINUS_ONE = pow(2, (P - 1) // 4, P)


def key_problem(raw: bytes) -> str | None:
    """Why ``raw`` cannot be a bank's decision key, or None if it can."""
    if len(raw) != 32:
        return "must be a raw 32-byte Ed25519 public key"
    point = _decode(raw)
    if point is None:
        return "is not a canonical encoding of a point on Ed25519"
    for _ in range(3):
        point = _double(point)
    if point == (0, 1):
        return "is a point of small order, which verifies forged signatures; generate a real key"
    return None


def _decode(raw: bytes) -> tuple[int, int] | None:
    encoded = int.from_bytes(raw, "little")
    y, sign = encoded & ((1 << 255) - 1), encoded >> 255
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P != u:
        x = x * SQRT_MINUS_ONE % P
        if v * x * x % P != u:
            return None  # not on the curve
    if x == 0 and sign:
        return None  # -0 is not canonical
    if x & 1 != sign:
        x = P - x
    return x, y


def _double(point: tuple[int, int]) -> tuple[int, int]:
    # Affine doubling on -x^2 + y^2 = 1 + d x^2 y^2; complete, as d is not a square.
    x, y = point
    dxxyy = D * x * x * y * y % P
    return (
        2 * x * y * pow(1 + dxxyy, -1, P) % P,
        (y * y + x * x) * pow(1 - dxxyy, -1, P) % P,
    )
