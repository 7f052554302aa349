//! What upshift writes and prints, judged from outside: output paths that are not regular files
//! are refused before anything is read and left as they were; key names reach the terminal
//! escaped and JSON exactly; bad input (a missing snapshot, a database the server lacks, one
//! database compared with itself) exits 2; a truncated repair counts the keys that differed.

use std::os::unix::fs::FileTypeExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Env, MAIN, change, request, small_seeds};
use crate::verify_support::Server;
use upshift::engine::Outcome;
use upshift::runner::reporter::{Reporter, RunEvent};
use upshift::sim::Fault;

/// Runs the binary: (exit code, stdout, stderr).
fn upshift(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("HEROKU_APP")
        .output()
        .expect("upshift runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A FIFO, a symbolic link and a directory at `--out` are refused (exit 2, naming what is
/// there) before any connection: the URL points at a port where nothing listens, so a command
/// that connected first would exit 4. Each path is left as it was, and the link's target
/// untouched. A regular file at the same place is replaced as before.
#[test]
fn an_output_path_that_is_not_a_file_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let target = dir.path().join("target");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let nowhere = "redis://127.0.0.1:1";
    for (path, kind) in [
        (&fifo, "a FIFO (named pipe)"),
        (&link, "a symbolic link"),
        (&sub, "a directory"),
    ] {
        let p = path.to_str().unwrap();
        let (code, stdout, stderr) = upshift(&["snapshot", "--url", nowhere, "--out", p]);
        assert_eq!(code, 2, "{p}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "--out {p} is {kind}, not a file: give a file path"
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("cannot connect"), "{stderr}");
        // `plan --out`: refused before the platform is asked (nothing listens there either).
        let mut plan = Command::new(env!("CARGO_BIN_EXE_upshift"));
        plan.args(["plan", "-a", "enketo-demo", "--change"])
            .arg(format!("{MAIN}=premium-1"))
            .args(["--out", p])
            .env("HEROKU_API_KEY", "not-a-real-key")
            .env("HEROKU_API_URL", "http://127.0.0.1:1")
            .env("HEROKU_DATA_URL", "http://127.0.0.1:1")
            .env_remove("HEROKU_APP");
        let out = plan.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "plan --out {p}: {stderr}");
        assert!(stderr.contains(&format!("--out {p} is {kind}")), "{stderr}");
    }
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert!(sub.is_dir() && std::fs::read_dir(&sub).unwrap().next().is_none());
    // Nothing left behind beside them (no partial file).
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // A regular file is still replaced, mode 0600.
    let server = Server::start();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut server.conn())
        .unwrap();
    let (code, stdout, stderr) = upshift(&[
        "snapshot",
        "--url",
        &server.url(),
        "--out",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.is_file());
    assert_ne!(std::fs::read(&target).unwrap(), b"keep");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
}

/// A `--spill-dir` or an `--out` directory where no file can be made (missing, a file, /proc)
/// is bad input, exit 2, said before any connection (nothing listens at the URL's port, so a
/// command that connected first would exit 4), naming the flag.
#[test]
fn an_unusable_spill_or_output_directory_is_bad_input_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let nowhere = "redis://127.0.0.1:1";
    for bad in ["/nonexistent-upshift-dir", file.to_str().unwrap(), "/proc"] {
        let (code, stdout, stderr) = upshift(&["digest", "--url", nowhere, "--spill-dir", bad]);
        assert_eq!(code, 2, "--spill-dir {bad}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("--spill-dir: cannot create files in {bad}")),
            "{stderr}"
        );
        assert!(!stderr.contains("cannot connect"), "{stderr}");
        let out = format!("{bad}/s.ups");
        let (code, stdout, stderr) = upshift(&["snapshot", "--url", nowhere, "--out", &out]);
        assert_eq!(code, 2, "--out {out}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("--out: cannot create files in {bad}")),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

/// A valid 250-byte file name for `--out`: the snapshot is written (its temporary name is
/// short, not `.NAME.partial`, which would exceed the 255-byte limit), and nothing else is
/// left in the directory.
#[test]
fn a_snapshot_with_a_long_valid_name_is_written() {
    let server = Server::start();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut server.conn())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = "a".repeat(250);
    let out = dir.path().join(&name);
    let (code, stdout, stderr) = upshift(&[
        "snapshot",
        "--url",
        &server.url(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [name]);
    // It is a whole snapshot: the server compared with it is equal.
    let (code, stdout, stderr) = upshift(&[
        "diff",
        "--url",
        &server.url(),
        "--against",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// Keys named with terminal escapes, a newline, a bidi override and bytes that are not UTF-8.
fn hostile_keys() -> Vec<Vec<u8>> {
    vec![
        b"\x1b[31mRED\x1b[0m".to_vec(),
        b"\x1b]0;pwned-title\x07".to_vec(),
        b"line1\nline2".to_vec(),
        "\u{202e}evil-rtl".as_bytes().to_vec(),
        b"\xff\xfe\x00bin".to_vec(),
        b"\xff\xff\x00bin".to_vec(),
        b"back\\slash".to_vec(),
    ]
}

/// The escaped forms a person sees, one per hostile key, written out by hand.
const ESCAPED: [&str; 7] = [
    "\\x1b[31mRED\\x1b[0m",
    "\\x1b]0;pwned-title\\x07",
    "line1\\x0aline2",
    "\\u{202e}evil-rtl",
    "\\xff\\xfe\\x00bin",
    "\\xff\\xff\\x00bin",
    "back\\\\slash",
];

fn assert_printed_safely(stdout: &str) {
    for bad in ['\x1b', '\x07', '\u{202e}', '\u{fffd}'] {
        assert!(!stdout.contains(bad), "raw {bad:?} printed: {stdout:?}");
    }
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("missing"))
        .collect();
    assert_eq!(missing.len(), ESCAPED.len(), "one line per key: {stdout}");
    for want in ESCAPED {
        assert!(
            missing.iter().any(|l| l.ends_with(&format!(" {want}"))),
            "{want} in {stdout}"
        );
    }
}

/// `digest --against-url` and `diff` print every key escaped, one line each; `--json` keeps
/// `key` and adds the exact `key_base64`, so two binary keys that print the same `key` differ.
/// Two databases of one server are two databases: that compare is not refused.
#[test]
fn key_names_are_escaped_for_people_and_exact_in_json() {
    let server = Server::start();
    let mut c = server.conn();
    redis::cmd("SELECT").arg(9).exec(&mut c).unwrap();
    for k in hostile_keys() {
        redis::cmd("SET").arg(&k).arg("v").exec(&mut c).unwrap();
    }
    let db9 = format!("{}/9", server.url());
    let db10 = format!("{}/10", server.url());
    let (code, stdout, stderr) = upshift(&["digest", "--url", &db9, "--against-url", &db10]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_printed_safely(&stdout);

    let (code, stdout, _) = upshift(&["digest", "--url", &db9, "--against-url", &db10, "--json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    crate::json_schema::assert_valid("diff", &json);
    let listed: Vec<(&str, &str)> = json["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap(),
                d["key_base64"].as_str().unwrap(),
            )
        })
        .collect();
    // Base64 of the two binary keys, computed apart from upshift (Python's base64).
    let a = listed
        .iter()
        .find(|(_, b)| *b == "//4AYmlu")
        .expect("key a");
    let b = listed
        .iter()
        .find(|(_, b)| *b == "//8AYmlu")
        .expect("key b");
    assert_eq!(a.0, b.0, "the lossy `key` alone cannot tell them apart");
    assert!(listed.contains(&("\u{1b}[31mRED\u{1b}[0m", "G1szMW1SRUQbWzBt")));

    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.snap");
    let (code, _, stderr) = upshift(&["snapshot", "--url", &db9, "--out", snap.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = upshift(&["diff", "--url", &db10, "--against", snap.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_printed_safely(&stdout);
}

/// Bad input exits 2 with words that say what to fix: a snapshot file that is not there, a
/// database number the server does not have or no server could, and one database compared with
/// itself.
#[test]
fn bad_paths_databases_and_a_self_compare_are_bad_input() {
    let server = Server::start();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut server.conn())
        .unwrap();
    let url = server.url();
    let gone = "/nonexistent/upshift.snap";
    for args in [
        ["restore", "--url", &url, "--from", gone],
        ["diff", "--url", &url, "--against", gone],
    ] {
        let (code, _, stderr) = upshift(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot open the snapshot {gone}: check the path")),
            "{stderr}"
        );
    }
    let (code, _, stderr) = upshift(&["digest", "--url", &format!("{url}/16")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the server has no database of the number at the end of the url"),
        "{stderr}"
    );
    let (code, _, stderr) = upshift(&["digest", "--url", &format!("{url}/99999999999")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a database number"), "{stderr}");

    let (code, stdout, stderr) = upshift(&["digest", "--url", &url, "--against-url", &url]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("both URLs reach the same database (run_id ")
            && stderr.contains(", db 0): the comparison proves nothing"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

/// Collects the run's warnings.
#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl Reporter for Warnings {
    fn report(&self, event: &RunEvent) {
        if let RunEvent::Warning { message } = event {
            self.0.lock().unwrap().push(message.clone());
        }
    }
}

/// A migration loses every `ca:` key, one of them named to clear the screen and forge a line; the
/// difference list stops at 5, so the repair restores every key. The run's warning names that
/// key escaped and says every key is restored; `repaired` counts the keys that differed
/// (counted here by this test's own SCAN), not every key written. (Changed values are never
/// repaired: see `foreign::values_changed_after_the_plan_change_are_not_repaired`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_repair_counts_the_keys_that_differed_and_names_them_escaped() {
    // Room on MAIN for this test's own connection beside the dynos'.
    let env = Env::roomy_edited(Duration::from_millis(500), small_seeds).await;
    let evil = "ca:\x01\x1b[2J\x1b[Hupshift: all data verified\n<!channel>";
    let mut con = crate::common::redis(&env.sim.redis_url(MAIN)).await;
    let () = redis::cmd("SET")
        .arg(evil)
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut changed = 0_u64;
    let mut total = 0_u64;
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await
            .unwrap();
        total += keys.len() as u64;
        changed += keys.iter().filter(|k| k.starts_with(b"ca:")).count() as u64;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(changed > 5 && total > 2 * changed, "{changed} of {total}");
    env.inject(Fault::LoseKeys {
        addon: Some(MAIN.into()),
        count: 1_000_000,
        prefix: Some("ca:".into()),
    });
    let warnings = Arc::new(Warnings::default());
    let runner = env.runner_configured(
        upshift::runner::Interrupts::default(),
        warnings.clone(),
        |c| c.verify.max_listed_differences = 5,
    );
    let report = runner
        .run(&request(vec![change(MAIN, "premium-1")], None))
        .await
        .expect("run");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let main = &report.addons[0];
    assert_eq!(main.differences, changed, "{main:?}");
    assert_eq!(main.repaired, changed, "{main:?}");
    let warnings = warnings.0.lock().unwrap().join("\n");
    assert!(
        warnings
            .contains("restoring every key from the snapshot (the list of differences stops at 5)"),
        "{warnings}"
    );
    assert!(
        !warnings.contains('\x1b') && !warnings.contains('\x01'),
        "{warnings:?}"
    );
    // Listed in key order, `ca:\x01…` first of the changed keys: named, escaped.
    let escaped = "ca:\\x01\\x1b[2J\\x1b[Hupshift: all data verified\\x0a<!channel>";
    assert!(warnings.contains(escaped), "{warnings}");
    // The data, judged by this test's own read: the key holds its value again.
    let value: String = redis::cmd("GET")
        .arg(evil)
        .query_async(&mut crate::common::redis(&env.sim.redis_url(MAIN)).await)
        .await
        .unwrap();
    assert_eq!(value, "v");
    env.sim.shutdown().await;
}
