//! MST key layers and prefix lengths.

use sha2::{Digest, Sha256};

/// Longest MST key we accept (the reference MST's limit), in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The layer ("depth") of a key: leading zero bits of SHA-256(key), halved,
/// which gives the tree a fanout of about 4.
pub fn key_layer(key: &[u8]) -> u8 {
    let hash = Sha256::digest(key);
    let mut zeros = 0u32;
    for &b in hash.iter() {
        if b == 0 {
            zeros += 8;
            continue;
        }
        zeros += b.leading_zeros();
        break;
    }
    (zeros / 2) as u8
}

/// Length of the longest common prefix of two keys, in bytes.
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_examples() {
        for (key, layer) in [
            ("", 0),
            ("asdf", 0),
            ("blue", 1),
            ("2653ae71", 0),
            ("88bfafc7", 2),
            ("2a92d355", 4),
            ("884976f5", 6),
            ("app.bsky.feed.post/454397e440ec", 4),
            ("app.bsky.feed.post/9adeb165882c", 8),
        ] {
            assert_eq!(key_layer(key.as_bytes()), layer, "{key}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(common_prefix_len(b"abc", b"abd"), 2);
        assert_eq!(common_prefix_len(b"", b"abc"), 0);
        assert_eq!(common_prefix_len(b"abc", b"abc"), 3);
        assert_eq!(common_prefix_len(b"ab", b"abc"), 2);
    }
}
