//! Inputs a user gets wrong: each run exits 2 with a message that names the problem and the
//! fix, and leaves the data directory as it was (or absent, when it did not exist).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A scratch directory with a data directory path that does not exist yet.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().unwrap() }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Runs `neolight ARGS` with `envs` on `data`, checks exit code 2 and that `data` was not
/// created, and returns stderr.
fn run_rejected(args: &[&str], envs: &[(&str, &str)], data: &Path) -> String {
    let mut cmd = neolight(args, data);
    cmd.envs(envs.iter().copied());
    let finished = run(cmd, RUN_LIMIT);
    assert_eq!(finished.code(), Some(2), "exit status {}; stderr:\n{}", finished.status, finished.stderr);
    assert!(!data.exists(), "{} was created by a rejected run", data.display());
    finished.stderr
}

fn assert_mentions(stderr: &str, needles: &[&str]) {
    for needle in needles {
        assert!(stderr.contains(needle), "stderr does not mention {needle:?}:\n{stderr}");
    }
}

/// Returns the first line that reports an error.
fn error_line(stderr: &str) -> &str {
    stderr.lines().find(|l| l.contains("ERROR") || l.starts_with("error")).unwrap_or("")
}

#[test]
fn missing_price_file_rejected() {
    let s = Scratch::new();
    let path = s.dir.path().join("nowhere.csv");
    let arg = format!("SPY={}", path.display());
    let stderr = run_rejected(&["run", "--replay", &arg, "--until-end"], &[], &s.data());
    let line = error_line(&stderr);
    assert_mentions(line, &[&path.display().to_string(), "not found", "check the path"]);
}

#[test]
fn file_without_close_rejected() {
    let s = Scratch::new();
    let path = s.file("noclose.csv", "Date,Open,High,Low\n2020-01-02,10,11,9\n2020-01-03,10,12,9\n");
    let stderr = run_rejected(&["run", "--replay", &path.display().to_string(), "--until-end"], &[], &s.data());
    let line = error_line(&stderr);
    assert_mentions(line, &[&path.display().to_string(), "line 1", "close", "add a header row"]);
}

#[test]
fn empty_price_file_rejected() {
    let s = Scratch::new();
    let path = s.file("empty.csv", "");
    let stderr = run_rejected(&["run", "--replay", &path.display().to_string(), "--until-end"], &[], &s.data());
    let line = error_line(&stderr);
    assert_mentions(line, &[&path.display().to_string(), "empty", "header row"]);
}

#[test]
fn every_row_bad_rejected() {
    let s = Scratch::new();
    let text = "Date,Open,High,Low,Close\n2020-01-02,null,11,9,10\n2020-01-03,10,11,9,\nsoon,10,11,9,10\n";
    let path = s.file("allbad.csv", text);
    // An existing data directory holding earlier work must come through untouched.
    let data = s.data();
    std::fs::create_dir_all(data.join("state")).unwrap();
    std::fs::write(data.join("state").join("notes.txt"), "earlier work\n").unwrap();
    let before = file_tree(&data);

    let finished = run(neolight(&["run", "--replay", &path.display().to_string(), "--until-end"], &data), RUN_LIMIT);
    assert_eq!(finished.code(), Some(2), "exit status {}; stderr:\n{}", finished.status, finished.stderr);
    let line = error_line(&finished.stderr);
    assert_mentions(line, &[&path.display().to_string(), "line 2", "null", "no usable row"]);
    assert_eq!(file_tree(&data), before, "the data directory changed");
}

#[test]
fn data_dir_below_file_rejected() {
    let s = Scratch::new();
    let blocker = s.file("plain-file", "not a directory\n");
    let data = blocker.join("data");
    let stderr = run_rejected(&["--tick", "50ms"], &[], &data);
    let line = error_line(&stderr);
    assert_mentions(line, &[&data.display().to_string(), "--data-dir"]);
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "not a directory\n", "the regular file changed");
}

#[test]
fn unknown_flag_rejected() {
    let s = Scratch::new();
    let stderr = run_rejected(&["--frobnicate"], &[], &s.data());
    assert_mentions(&stderr, &["--frobnicate", "--help"]);
}

#[test]
fn bad_settings_listed_together() {
    let s = Scratch::new();
    let stderr = run_rejected(&["--speed", "fast", "--fee-bps", "-1", "--tick", "5parsecs"], &[], &s.data());
    assert_mentions(&stderr, &["--speed", "\"fast\"", "--fee-bps", "\"-1\"", "--tick", "\"5parsecs\""]);
}

#[test]
fn live_trading_mode_rejected() {
    let s = Scratch::new();
    let stderr = run_rejected(&["--tick", "50ms"], &[("TRADING_MODE", "LIVE")], &s.data());
    assert_mentions(&stderr, &["TRADING_MODE", "LIVE", "PAPER_TRADING_MODE"]);
}

#[test]
fn replay_market_without_files() {
    let s = Scratch::new();
    let stderr = run_rejected(&["--market", "replay"], &[], &s.data());
    assert_mentions(&stderr, &["--market replay", "--replay"]);
}

#[test]
fn busy_data_dir_is_locked() {
    let s = Scratch::new();
    let data = s.data();
    let mut first = Proc::spawn(neolight(&["--tick", "100ms"], &data));
    first.wait_listening(Duration::from_secs(30));
    let identity = std::fs::read(data.join("identity.json")).expect("the first run wrote identity.json");

    let second = run(neolight(&["--tick", "100ms"], &data), RUN_LIMIT);
    assert_eq!(second.code(), Some(2), "second process: exit status {}; stderr:\n{}", second.status, second.stderr);
    let line = error_line(&second.stderr);
    assert_mentions(line, &[&data.display().to_string(), "in use", "--data-dir"]);
    assert_eq!(std::fs::read(data.join("identity.json")).unwrap(), identity, "identity.json changed");

    assert!(first.try_status().is_none(), "the first process stopped when the second started:\n{}", first.stderr());
    first.signal("TERM");
    let done = first.finish(Duration::from_secs(10));
    assert_eq!(done.code(), Some(0), "first process after SIGTERM: {}", notable(&done.stderr));
}
