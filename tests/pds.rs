//! PDS mode's core, in process, against a real PLC directory (`atrelay
//! plc`'s server) on loopback and real RocksDB: account lifecycle, sessions,
//! writes with swaps, and the events it emits — every `#commit` verified as
//! a relay verifies it.

use std::time::Duration;

use atrelay::clock::now_micros;
use atrelay::pds::config::PdsConfig;
use atrelay::pds::password::PasswordCost;
use atrelay::pds::service::{Pds, SwappedWrite};
use atrelay::pds::writes::WriteRequest;
use atrelay::repo::verify::{verify_commit, VerifyOptions};
use atrelay::wire::frame::{AccountStatus, Event};
use serde_json::json;

struct Net {
    _plc: atrelay::node::PlcServer,
    pds: Pds,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn start() -> Net {
    let plc_dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plc = atrelay::node::PlcServer::start(listener, plc_dir.path())
        .await
        .unwrap();
    let pds_dir = tempfile::tempdir().unwrap();
    let mut cfg = PdsConfig::default();
    cfg.server.data_dir = pds_dir.path().to_owned();
    cfg.identity.plc_url = plc.url();
    let pds = Pds::open(&cfg, PasswordCost::FAST_INSECURE).unwrap();
    Net {
        _plc: plc,
        pds,
        _dirs: (plc_dir, pds_dir),
    }
}

fn post(text: &str) -> SwappedWrite {
    WriteRequest::Create {
        collection: "app.bsky.feed.post".into(),
        rkey: None,
        record: json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-25T00:00:00Z"}),
    }
    .into()
}

/// Every event in the PDS's log, decoded, with commits verified against the
/// account's current key.
fn events(pds: &Pds) -> Vec<(String, Option<String>)> {
    let frames = pds.log().read_from(1, 10_000, 64 << 20).unwrap();
    frames
        .iter()
        .enumerate()
        .map(|(i, (seq, frame))| {
            assert_eq!(*seq, i as u64 + 1, "gap-free seqs");
            let ev = Event::decode(frame).unwrap();
            let did = ev.did().unwrap().to_owned();
            let kind = match &ev {
                Event::Commit(c) => {
                    if let Ok(a) = pds.account(&did) {
                        let key = a.signing_key().unwrap().public_key();
                        let opts = VerifyOptions {
                            lenient: false,
                            now_micros: now_micros(),
                        };
                        verify_commit(c, &key, &opts)
                            .expect("each #commit verifies with inversion");
                    }
                    format!("commit:{}", c.ops.len())
                }
                Event::Identity(i) => format!("identity:{}", i.handle.unwrap_or("")),
                Event::Account(a) => format!("account:{}", a.status.unwrap_or("active")),
                other => panic!("{other:?}"),
            };
            (kind, Some(did))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_lifecycle_writes_and_events() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = start().await;
        let pds = &net.pds;
        let alice = pds
            .create_account("Alice.test", None, "hunter22")
            .await
            .unwrap();
        assert_eq!(alice.handle, "alice.test");
        assert!(alice.did.starts_with("did:plc:"));
        assert_eq!(pds.authenticate(&alice.access_jwt).unwrap(), alice.did);
        assert!(
            pds.authenticate(&alice.refresh_jwt).is_err(),
            "refresh is not access"
        );

        // Bad handles and taken ones.
        for (handle, name) in [
            ("alice.test", "HandleNotAvailable"),
            ("bob.example.com", "UnsupportedDomain"),
            ("a.b.test", "UnsupportedDomain"),
            ("-bad.test", "InvalidHandle"),
        ] {
            let e = pds.create_account(handle, None, "pw").await.unwrap_err();
            assert_eq!(e.name(), name, "{handle}: {e}");
        }
        assert_eq!(
            pds.create_account("bob.test", None, "")
                .await
                .unwrap_err()
                .name(),
            "InvalidPassword"
        );

        // Sessions.
        let (s, _) = pds.create_session("alice.test", "hunter22").await.unwrap();
        assert!(pds.create_session("alice.test", "wrong").await.is_err());
        assert!(pds.create_session("nobody.test", "hunter22").await.is_err());
        let (s2, _) = pds.refresh_session(&s.refresh_jwt).unwrap();
        assert_eq!(
            pds.refresh_session(&s.refresh_jwt).unwrap_err().name(),
            "InvalidToken",
            "a refresh token is used once"
        );
        pds.delete_session(&s2.refresh_jwt).unwrap();
        assert!(pds.refresh_session(&s2.refresh_jwt).is_err());

        // Writes: create, put (update), delete; swaps.
        let did = alice.did.clone();
        let out = pds
            .write(&did, vec![post("one"), post("two")], None)
            .await
            .unwrap();
        let (uri, cid) = out.results[0].clone().unwrap();
        let rkey = uri.rsplit('/').next().unwrap().to_owned();
        let profile = |name: &str| -> SwappedWrite {
            WriteRequest::Put {
                collection: "app.bsky.actor.profile".into(),
                rkey: "self".into(),
                record: json!({"$type": "app.bsky.actor.profile", "displayName": name}),
            }
            .into()
        };
        pds.write(&did, vec![profile("A")], Some(out.commit))
            .await
            .unwrap();
        let stale = pds.write(&did, vec![profile("B")], Some(out.commit)).await;
        assert_eq!(stale.unwrap_err().name(), "InvalidSwap");
        let mut swapped = profile("C");
        swapped.swap_record = Some(None);
        assert_eq!(
            pds.write(&did, vec![swapped], None)
                .await
                .unwrap_err()
                .name(),
            "InvalidSwap",
            "the profile exists"
        );
        let mut del: SwappedWrite = WriteRequest::Delete {
            collection: "app.bsky.feed.post".into(),
            rkey: rkey.clone(),
        }
        .into();
        del.swap_record = Some(Some(cid));
        pds.write(&did, vec![del.clone()], None).await.unwrap();
        assert_eq!(
            pds.write(&did, vec![del.clone()], None)
                .await
                .unwrap_err()
                .name(),
            "InvalidSwap",
            "the swap names a record that is gone"
        );
        del.swap_record = None;
        assert_eq!(
            pds.write(&did, vec![del], None).await.unwrap_err().name(),
            "RecordNotFound"
        );
        assert_eq!(pds.store().record_count(&did).unwrap(), 2);

        // Handle change (a PLC update), deactivate / activate, delete.
        pds.update_handle(&did, "alice2.test").await.unwrap();
        pds.set_status(&did, Some(AccountStatus::Deactivated))
            .await
            .unwrap();
        assert_eq!(
            pds.write(&did, vec![post("x")], None)
                .await
                .unwrap_err()
                .name(),
            "RepoDeactivated"
        );
        pds.set_status(&did, None).await.unwrap();
        let kinds: Vec<String> = events(pds).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                "identity:alice.test",
                "account:active",
                "commit:0",
                "commit:2",
                "commit:1",
                "commit:1",
                "identity:alice2.test",
                "account:deactivated",
                "account:active",
                "commit:0",
            ]
        );
        pds.delete_account(&did).unwrap();
        let last = events(pds).pop().unwrap();
        assert_eq!(last.0, "account:deleted");
        assert!(pds.create_session("alice2.test", "hunter22").await.is_err());
    })
    .await
    .unwrap();
}
