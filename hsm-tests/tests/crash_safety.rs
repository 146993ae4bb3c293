//! A command killed at any instant (SIGKILL) leaves the trust directory as it was before the
//! command or as after it, never a mix, and the next run completes.
//!
//! Real `rootkeeper root init` and `root sign` processes over several GUNs are killed at many
//! moments. To land kills inside the few milliseconds of a commit, the processes run under
//! `strace`, which delays by 20 ms every system call on the trust directory's own files (the
//! journal, the drafts, the inventory, the folder): writing the journal and then applying it
//! take most of the run, and the kills spread over both, before and after the commit point.
//! (SoftHSM's own files are not slowed: a kill in the middle of SoftHSM rewriting its token
//! file breaks the token, which is SoftHSM's business, not the trust directory's.) Nothing in
//! rootkeeper is mocked.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hsm_tests::{SoftHsm, rootkeeper_bin, strs};
use serde_json::Value;

const GUNS: usize = 4;
const DELAY_US: u32 = 15_000;
const SLOWED: &str =
    "openat,write,fsync,fdatasync,syncfs,rename,renameat,renameat2,unlink,unlinkat";

fn guns() -> Vec<String> {
    (1..=GUNS)
        .map(|i| format!("example.com/crash/app-{i}"))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The trust directory's own files that init and sign touch (the ones strace slows).
fn slowed_paths(trust: &Path) -> Vec<std::path::PathBuf> {
    let mut paths = vec![
        trust.to_owned(),
        trust.join(".journal"),
        trust.join(".journal.tmp"),
        trust.join("inventory.json"),
    ];
    for gun in guns() {
        for name in ["root.json", "targets.json", "snapshot.json", "draft.json"] {
            paths.push(trust.join("repos").join(&gun).join("pending").join(name));
        }
    }
    paths
}

/// Runs rootkeeper under strace (the trust directory's files slowed) with `trust` as the
/// trust directory; kills it after `after` (or lets it finish when `None`). Returns how long
/// it ran and whether it exited by itself with success; its stderr is kept in
/// `<trust>.stderr`.
fn run_traced(
    hsm: &SoftHsm,
    trust: &Path,
    args: &[&str],
    after: Option<Duration>,
) -> (Duration, bool) {
    let mut strace = Command::new("strace");
    strace.args(["-f", "-qq", "-o", "/dev/null"]);
    for path in slowed_paths(trust) {
        strace.arg("-P").arg(path);
    }
    let mut child = strace
        .arg("-e")
        .arg(format!("trace={SLOWED}"))
        .arg("-e")
        .arg(format!("inject={SLOWED}:delay_enter={DELAY_US}"))
        .arg(rootkeeper_bin())
        .args(args)
        .env("SOFTHSM2_CONF", hsm.path().join("softhsm2.conf"))
        .env("ROOTKEEPER_DIR", trust)
        .env_remove("ROOTKEEPER_PIN")
        .current_dir(hsm.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(trust.with_extension("stderr")).unwrap())
        .spawn()
        .expect("strace (apt-get install strace; hsm-tests/run installs it)");
    let started = Instant::now();
    match after {
        None => {
            let status = child.wait().unwrap();
            (started.elapsed(), status.success())
        }
        Some(after) => {
            while started.elapsed() < after {
                if child.try_wait().unwrap().is_some() {
                    return (started.elapsed(), true);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            // Kill the whole traced tree: strace and rootkeeper under it.
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            (started.elapsed(), false)
        }
    }
}

/// `root status` (read-only) of every draft in `trust`: (GUN, root signatures) pairs.
fn drafts(hsm: &SoftHsm, trust: &Path) -> Vec<(String, u64)> {
    let out = Command::new(rootkeeper_bin())
        .args(["--json", "root", "status"])
        .env("SOFTHSM2_CONF", hsm.path().join("softhsm2.conf"))
        .env("ROOTKEEPER_DIR", trust)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "root status failed after a kill:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["gun"].as_str().unwrap().to_owned(),
                d["root"]["signed"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Kill moments spread over a run that takes `full`: a few early, most inside the commit.
fn kill_points(full: Duration) -> Vec<Duration> {
    let ms = full.as_millis() as u64;
    let mut points: Vec<u64> = [5u64, 20, 40].iter().map(|p| ms * p / 100).collect();
    points.extend((0..10).map(|i| ms * (50 + i * 5) / 100));
    points.into_iter().map(Duration::from_millis).collect()
}

fn stderr_of(trust: &Path) -> String {
    std::fs::read_to_string(trust.with_extension("stderr")).unwrap_or_default()
}

/// True when the kill came after a commit point and before the batch was applied.
fn journal_left(trust: &Path) -> bool {
    trust.join(".journal").exists()
}

#[test]
fn killed_init_and_sign_leave_the_directory_before_or_after() {
    let hsm = SoftHsm::new();
    let roots = hsm.standard_keys();
    std::fs::copy(
        hsm_tests::fixture("notary-0.7-samples/timestamp.key.json"),
        hsm.path().join("ts.json"),
    )
    .unwrap();
    let mut init = hsm.init_2_of_3(&roots, "ts.json");
    for gun in guns() {
        init.extend(["--gun".into(), gun]);
    }
    let init = strs(&init);
    let sign = ["root", "sign", "--gun-file", "guns.txt", "--key", &roots[0]];
    std::fs::write(hsm.path().join("guns.txt"), guns().join("\n")).unwrap();

    // The pristine directory: only the inventory (from `key generate`).
    let pristine = hsm.trust_dir();
    let scratch = hsm.path().join("scratch");
    copy_dir(&pristine, &scratch);
    let (init_full, ok) = run_traced(&hsm, &scratch, &init, None);
    assert!(ok, "a traced root init must complete");
    let drafted = hsm.path().join("drafted");
    copy_dir(&scratch, &drafted);
    let (sign_full, ok) = run_traced(&hsm, &scratch, &sign, None);
    assert!(ok, "a traced root sign must complete");
    assert_eq!(drafts(&hsm, &scratch).len(), GUNS);

    let mut mid_commit = 0;
    for (case, at) in kill_points(init_full).into_iter().enumerate() {
        let trust = hsm.path().join(format!("init-{case}"));
        copy_dir(&pristine, &trust);
        let (_, finished) = run_traced(&hsm, &trust, &init, Some(at));
        mid_commit += usize::from(journal_left(&trust));
        let seen = drafts(&hsm, &trust);
        assert!(
            seen.is_empty() || (seen.len() == GUNS && seen.iter().all(|(_, n)| *n == 0)),
            "init killed at {at:?} (finished: {finished}) left {} of {GUNS} drafts: {seen:?}",
            seen.len()
        );
        // The next run completes: init again from before, or sign from after.
        let next = if seen.is_empty() {
            &init[..]
        } else {
            &sign[..]
        };
        let (_, ok) = run_traced(&hsm, &trust, next, None);
        assert!(
            ok,
            "the run after a kill at {at:?} failed:\n{}",
            stderr_of(&trust)
        );
        assert!(!journal_left(&trust));
        assert_eq!(drafts(&hsm, &trust).len(), GUNS);
    }

    for (case, at) in kill_points(sign_full).into_iter().enumerate() {
        let trust = hsm.path().join(format!("sign-{case}"));
        copy_dir(&drafted, &trust);
        let (_, finished) = run_traced(&hsm, &trust, &sign, Some(at));
        mid_commit += usize::from(journal_left(&trust));
        let seen = drafts(&hsm, &trust);
        let counts: std::collections::BTreeSet<u64> = seen.iter().map(|(_, n)| *n).collect();
        assert!(
            seen.len() == GUNS && counts.len() == 1,
            "sign killed at {at:?} (finished: {finished}) left a mix: {seen:?}"
        );
        let (_, ok) = run_traced(&hsm, &trust, &sign, None);
        assert!(
            ok,
            "the run after a kill at {at:?} failed:\n{}",
            stderr_of(&trust)
        );
        assert!(drafts(&hsm, &trust).iter().all(|(_, n)| *n == 1));
    }
    // The kills must really have landed inside commits, not only before or after them.
    assert!(
        mid_commit >= 3,
        "only {mid_commit} kills landed after a commit point and before its end"
    );
}
