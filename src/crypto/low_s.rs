//! Low-S: of the two valid signatures `(r, s)` and `(r, n − s)` for the same key and
//! message, atproto accepts only the one with `s ≤ n/2`, on both curves, so that a
//! signature cannot be altered into another valid one.
//!
//! libsecp256k1 and RustCrypto k256 reject high-S themselves; ring and RustCrypto
//! p256 do not. The check here is a 32-byte big-endian comparison, so every verify
//! path in this module runs it first, whatever its backend does.

use super::curve::Curve;

/// Whether the compact signature's `s` (bytes 32..64, big-endian) is at most n/2.
///
/// Says nothing about whether `r` and `s` are in range or the signature verifies;
/// `s = 0` counts as low here and is rejected by verification.
pub fn is_low_s(curve: Curve, sig: &[u8; 64]) -> bool {
    // Equal-length big-endian byte strings compare like the numbers they encode.
    sig[32..] <= curve.half_order()[..]
}

/// The same signature with `s` replaced by `n − s` (r unchanged), computed modulo
/// nothing: `s` must be in `[1, n)` for the result to be meaningful.
///
/// This is the "other" valid signature for the same key and message. Signing uses
/// it to normalise to low-S; tests use it to build the high-S twin that atproto
/// must reject.
pub fn negate_s(curve: Curve, sig: &[u8; 64]) -> [u8; 64] {
    let n = curve.order();
    let mut out = *sig;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(n[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        // d is in [0, 255] here.
        out[32 + i] = d as u8;
    }
    out
}

/// `sig` with `s` normalised to low-S (returned unchanged if already low).
pub(crate) fn normalize(curve: Curve, sig: [u8; 64]) -> [u8; 64] {
    if is_low_s(curve, &sig) {
        sig
    } else {
        negate_s(curve, &sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_s(s: &[u8; 32]) -> [u8; 64] {
        let mut sig = [0x11u8; 64];
        sig[32..].copy_from_slice(s);
        sig
    }

    #[test]
    fn boundary_is_half_order() {
        for c in [Curve::K256, Curve::P256] {
            let half = *c.half_order();
            assert!(is_low_s(c, &with_s(&half)));
            let mut above = half;
            above[31] += 1; // half orders end in 0xA0 / 0xA8: no carry
            assert!(!is_low_s(c, &with_s(&above)));
            let mut below = half;
            below[31] -= 1;
            assert!(is_low_s(c, &with_s(&below)));
            assert!(!is_low_s(c, &with_s(c.order())));
            assert!(!is_low_s(c, &with_s(&[0xff; 32])));
            assert!(is_low_s(c, &with_s(&[0; 32])));
        }
    }

    #[test]
    fn negate_is_an_involution_and_flips_lowness() {
        for c in [Curve::K256, Curve::P256] {
            let mut s = [0u8; 32];
            s[31] = 1;
            let sig = with_s(&s);
            let neg = negate_s(c, &sig);
            assert_eq!(&sig[..32], &neg[..32], "r untouched");
            // n − 1
            let mut n_minus_1 = *c.order();
            n_minus_1[31] -= 1;
            assert_eq!(&neg[32..], &n_minus_1[..]);
            assert!(!is_low_s(c, &neg));
            assert_eq!(negate_s(c, &neg), sig);
            assert_eq!(normalize(c, neg), sig);
            assert_eq!(normalize(c, sig), sig);
            // n − half = half + 1 (n is odd)
            let h = with_s(c.half_order());
            let mut h1 = *c.half_order();
            h1[31] += 1;
            assert_eq!(&negate_s(c, &h)[32..], &h1[..]);
        }
    }
}
