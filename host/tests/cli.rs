//! End-to-end through the `qkd` binary: `distill-gen`, then Alice and Bob as two processes
//! talking over TCP on 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const QKD: &str = env!("CARGO_BIN_EXE_qkd");

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qkd-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn gen(dir: &Path, extra: &[&str]) {
    let out = Command::new(QKD)
        .args(["distill-gen", "--dir", dir.to_str().unwrap(), "--seed", "11"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "distill-gen: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs Alice (listening) and Bob (connecting) as two processes with the same extra options.
fn distill_pair(dir: &Path, extra: &[&str]) -> (Output, Output) {
    let addr = format!("127.0.0.1:{}", free_port());
    let station = |role: &str, net: [&str; 2]| {
        let d = |f: &str| dir.join(format!("{role}.{f}")).to_str().unwrap().to_string();
        Command::new(QKD)
            .args(["distill", "--role", role, net[0], net[1]])
            .args(["--input", &d("rec"), "--psk", &d("psk"), "--out", &d("key"), "--report", &d("json")])
            .args(["--connect-timeout", "60"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let alice = station("alice", ["--listen", &addr]);
    let bob = station("bob", ["--connect", &addr]);
    (alice.wait_with_output().unwrap(), bob.wait_with_output().unwrap())
}

fn report_field(dir: &Path, role: &str, field: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{role}.json"))).unwrap()).unwrap();
    json[field].as_u64().unwrap_or_else(|| panic!("no {field} in the report"))
}

#[test]
fn two_processes_agree_on_the_key() {
    let dir = tmp_dir("ok");
    gen(&dir, &[]);
    let psk_before = std::fs::read(dir.join("alice.psk")).unwrap();
    let (a, b) = distill_pair(&dir, &["--method", "cascade", "--no-replenish"]);
    let text = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(a.status.success(), "alice: {}", text(&a));
    assert!(b.status.success(), "bob: {}", text(&b));
    let ka = std::fs::read(dir.join("alice.key")).unwrap();
    let kb = std::fs::read(dir.join("bob.key")).unwrap();
    assert!(!ka.is_empty());
    assert_eq!(ka, kb, "the two key files differ");
    let bits = report_field(&dir, "alice", "final_key_bits");
    assert_eq!(ka.len() as u64 * 8, bits);
    assert_eq!(bits, report_field(&dir, "bob", "final_key_bits"));
    // Both pre-shared keys were rewritten identically, without the consumed MAC key.
    let pa = std::fs::read(dir.join("alice.psk")).unwrap();
    assert_eq!(pa, std::fs::read(dir.join("bob.psk")).unwrap());
    let mac = report_field(&dir, "alice", "mac_key_bits");
    assert_eq!(pa.len() as u64, (psk_before.len() as u64 * 8 - mac) / 8);
    assert!(text(&a).contains("key bits written"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn high_qber_aborts_both_processes() {
    let dir = tmp_dir("abort");
    gen(&dir, &["--qber", "0.15", "--slots", "1000000"]);
    let (a, b) = distill_pair(&dir, &[]);
    for (name, o) in [("alice", &a), ("bob", &b)] {
        assert!(!o.status.success(), "{name} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("QBER too high") && err.contains("upper bound"), "{name}: {err}");
        assert!(!dir.join(format!("{name}.key")).exists(), "{name} wrote a key");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
