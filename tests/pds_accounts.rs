//! PDS mode's account, session and identity endpoints from the outside: the
//! real `atrelay plc` and `atrelay pds` binaries on loopback ports with
//! temporary data directories, driven over HTTP as a client would.
//!
//! Every test runs under a deadline, and each child process is killed when
//! its guard drops, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Deadline for a whole test.
const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// The admin password the admin test starts the PDS with.
const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Runs `f` under [`TEST_DEADLINE`].
async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_DEADLINE, f)
        .await
        .expect("test exceeded its deadline");
}

/// A running `atrelay` daemon; SIGKILLed and reaped on drop.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    /// The first line it printed.
    banner: String,
    /// Everything it wrote to stderr, for failure messages.
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `atrelay <args>` and waits (at most 30 s) for a first line
    /// starting with `prefix` followed by the address.
    fn start(args: &[&str], env: &[(&str, &str)], prefix: &str) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atrelay"));
        cmd.args(args)
            .env("ATRELAY_LOG", "warn")
            .env_remove("ATRELAY_PDS_ADMIN_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start atrelay");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        // Drained all along so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let mut rest = String::new();
            while matches!(reader.read_line(&mut rest), Ok(n) if n > 0) {
                rest.clear();
            }
        });
        let mut daemon = Daemon {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            banner: String::new(),
            stderr: log,
        };
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                // Give stderr a moment to arrive for the message.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "atrelay {args:?}: unexpected first line {line:?}; stderr:\n{}",
                    daemon.stderr.lock().unwrap()
                )
            });
        daemon.addr = addr;
        daemon.banner = line.trim().to_owned();
        daemon
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for atrelay") {
                return status;
            }
            assert!(Instant::now() < deadline, "atrelay did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PLC directory and a PDS registering with it, each with its own data
/// directory.
struct Net {
    plc: Daemon,
    pds: Daemon,
    pds_dir: tempfile::TempDir,
    _plc_dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Net {
    /// Starts both; `admin` sets the PDS's admin password.
    fn start(admin: Option<&str>) -> Net {
        Net::start_with(admin, PasswordSpeed::Fast)
    }

    /// Starts both, hashing passwords at `speed`.
    fn start_with(admin: Option<&str>, speed: PasswordSpeed) -> Net {
        let plc_dir = tempfile::tempdir().unwrap();
        let plc = Daemon::start(
            &[
                "plc",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                plc_dir.path().to_str().unwrap(),
            ],
            &[],
            "atrelay plc listening on http://",
        );
        let pds_dir = tempfile::tempdir().unwrap();
        let pds = start_pds_with(pds_dir.path(), &plc.url(), "127.0.0.1:0", admin, speed);
        Net {
            plc,
            pds,
            pds_dir,
            _plc_dir: plc_dir,
            http: client(),
        }
    }

    fn xrpc(&self, nsid: &str) -> String {
        format!("{}/xrpc/{nsid}", self.pds.url())
    }

    /// GET an XRPC query; `(status, JSON body or Null)`.
    async fn get(&self, nsid: &str, query: &[(&str, &str)], bearer: Option<&str>) -> Reply {
        let mut req = self.http.get(self.xrpc(nsid)).query(query);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        Reply::from(req.send().await.expect("GET")).await
    }

    /// POST an XRPC procedure with a JSON body (or none).
    async fn post(&self, nsid: &str, body: Option<Value>, bearer: Option<&str>) -> Reply {
        let mut req = self.http.post(self.xrpc(nsid));
        if let Some(body) = body {
            req = req.json(&body);
        }
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        Reply::from(req.send().await.expect("POST")).await
    }

    async fn create_account(&self, handle: &str, password: &str) -> Value {
        let r = self
            .post(
                "com.atproto.server.createAccount",
                Some(json!({"handle": handle, "email": format!("{handle}@mail.test"), "password": password})),
                None,
            )
            .await;
        r.ok()
    }

    async fn login(&self, identifier: &str, password: &str) -> Reply {
        self.post(
            "com.atproto.server.createSession",
            Some(json!({"identifier": identifier, "password": password})),
            None,
        )
        .await
    }
}

/// An HTTP client whose every request is bounded.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// How the PDS under test hashes passwords.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PasswordSpeed {
    /// `--insecure-fast-passwords`: about 1 ms a check.
    Fast,
    /// The standard scrypt cost: about 0.45 s of one core a check.
    Standard,
}

/// Starts `atrelay pds` over `dir` registering DIDs at `plc`.
fn start_pds(dir: &Path, plc: &str, listen: &str, admin: Option<&str>) -> Daemon {
    start_pds_with(dir, plc, listen, admin, PasswordSpeed::Fast)
}

fn start_pds_with(
    dir: &Path,
    plc: &str,
    listen: &str,
    admin: Option<&str>,
    speed: PasswordSpeed,
) -> Daemon {
    let env: Vec<(&str, &str)> = admin
        .map(|pw| vec![("ATRELAY_PDS_ADMIN_PASSWORD", pw)])
        .unwrap_or_default();
    let mut args = vec![
        "pds",
        "--listen",
        listen,
        "--data-dir",
        dir.to_str().unwrap(),
        "--plc-url",
        plc,
    ];
    if speed == PasswordSpeed::Fast {
        args.push("--insecure-fast-passwords");
    }
    Daemon::start(&args, &env, "atrelay pds listening on http://")
}

/// An HTTP client whose requests come from `source` (any 127.x.y.z: the
/// whole block is loopback), bounded like [`client`].
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// `createSession` from `http` (a client bound to some address).
async fn login_with(net: &Net, http: &reqwest::Client, identifier: &str, password: &str) -> Reply {
    let res = http
        .post(net.xrpc("com.atproto.server.createSession"))
        .json(&json!({"identifier": identifier, "password": password}))
        .send()
        .await
        .expect("POST createSession");
    Reply::from(res).await
}

/// A response: status, `WWW-Authenticate`, and the body as JSON (`Null`
/// when empty or not JSON).
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    body: Value,
}

impl Reply {
    async fn from(res: reqwest::Response) -> Reply {
        let status = res.status();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let text = res.text().await.expect("read body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            challenge,
            retry_after,
            body,
        }
    }

    /// The body of a 200, or a panic naming the error.
    fn ok(self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "expected success: {}",
            self.body
        );
        self.body
    }

    /// Asserts an XRPC error with this status and name.
    fn err(&self, status: StatusCode, name: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(name)),
            "body: {}",
            self.body
        );
        assert!(
            self.body["message"].is_string(),
            "XRPC errors carry a message: {}",
            self.body
        );
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[tokio::test]
async fn describe_server_and_service_did_document() {
    bounded(async {
        let net = Net::start(None);
        let d = net
            .get("com.atproto.server.describeServer", &[], None)
            .await
            .ok();
        // did:web carries the port percent-encoded.
        let service_did = format!("did:web:127.0.0.1%3A{}", net.pds.addr.port());
        assert_eq!(d["did"], service_did.as_str());
        assert_eq!(d["availableUserDomains"], json!([".test"]));
        assert_eq!(d["inviteCodeRequired"], false);
        assert!(
            net.pds.banner.ends_with(&format!("(did: {service_did})")),
            "{}",
            net.pds.banner
        );

        let doc: Value = net
            .http
            .get(format!("{}/.well-known/did.json", net.pds.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["id"], service_did.as_str());
        assert_eq!(doc["service"][0]["id"], "#atproto_pds");
        assert_eq!(doc["service"][0]["type"], "AtprotoPersonalDataServer");
        assert_eq!(doc["service"][0]["serviceEndpoint"], net.pds.url());
    })
    .await;
}

#[tokio::test]
async fn accounts_sessions_and_handles() {
    bounded(async {
        let net = Net::start(None);
        let created = net.create_account("Alice.test", "hunter22").await;
        let did = str_of(&created, "did").to_owned();
        assert!(did.starts_with("did:plc:"), "{did}");
        assert_eq!(created["handle"], "alice.test", "handles are lower-cased");
        let access = str_of(&created, "accessJwt").to_owned();
        assert!(created["refreshJwt"].is_string());

        // The DID is registered with the PLC directory, naming the handle
        // and this PDS.
        let doc: Value = net
            .http
            .get(format!("{}/{did}", net.plc.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["id"], did);
        assert_eq!(doc["alsoKnownAs"], json!(["at://alice.test"]));
        let service = doc["service"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with("#atproto_pds"))
            })
            .expect("an #atproto_pds service");
        assert_eq!(service["serviceEndpoint"], net.pds.url());

        // The same handle twice.
        net.post(
            "com.atproto.server.createAccount",
            Some(json!({"handle": "alice.test", "password": "x"})),
            None,
        )
        .await
        .err(StatusCode::BAD_REQUEST, "HandleNotAvailable");

        // getSession with the access token.
        let s = net
            .get("com.atproto.server.getSession", &[], Some(&access))
            .await
            .ok();
        assert_eq!(
            (
                s["did"].as_str(),
                s["handle"].as_str(),
                s["active"].as_bool()
            ),
            (Some(did.as_str()), Some("alice.test"), Some(true))
        );
        assert_eq!(s["email"], "Alice.test@mail.test");
        assert!(s.get("status").is_none(), "{s}");

        // Logins: by handle (any case), by email, by DID; wrong ones.
        let login = net.login("ALICE.test", "hunter22").await.ok();
        assert_eq!(
            (login["did"].as_str(), login["active"].as_bool()),
            (Some(did.as_str()), Some(true))
        );
        net.login("alice.test@mail.test", "hunter22").await.ok();
        net.login(&did, "hunter22").await.ok();
        for (who, pw) in [("alice.test", "hunter2"), ("bob.test", "hunter22")] {
            let r = net.login(who, pw).await;
            r.err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");
            assert!(r.challenge.is_some(), "401 says how to authenticate");
        }

        // Token kinds are not interchangeable, and forgeries fail.
        let refresh = str_of(&login, "refreshJwt").to_owned();
        let r = net
            .get("com.atproto.server.getSession", &[], Some(&refresh))
            .await;
        assert!(
            matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST),
            "{}",
            r.body
        );
        assert_eq!(r.body["error"], "InvalidToken");
        net.post("com.atproto.server.refreshSession", None, Some(&access))
            .await
            .err(StatusCode::UNAUTHORIZED, "InvalidToken");
        net.get("com.atproto.server.getSession", &[], None)
            .await
            .err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");
        for bad in ["garbage", "a.b.c", &forge(&access, &did)] {
            let r = net
                .get("com.atproto.server.getSession", &[], Some(bad))
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}: {}", r.body);
            assert_eq!(r.body["error"], "InvalidToken", "{bad}");
        }

        // Refresh rotates: the new pair works, the old refresh token is spent.
        let rotated = net
            .post("com.atproto.server.refreshSession", None, Some(&refresh))
            .await
            .ok();
        assert_eq!(rotated["did"], did.as_str());
        assert_eq!(rotated["active"], true);
        let refresh2 = str_of(&rotated, "refreshJwt").to_owned();
        assert_ne!(refresh2, refresh);
        net.get(
            "com.atproto.server.getSession",
            &[],
            Some(str_of(&rotated, "accessJwt")),
        )
        .await
        .ok();
        let r = net
            .post("com.atproto.server.refreshSession", None, Some(&refresh))
            .await;
        r.err(StatusCode::UNAUTHORIZED, "InvalidToken");
        assert!(r.challenge.is_some());

        // Logout: the refresh token is revoked.
        let r = net
            .post("com.atproto.server.deleteSession", None, Some(&refresh2))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        net.post("com.atproto.server.refreshSession", None, Some(&refresh2))
            .await
            .err(StatusCode::UNAUTHORIZED, "InvalidToken");

        // Handles: update, then resolve the new one but not the old one.
        net.post(
            "com.atproto.identity.updateHandle",
            Some(json!({"handle": "alice2.test"})),
            Some(&access),
        )
        .await
        .ok();
        let resolved = net
            .get(
                "com.atproto.identity.resolveHandle",
                &[("handle", "Alice2.TEST")],
                None,
            )
            .await
            .ok();
        assert_eq!(resolved["did"], did.as_str());
        net.get(
            "com.atproto.identity.resolveHandle",
            &[("handle", "alice.test")],
            None,
        )
        .await
        .err(StatusCode::BAD_REQUEST, "HandleNotFound");
        let doc: Value = net
            .http
            .get(format!("{}/{did}", net.plc.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["alsoKnownAs"], json!(["at://alice2.test"]));
        let s = net
            .get("com.atproto.server.getSession", &[], Some(&access))
            .await
            .ok();
        assert_eq!(s["handle"], "alice2.test");
        // Someone else's handle, and one outside the user domains.
        net.create_account("carol.test", "pw-carol").await;
        net.post(
            "com.atproto.identity.updateHandle",
            Some(json!({"handle": "carol.test"})),
            Some(&access),
        )
        .await
        .err(StatusCode::BAD_REQUEST, "HandleNotAvailable");
        net.post(
            "com.atproto.identity.updateHandle",
            Some(json!({"handle": "alice.example.com"})),
            Some(&access),
        )
        .await
        .err(StatusCode::BAD_REQUEST, "UnsupportedDomain");
        net.post(
            "com.atproto.identity.updateHandle",
            Some(json!({"handle": "alice2.test"})),
            None,
        )
        .await
        .err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");

        // Deactivate, then activate.
        let r = net
            .post(
                "com.atproto.server.deactivateAccount",
                Some(json!({"deleteAfter": "2099-01-01T00:00:00Z"})),
                Some(&access),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let s = net
            .get("com.atproto.server.getSession", &[], Some(&access))
            .await
            .ok();
        assert_eq!(
            (s["active"].as_bool(), s["status"].as_str()),
            (Some(false), Some("deactivated"))
        );
        let login = net.login("alice2.test", "hunter22").await.ok();
        assert_eq!(
            (login["active"].as_bool(), login["status"].as_str()),
            (Some(false), Some("deactivated")),
            "a deactivated account can still log in, to reactivate"
        );
        let r = net
            .post("com.atproto.server.activateAccount", None, Some(&access))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let s = net
            .get("com.atproto.server.getSession", &[], Some(&access))
            .await
            .ok();
        assert_eq!(s["active"], true);
        assert!(s.get("status").is_none(), "{s}");
        // No body at all is fine for deactivateAccount too; a bad date is not.
        net.post(
            "com.atproto.server.deactivateAccount",
            Some(json!({"deleteAfter": "tomorrow"})),
            Some(&access),
        )
        .await
        .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        let r = net
            .post("com.atproto.server.deactivateAccount", None, Some(&access))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        net.post("com.atproto.server.activateAccount", None, None)
            .await
            .err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");

        // Admin calls are disabled without a password.
        net.post(
            "com.atproto.admin.deleteAccount",
            Some(json!({"did": did})),
            None,
        )
        .await
        .err(StatusCode::NOT_FOUND, "AdminDisabled");
    })
    .await;
}

/// The access token with its `sub` swapped for another DID, keeping the
/// signature: a forgery the server must catch.
fn forge(token: &str, did: &str) -> String {
    let mut parts = token.split('.');
    let (h, c, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap();
    assert_eq!(claims["sub"], did);
    claims["sub"] = json!("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa");
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{h}.{c}.{s}")
}

#[tokio::test]
async fn bad_input_gets_lexicon_errors() {
    bounded(async {
        let net = Net::start(None);
        let create = |body: Value| net.post("com.atproto.server.createAccount", Some(body), None);
        create(json!({"handle": "no spaces.test", "password": "pw"}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidHandle");
        create(json!({"handle": "alice.example.com", "password": "pw"}))
            .await
            .err(StatusCode::BAD_REQUEST, "UnsupportedDomain");
        create(json!({"handle": "a.b.test", "password": "pw"}))
            .await
            .err(StatusCode::BAD_REQUEST, "UnsupportedDomain");
        create(json!({"handle": "alice.test"}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        create(json!({"handle": "alice.test", "password": ""}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidPassword");
        create(json!({"handle": "alice.test", "password": "x".repeat(1000)}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidPassword");
        // Too short, control characters, only spaces: refused, naming the
        // rule (the hostile-testing run got "a" and ten NULs accepted).
        for (password, rule) in [
            ("a", "at least 8 characters"),
            ("1234567", "at least 8 characters"),
            (&"\0".repeat(10)[..], "control characters"),
            ("pass\nword1", "control characters"),
            ("          ", "only spaces"),
        ] {
            let r = create(json!({"handle": "alice.test", "password": password})).await;
            r.err(StatusCode::BAD_REQUEST, "InvalidPassword");
            let message = r.body["message"].as_str().unwrap_or_default();
            assert!(message.contains(rule), "{password:?}: {message}");
        }
        create(json!({"password": "pw"}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        create(json!({"handle": 7, "password": "pw"}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        create(json!({"handle": "alice.test", "password": "pw", "did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        create(json!({"handle": "alice.test", "password": "pw", "email": "not-an-email"}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidRequest");

        // Malformed JSON and a missing content type.
        let r = Reply::from(
            net.http
                .post(net.xrpc("com.atproto.server.createAccount"))
                .header("content-type", "application/json")
                .body("{\"handle\": ")
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.err(StatusCode::BAD_REQUEST, "InvalidRequest");
        assert!(
            r.body["message"].as_str().unwrap().contains("JSON"),
            "{}",
            r.body
        );
        Reply::from(
            net.http
                .post(net.xrpc("com.atproto.server.createSession"))
                .body("{}")
                .send()
                .await
                .unwrap(),
        )
        .await
        .err(StatusCode::BAD_REQUEST, "InvalidRequest");

        // Unknown fields are tolerated: clients send the lexicon's optional
        // inputs.
        let created = create(json!({
            "handle": "alice.test",
            "password": "pw-alice-1",
            "inviteCode": "unused",
            "verificationCode": "",
            "somethingNew": {"x": 1},
        }))
        .await
        .ok();
        assert_eq!(created["handle"], "alice.test");
        net.post(
            "com.atproto.server.createSession",
            Some(json!({"identifier": "alice.test", "password": "pw-alice-1", "authFactorToken": ""})),
            None,
        )
        .await
        .ok();
        net.post(
            "com.atproto.server.createSession",
            Some(json!({"identifier": "alice.test"})),
            None,
        )
        .await
        .err(StatusCode::BAD_REQUEST, "InvalidRequest");

        // resolveHandle's parameters.
        net.get("com.atproto.identity.resolveHandle", &[], None)
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        net.get(
            "com.atproto.identity.resolveHandle",
            &[("handle", "not a handle")],
            None,
        )
        .await
        .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        net.get(
            "com.atproto.identity.resolveHandle",
            &[("handle", "nobody.test")],
            None,
        )
        .await
        .err(StatusCode::BAD_REQUEST, "HandleNotFound");
    })
    .await;
}

#[tokio::test]
async fn admin_deletes_accounts_with_the_right_credentials_only() {
    bounded(async {
        let net = Net::start(Some(ADMIN_PASSWORD));
        let created = net.create_account("dave.test", "pw-dave-1").await;
        let did = str_of(&created, "did").to_owned();
        let access = str_of(&created, "accessJwt").to_owned();
        let delete = |auth: Option<String>, body: Value| {
            let mut req = net
                .http
                .post(net.xrpc("com.atproto.admin.deleteAccount"))
                .json(&body);
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            async move { Reply::from(req.send().await.unwrap()).await }
        };
        let basic = |user: &str, pass: &str| {
            Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{user}:{pass}"))
            ))
        };

        for auth in [
            None,
            basic("admin", "wrong"),
            basic("root", ADMIN_PASSWORD),
            basic("admin", &format!("{ADMIN_PASSWORD}x")),
            Some(format!("Bearer {access}")),
            Some("Basic !!!".to_owned()),
        ] {
            let r = delete(auth.clone(), json!({"did": did})).await;
            r.err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");
            assert!(
                r.challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Basic")),
                "{auth:?}"
            );
        }
        // Still there.
        net.login("dave.test", "pw-dave-1").await.ok();

        delete(basic("admin", ADMIN_PASSWORD), json!({"did": "nonsense"}))
            .await
            .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        let r = delete(basic("admin", ADMIN_PASSWORD), json!({"did": did})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        net.login("dave.test", "pw-dave-1")
            .await
            .err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");
        net.get(
            "com.atproto.identity.resolveHandle",
            &[("handle", "dave.test")],
            None,
        )
        .await
        .err(StatusCode::BAD_REQUEST, "HandleNotFound");
        let r = net
            .get("com.atproto.server.getSession", &[], Some(&access))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        // The handle is free again.
        net.create_account("dave.test", "pw-dave2").await;
    })
    .await;
}

#[tokio::test]
async fn accounts_and_tokens_survive_a_restart() {
    bounded(async {
        let mut net = Net::start(None);
        let created = net.create_account("erin.test", "pw-erin-1").await;
        let did = str_of(&created, "did").to_owned();
        let access = str_of(&created, "accessJwt").to_owned();
        let refresh = str_of(&created, "refreshJwt").to_owned();

        let status = net.pds.terminate();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
        // Same port, so the endpoint in the DID document stays right.
        let listen = net.pds.addr.to_string();
        net.pds = start_pds(net.pds_dir.path(), &net.plc.url(), &listen, None);
        // A fresh client: the old one's pooled keep-alive connections went
        // down with the old process.
        net.http = client();

        let s = net
            .get("com.atproto.server.getSession", &[], Some(&access))
            .await
            .ok();
        assert_eq!(s["did"], did.as_str(), "the JWT secret persisted");
        net.login("erin.test", "pw-erin-1").await.ok();
        net.post("com.atproto.server.refreshSession", None, Some(&refresh))
            .await
            .ok();
        net.post(
            "com.atproto.server.createAccount",
            Some(json!({"handle": "erin.test", "password": "pw"})),
            None,
        )
        .await
        .err(StatusCode::BAD_REQUEST, "HandleNotAvailable");
    })
    .await;
}

/// The repo surface through the real binary: writes with a swap failure,
/// reads, and the PDS's own firehose from cursor 0, each `#commit` verified
/// as the relay verifies it.
#[tokio::test]
async fn records_and_firehose_through_the_binary() {
    use futures_util::StreamExt;

    bounded(async {
        let net = Net::start(None);
        let acct = net.create_account("rita.test", "a long password").await;
        let (did, access) = (str_of(&acct, "did").to_owned(), str_of(&acct, "accessJwt").to_owned());
        let post = json!({"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-11-25T00:00:00Z"});
        let created = net
            .post(
                "com.atproto.repo.createRecord",
                Some(json!({"repo": did, "collection": "app.bsky.feed.post", "record": post})),
                Some(&access),
            )
            .await
            .ok();
        let uri = str_of(&created, "uri").to_owned();
        let rkey = uri.rsplit('/').next().unwrap().to_owned();
        let got = net
            .get(
                "com.atproto.repo.getRecord",
                &[("repo", &did), ("collection", "app.bsky.feed.post"), ("rkey", &rkey)],
                None,
            )
            .await
            .ok();
        assert_eq!(got["value"]["text"], "hi");
        // A stale swapCommit is refused; a missing $type too.
        net.post(
            "com.atproto.repo.deleteRecord",
            Some(json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey,
                        "swapCommit": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"})),
            Some(&access),
        )
        .await
        .err(StatusCode::BAD_REQUEST, "InvalidSwap");
        net.post(
            "com.atproto.repo.createRecord",
            Some(json!({"repo": did, "collection": "app.bsky.feed.like", "record": {"no": "type"}})),
            Some(&access),
        )
        .await
        .err(StatusCode::BAD_REQUEST, "InvalidRequest");
        net.post(
            "com.atproto.repo.deleteRecord",
            Some(json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey})),
            Some(&access),
        )
        .await
        .ok();

        // The firehose from the start: #identity, #account, the initial
        // empty commit, the create, the delete.
        let url = format!(
            "ws://{}/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
            net.pds.url().trim_start_matches("http://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (_, mut rx) = ws.split();
        let mut kinds = Vec::new();
        while kinds.len() < 5 {
            let msg = tokio::time::timeout(Duration::from_secs(10), rx.next())
                .await
                .expect("firehose frame in time")
                .unwrap()
                .unwrap();
            let tokio_tungstenite::tungstenite::Message::Binary(frame) = msg else {
                continue;
            };
            let ev = atrelay::wire::frame::Event::decode(&frame).unwrap();
            kinds.push(match &ev {
                atrelay::wire::frame::Event::Commit(c) => {
                    let doc: Value = net
                        .http
                        .get(format!("{}/{}", net.plc.url(), did))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let key = atrelay::identity::parse_document(&did, &doc)
                    .unwrap()
                    .signing_key
                    .unwrap();
                    let opts = atrelay::repo::verify::VerifyOptions {
                        lenient: false,
                        now_micros: atrelay::clock::now_micros(),
                    };
                    atrelay::repo::verify::verify_commit(c, &key, &opts)
                        .expect("the PDS's commits verify with inversion");
                    format!("commit:{}", c.ops.len())
                }
                atrelay::wire::frame::Event::Identity(_) => "identity".to_owned(),
                atrelay::wire::frame::Event::Account(a) => format!("account:{}", a.active),
                other => panic!("{other:?}"),
            });
        }
        assert_eq!(kinds, ["identity", "account:true", "commit:0", "commit:1", "commit:1"]);
    })
    .await;
}

/// Asserts a 429 `RateLimitExceeded` with a `Retry-After` of 1..=`max` s
/// whose message says `what`.
fn assert_limited(r: &Reply, what: &str, max: u64) {
    r.err(StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded");
    assert!(
        r.retry_after.is_some_and(|s| (1..=max).contains(&s)),
        "Retry-After {:?}",
        r.retry_after
    );
    let message = r.body["message"].as_str().unwrap_or_default();
    assert!(message.contains(what), "{message}");
}

/// Failed logins are limited per client address and per account; logins
/// from elsewhere, and right passwords, are not.
#[tokio::test]
async fn failed_logins_are_limited_per_address_and_per_account() {
    bounded(async {
        let net = Net::start(None);
        let victim = net.create_account("victim.test", "victim password").await;
        let victim_did = str_of(&victim, "did").to_owned();
        net.create_account("user.test", "user password").await;
        let attacker = client_from("127.0.0.1");

        // Five wrong passwords from one address, then 429 for anything
        // from it, a right password included (answering it would tell a
        // guesser when it is right).
        for _ in 0..5 {
            login_with(&net, &attacker, "victim.test", "wrong password")
                .await
                .err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");
        }
        let r = login_with(&net, &attacker, "victim.test", "wrong password").await;
        assert_limited(&r, "from this address", 12);
        let r = login_with(&net, &attacker, "user.test", "user password").await;
        assert_limited(&r, "from this address", 12);

        // Another address logs in at once, as often as it likes: right
        // passwords never use up the budget.
        let user = client_from("127.0.0.2");
        for _ in 0..20 {
            login_with(&net, &user, "user.test", "user password")
                .await
                .ok();
        }

        // One account from many addresses: after ten failures in all, the
        // account is locked for everyone (its handle, email and DID alike).
        for i in 0..5 {
            let c = client_from(&format!("127.0.1.{i}"));
            login_with(&net, &c, "victim.test", "wrong password")
                .await
                .err(StatusCode::UNAUTHORIZED, "AuthenticationRequired");
        }
        let fresh = client_from("127.0.2.1");
        for id in [
            "victim.test",
            "VICTIM.test",
            "victim.test@mail.test",
            victim_did.as_str(),
        ] {
            let r = login_with(&net, &fresh, id, "victim password").await;
            assert_limited(&r, "to this account", 60);
        }
        // Other accounts from that address are fine: the refusals there
        // cost the address nothing.
        login_with(&net, &fresh, "user.test", "user password")
            .await
            .ok();
    })
    .await;
}

/// The measured attack: thirty concurrent wrong-password logins from one
/// address, at the standard scrypt cost, delayed a real login from another
/// address to 13.7 s. Now all but five are refused before any password
/// check, and the real login waits for at most those five.
#[tokio::test]
async fn a_login_flood_does_not_delay_other_logins() {
    bounded(async {
        let net = Net::start_with(None, PasswordSpeed::Standard);
        net.create_account("target.test", "target password").await;
        net.create_account("real.test", "real password").await;
        let user = client_from("127.0.0.2");
        let started = Instant::now();
        login_with(&net, &user, "real.test", "real password")
            .await
            .ok();
        let one_login = started.elapsed();

        let attacker = client_from("127.0.0.1");
        let flood: Vec<_> = (0..30)
            .map(|_| {
                let (net, attacker) = (&net, &attacker);
                async move {
                    let started = Instant::now();
                    let r = login_with(net, attacker, "target.test", "wrong password").await;
                    (r.status, started.elapsed())
                }
            })
            .collect();
        let real = async {
            // Behind the attacker's checks in the queue.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            login_with(&net, &user, "real.test", "real password")
                .await
                .ok();
            started.elapsed()
        };
        let health = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let started = Instant::now();
            let r = client_from("127.0.0.3")
                .get(format!("{}/xrpc/_health", net.pds.url()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            started.elapsed()
        };
        let (flood, real, health) =
            tokio::join!(futures_util::future::join_all(flood), real, health);
        let started = Instant::now();
        login_with(&net, &user, "real.test", "real password")
            .await
            .ok();
        let one_login = one_login.max(started.elapsed());
        let refused: Vec<_> = flood
            .iter()
            .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
            .collect();
        let checked = flood
            .iter()
            .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
            .count();
        assert_eq!((refused.len(), checked), (25, 5), "{flood:?}");
        let slowest_refusal = refused.iter().map(|(_, t)| *t).max().unwrap();
        eprintln!(
            "one login {one_login:?}; under the flood: real login {real:?}, _health {health:?}, slowest 429 {slowest_refusal:?}"
        );
        // Refused before any password check (one takes ~0.45 s).
        assert!(slowest_refusal < Duration::from_secs(2), "{slowest_refusal:?}");
        // Five checks ahead of it on two slots, then its own: about three
        // check times; unlimited, thirty would be ahead (about sixteen).
        // The bound scales with this machine's speed now (one login alone,
        // the slower of before and after the flood).
        let bound = (one_login * 8).max(Duration::from_secs(4));
        assert!(real < bound, "real login took {real:?} (one alone: {one_login:?})");
        assert!(health < Duration::from_secs(1), "_health took {health:?}");
    })
    .await;
}

/// A blank or short `ATRELAY_PDS_ADMIN_PASSWORD` is a configuration error,
/// not an admin API open to a one-space password.
#[tokio::test]
async fn a_blank_admin_password_refuses_to_start() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        for (password, what) in [(" ", "blank"), ("", "blank"), ("short", "too short")] {
            let out = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::process::Command::new(env!("CARGO_BIN_EXE_atrelay"))
                    .args(["pds", "--listen", "127.0.0.1:0", "--data-dir"])
                    .arg(dir.path())
                    .args(["--plc-url", "http://127.0.0.1:9"])
                    .env("ATRELAY_PDS_ADMIN_PASSWORD", password)
                    .stdin(Stdio::null())
                    .output(),
            )
            .await
            .expect("atrelay pds exits at once")
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{password:?} started: {stderr}");
            assert!(
                stderr.contains("ATRELAY_PDS_ADMIN_PASSWORD")
                    && stderr.contains(what)
                    && stderr.contains("at least 16 characters"),
                "{password:?}: {stderr}"
            );
        }
    })
    .await;
}
