//! Repo path syntax: the key of a record in a repository's MST,
//! `<collection NSID>/<record key>`.

use super::error::{SyntaxError, SyntaxKind};
use super::nsid::validate_nsid;
use super::record_key::validate_record_key;

/// Longest repo path accepted, in bytes (the limit the TypeScript MST enforces on
/// keys; the spec only advises keeping paths short).
pub const MAX_REPO_PATH_LEN: usize = 1024;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::RepoPath, reason)
}

/// Checks an MST key: exactly two `/`-separated segments, a valid NSID then a valid
/// record key (so `.` and `..` are refused and there is no leading `/`), at most
/// [`MAX_REPO_PATH_LEN`] bytes. Record keys allow `:`, so paths may contain it.
pub fn validate_repo_path(s: &str) -> Result<(), SyntaxError> {
    if s.len() > MAX_REPO_PATH_LEN {
        return Err(err("longer than 1024 bytes"));
    }
    let Some((collection, rkey)) = s.split_once('/') else {
        return Err(err("must be <collection>/<record key>"));
    };
    if rkey.contains('/') {
        return Err(err("more than two segments"));
    }
    validate_nsid(collection).map_err(|e| e.inside(SyntaxKind::RepoPath))?;
    validate_record_key(rkey).map_err(|e| e.inside(SyntaxKind::RepoPath))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            validate_repo_path("app.bsky.feed.post/3jzfcijpj2z2a"),
            Ok(())
        );
        assert_eq!(validate_repo_path("app.bsky.actor.profile/self"), Ok(()));
        assert_eq!(validate_repo_path("com.example.record/lang:en"), Ok(()));
        let cases = [
            ("app.bsky.feed.post", "must be <collection>/<record key>"),
            ("app.bsky.feed.post/a/b", "more than two segments"),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_repo_path(input).map_err(|e| e.reason()),
                Err(reason)
            );
        }
        for bad in [
            "/app.bsky.feed.post/a",
            "app.bsky.feed.post/",
            "app.bsky.feed.post/.",
            "app.bsky.feed.post/..",
            "notansid/abc",
            "app.bsky.feed.post/a b",
        ] {
            assert!(validate_repo_path(bad).is_err(), "{bad}");
        }
        let e = validate_repo_path("app.bsky.feed.post/..").unwrap_err();
        assert_eq!(e.within(), Some(SyntaxKind::RecordKey));
        // NSID (<= 317) + '/' + record key (<= 512) can never reach 1024 bytes, so the
        // cap only serves to refuse huge inputs before scanning them.
        let long = format!("com.{}.x/{}", "a".repeat(60), "k".repeat(512));
        assert_eq!(validate_repo_path(&long), Ok(()));
        let huge = format!("com.example.x/{}", "k".repeat(MAX_REPO_PATH_LEN));
        assert_eq!(
            validate_repo_path(&huge).map_err(|e| e.reason()),
            Err("longer than 1024 bytes")
        );
    }
}
