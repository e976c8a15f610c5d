//! Shared copies of the PDS endpoints and hosts that identities name.
//!
//! A million cached identities point at a few thousand PDSes, so each one
//! keeping its own `String`s for the endpoint and the host would spend
//! about 100 bytes per account on copies of the same few names. The
//! resolver hands every parsed [`Identity`] through an [`Interner`], which
//! swaps those names for one shared `Arc<str>` each.
//!
//! The names come from documents anyone can publish, so the set is bounded:
//! when it is full, names no identity holds any more are forgotten, and if
//! every one is still held, new names are simply not shared (correct, only
//! larger).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::document::Identity;

/// Default bound on the names kept: several times the PDSes a whole
/// network has.
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// A bounded set of shared names. A std `Mutex`: it is taken once per
/// resolution (network speed, not event speed) and never across an await.
pub(crate) struct Interner {
    names: Mutex<HashSet<Arc<str>>>,
    capacity: usize,
}

impl Interner {
    /// An empty interner keeping at most `capacity` names.
    pub(crate) fn new(capacity: usize) -> Self {
        Interner {
            names: Mutex::new(HashSet::new()),
            capacity: capacity.max(1),
        }
    }

    /// `identity` with its endpoint and host replaced by the shared copies.
    pub(crate) fn identity(&self, mut identity: Identity) -> Identity {
        let Ok(mut names) = self.names.lock() else {
            return identity;
        };
        for name in [&mut identity.pds_endpoint, &mut identity.pds_host]
            .into_iter()
            .flatten()
        {
            *name = share(&mut names, self.capacity, name);
        }
        identity
    }

    /// How many names are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.names.lock().map(|n| n.len()).unwrap_or(0)
    }
}

/// The kept copy of `name`, kept now if there is room.
fn share(names: &mut HashSet<Arc<str>>, capacity: usize, name: &Arc<str>) -> Arc<str> {
    if let Some(kept) = names.get(name) {
        return kept.clone();
    }
    if names.len() >= capacity {
        // Only the set holds these: no identity names them any more.
        names.retain(|n| Arc::strong_count(n) > 1);
    }
    if names.len() < capacity {
        names.insert(name.clone());
    }
    name.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(host: &str) -> Identity {
        Identity {
            did: "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".into(),
            handle: None,
            signing_key: None,
            pds_endpoint: Some(format!("https://{host}").into()),
            pds_host: Some(host.into()),
        }
    }

    #[test]
    fn equal_names_share_one_allocation() {
        let interner = Interner::new(16);
        let a = interner.identity(ident("pds.example.com"));
        let b = interner.identity(ident("pds.example.com"));
        let (ha, hb) = (a.pds_host.unwrap(), b.pds_host.unwrap());
        assert!(Arc::ptr_eq(&ha, &hb));
        assert!(Arc::ptr_eq(
            a.pds_endpoint.as_ref().unwrap(),
            b.pds_endpoint.as_ref().unwrap()
        ));
        assert_eq!(&*ha, "pds.example.com");
        let c = interner.identity(ident("other.example.com"));
        assert!(!Arc::ptr_eq(&ha, c.pds_host.as_ref().unwrap()));
        assert_eq!(interner.len(), 4);
    }

    #[test]
    fn bounded_forgetting_unheld_names_first() {
        let interner = Interner::new(4);
        let held = interner.identity(ident("held.example"));
        for i in 0..100 {
            // Dropped at once: only the interner holds these names.
            interner.identity(ident(&format!("h{i}.example")));
            assert!(interner.len() <= 4);
        }
        // The held names survived every sweep and are still shared.
        let again = interner.identity(ident("held.example"));
        assert!(Arc::ptr_eq(
            held.pds_host.as_ref().unwrap(),
            again.pds_host.as_ref().unwrap()
        ));
        // Full of held names: new ones are returned unshared, not kept.
        let full = Interner::new(2);
        let keep = full.identity(ident("a.example"));
        let x = full.identity(ident("b.example"));
        let y = full.identity(ident("b.example"));
        assert_eq!(x.pds_host, y.pds_host);
        assert!(!Arc::ptr_eq(
            x.pds_host.as_ref().unwrap(),
            y.pds_host.as_ref().unwrap()
        ));
        assert_eq!(full.len(), 2);
        // Once nothing holds the old names, the new ones are kept again.
        drop(keep);
        let z = full.identity(ident("b.example"));
        let w = full.identity(ident("b.example"));
        assert!(Arc::ptr_eq(
            z.pds_host.as_ref().unwrap(),
            w.pds_host.as_ref().unwrap()
        ));
    }
}
