//! The two curves atproto uses and their constants.

/// An atproto signing curve. Both are required by the protocol; new keys from the
/// reference PDS default to [`Curve::K256`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// secp256k1 (multicodec `secp256k1-pub`, JWT `ES256K`).
    K256,
    /// NIST P-256 / secp256r1 (multicodec `p256-pub`, JWT `ES256`).
    P256,
}

/// secp256k1 group order n, big-endian.
const K256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
];

/// P-256 group order n, big-endian.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// `floor(n / 2)` of a big-endian 256-bit number, at compile time.
const fn half(n: [u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u8;
    let mut i = 0;
    while i < 32 {
        out[i] = (n[i] >> 1) | carry;
        carry = (n[i] & 1) << 7;
        i += 1;
    }
    out
}

const K256_HALF_ORDER: [u8; 32] = half(K256_ORDER);
const P256_HALF_ORDER: [u8; 32] = half(P256_ORDER);

impl Curve {
    /// The JWT `alg` name for ECDSA-SHA256 on this curve: `ES256K` or `ES256`.
    pub fn jwt_alg(self) -> &'static str {
        match self {
            Curve::K256 => "ES256K",
            Curve::P256 => "ES256",
        }
    }

    /// The curve for a JWT `alg` name (`ES256K` / `ES256`), if it is one of ours.
    pub fn from_jwt_alg(alg: &str) -> Option<Curve> {
        match alg {
            "ES256K" => Some(Curve::K256),
            "ES256" => Some(Curve::P256),
            _ => None,
        }
    }

    /// The unsigned-varint multicodec prefix of a compressed public key in a
    /// Multikey: secp256k1-pub `0xe7` → `e7 01`; p256-pub `0x1200` → `80 24`.
    pub fn multicodec_prefix(self) -> [u8; 2] {
        match self {
            Curve::K256 => [0xe7, 0x01],
            Curve::P256 => [0x80, 0x24],
        }
    }

    /// The group order n, big-endian. Signatures' `r` and `s` lie in `[1, n)`.
    pub fn order(self) -> &'static [u8; 32] {
        match self {
            Curve::K256 => &K256_ORDER,
            Curve::P256 => &P256_ORDER,
        }
    }

    /// `floor(n / 2)`, big-endian: the largest `s` a low-S signature may have.
    pub fn half_order(self) -> &'static [u8; 32] {
        match self {
            Curve::K256 => &K256_HALF_ORDER,
            Curve::P256 => &P256_HALF_ORDER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    #[test]
    fn orders_match_the_spec() {
        assert_eq!(
            Curve::K256.order(),
            &hex32("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141")
        );
        assert_eq!(
            Curve::P256.order(),
            &hex32("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
        );
    }

    #[test]
    fn half_orders() {
        assert_eq!(
            Curve::K256.half_order(),
            &hex32("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0")
        );
        assert_eq!(
            Curve::P256.half_order(),
            &hex32("7FFFFFFF800000007FFFFFFFFFFFFFFFDE737D56D38BCF4279DCE5617E3192A8")
        );
    }

    #[test]
    fn jwt_alg_round_trip() {
        for c in [Curve::K256, Curve::P256] {
            assert_eq!(Curve::from_jwt_alg(c.jwt_alg()), Some(c));
        }
        assert_eq!(Curve::K256.jwt_alg(), "ES256K");
        assert_eq!(Curve::P256.jwt_alg(), "ES256");
        assert_eq!(Curve::from_jwt_alg("RS256"), None);
    }
}
