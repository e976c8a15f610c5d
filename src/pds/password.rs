//! Account passwords: scrypt hashes in PHC string form
//! (`$scrypt$ln=17,r=8,p=1$<salt>$<hash>`), which carry their own parameters
//! and salt, so the cost can be raised later without invalidating stored
//! hashes.
//!
//! ```
//! use atrelay::pds::password::{hash_password_with, verify_password, PasswordCost};
//! let phc = hash_password_with("correct horse", PasswordCost::FAST_INSECURE).unwrap();
//! assert!(verify_password("correct horse", &phc));
//! assert!(!verify_password("wrong horse", &phc));
//! ```

use rand::RngCore;
use scrypt::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use scrypt::{Params, Scrypt};

/// Shortest password a new account (or any password change) may set, in
/// characters. Logins are not held to it, so an account made before the rule
/// still logs in.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest password accepted, in bytes. Bounds the work an attacker can ask
/// for per login attempt (scrypt's cost does not grow much with length, but
/// there is no reason to hash megabytes) and matches common PDS limits.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Salt length in bytes (128 bits, the PHC recommendation).
const SALT_LEN: usize = 16;

/// Most memory a stored hash's parameters may make [`verify_password`] use
/// (256 MiB, twice the standard cost): a corrupted or planted hash with
/// `ln=30` must not be able to exhaust memory on a login attempt.
const MAX_VERIFY_MEMORY: u64 = 256 << 20;

/// scrypt cost parameters: `N = 2^log_n`, block size `r`, parallelism `p`.
/// Memory is `128 · r · N` bytes per hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordCost {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl PasswordCost {
    /// OWASP's recommended minimum for scrypt: `N = 2^17, r = 8, p = 1`.
    /// Each hash or verification takes 128 MiB of memory and about 0.45 s
    /// of one core (measured on this project's 2-core machine). Callers run
    /// it in `spawn_blocking` behind a small semaphore (a burst of 20 logins
    /// would otherwise claim 2.5 GiB), which also rate-limits guessing.
    pub const STANDARD: PasswordCost = PasswordCost {
        log_n: 17,
        r: 8,
        p: 1,
    };

    /// `N = 2^10`: 1 MiB, about a millisecond. For tests and throwaway
    /// devnets only; never for real accounts.
    pub const FAST_INSECURE: PasswordCost = PasswordCost {
        log_n: 10,
        r: 8,
        p: 1,
    };

    fn memory_bytes(self) -> u64 {
        128u64
            .saturating_mul(u64::from(self.r))
            .saturating_mul(1u64.checked_shl(u32::from(self.log_n)).unwrap_or(u64::MAX))
    }
}

/// Why a password cannot be hashed, or cannot be set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password is empty")]
    Empty,
    #[error("password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    #[error("password must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("password must not be only spaces")]
    Blank,
    #[error("password must not contain control characters (NUL, tab, newline, ...)")]
    ControlCharacter,
    /// The cost parameters are out of scrypt's range (a programming error).
    #[error("cannot hash password: {0}")]
    Hash(String),
}

fn check_len(password: &str) -> Result<(), PasswordError> {
    match password.len() {
        0 => Err(PasswordError::Empty),
        n if n > MAX_PASSWORD_LEN => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

/// Checks a password someone wants to *set* (a new account, a password
/// change): [`MIN_PASSWORD_CHARS`] characters or more, at most
/// [`MAX_PASSWORD_LEN`] bytes, not only white space, and no control
/// characters (NUL, tab, newline, DEL, the C1 range), which no one types and
/// which break the forms and terminals a password passes through.
///
/// ```
/// use atrelay::pds::password::{check_new_password, PasswordError};
/// assert_eq!(check_new_password("a"), Err(PasswordError::TooShort));
/// assert_eq!(check_new_password(&"\0".repeat(10)), Err(PasswordError::ControlCharacter));
/// assert!(check_new_password("correct horse").is_ok());
/// ```
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    check_len(password)?;
    if password.chars().any(char::is_control) {
        return Err(PasswordError::ControlCharacter);
    }
    if password.chars().all(char::is_whitespace) {
        return Err(PasswordError::Blank);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// Hashes `password` at [`PasswordCost::STANDARD`] with a fresh random salt.
/// Slow on purpose (see the cost's docs): call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    hash_password_with(password, PasswordCost::STANDARD)
}

/// Hashes `password` at `cost` with a fresh random salt, as a PHC string.
pub fn hash_password_with(password: &str, cost: PasswordCost) -> Result<String, PasswordError> {
    check_len(password)?;
    let params = Params::new(cost.log_n, cost.r, cost.p, Params::RECOMMENDED_LEN)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Scrypt
        .hash_password_customized(password.as_bytes(), None, None, params, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Bytes of every hash this module writes (scrypt's default output).
const OUTPUT_LEN: usize = 32;

/// Whether `password` matches the PHC string `phc`. The final comparison is
/// constant-time (the `password-hash` crate compares outputs with `subtle`).
/// `false` for anything malformed: not scrypt, unparsable, or parameters
/// that would need more than 256 MiB, and for passwords the hasher refuses.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if check_len(password).is_err() {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != scrypt::ALG_ID {
        return false;
    }
    // Only full-length outputs, as this module writes them: scrypt's output
    // for a shorter length is a prefix of the longer one, so a truncated
    // hash would otherwise still verify.
    if hash.hash.map_or(true, |h| h.len() != OUTPUT_LEN) {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let cost = PasswordCost {
        log_n: params.log_n(),
        r: params.r(),
        p: params.p(),
    };
    if cost.memory_bytes() > MAX_VERIFY_MEMORY || cost.p > 4 {
        return false;
    }
    Scrypt.verify_password(password.as_bytes(), &hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: PasswordCost = PasswordCost::FAST_INSECURE;

    #[test]
    fn right_and_wrong_passwords() {
        let phc = hash_password_with("hunter2", FAST).unwrap();
        assert!(phc.starts_with("$scrypt$ln=10,r=8,p=1$"), "{phc}");
        assert!(verify_password("hunter2", &phc));
        assert!(!verify_password("hunter3", &phc));
        assert!(!verify_password("Hunter2", &phc));
        assert!(!verify_password("", &phc));
        // Salted: the same password hashes differently each time.
        let again = hash_password_with("hunter2", FAST).unwrap();
        assert_ne!(phc, again);
        assert!(verify_password("hunter2", &again));
    }

    #[test]
    fn refuses_empty_and_overlong() {
        assert_eq!(hash_password_with("", FAST), Err(PasswordError::Empty));
        let long = "x".repeat(MAX_PASSWORD_LEN + 1);
        assert_eq!(hash_password_with(&long, FAST), Err(PasswordError::TooLong));
        let max = "x".repeat(MAX_PASSWORD_LEN);
        let phc = hash_password_with(&max, FAST).unwrap();
        assert!(verify_password(&max, &phc));
        assert!(!verify_password(&long, &phc));
        assert_eq!(hash_password(""), Err(PasswordError::Empty));
    }

    #[test]
    fn rules_for_new_passwords() {
        use PasswordError as E;
        for (pw, want) in [
            ("", Err(E::Empty)),
            ("a", Err(E::TooShort)),
            ("1234567", Err(E::TooShort)),
            ("12345678", Ok(())),
            ("interop password 1", Ok(())),
            ("pässwörd", Ok(())),
            ("\0\0\0\0\0\0\0\0\0\0", Err(E::ControlCharacter)),
            ("password\0", Err(E::ControlCharacter)),
            ("pass\tword", Err(E::ControlCharacter)),
            ("password\n", Err(E::ControlCharacter)),
            ("password\u{7f}", Err(E::ControlCharacter)),
            ("password\u{85}", Err(E::ControlCharacter)),
            ("          ", Err(E::Blank)),
            (
                "\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}",
                Err(E::Blank),
            ),
        ] {
            assert_eq!(check_new_password(pw), want, "{pw:?}");
        }
        assert_eq!(
            check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)),
            Err(E::TooLong)
        );
        // Eight characters, not eight bytes.
        assert_eq!(check_new_password("ääää"), Err(E::TooShort));
    }

    #[test]
    fn malformed_or_hostile_hashes_do_not_verify() {
        let phc = hash_password_with("pw", FAST).unwrap();
        for bad in [
            "",
            "not a phc string",
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &phc[..phc.len() - 4],
            // Valid shape, absurd cost: refused before any work is done.
            &phc.replace("ln=10", "ln=30"),
            &phc.replace("p=1", "p=64"),
        ] {
            assert!(!verify_password("pw", bad), "{bad}");
        }
    }

    #[test]
    fn standard_cost_is_what_the_docs_say() {
        assert_eq!(PasswordCost::STANDARD.memory_bytes(), 128 << 20);
        let started = std::time::Instant::now();
        let phc = hash_password("a real password").unwrap();
        let elapsed = started.elapsed();
        assert!(phc.starts_with("$scrypt$ln=17,r=8,p=1$"), "{phc}");
        assert!(verify_password("a real password", &phc));
        eprintln!("scrypt STANDARD hash took {elapsed:?}");
    }
}
