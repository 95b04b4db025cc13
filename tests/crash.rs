//! Crash safety of the real binary: a paced replay killed with SIGKILL at many moments, and a
//! sled store that will not reopen, must end with the fills and equity of an uninterrupted run.
//!
//! Kill moments come from a seed printed at the start; set `NEOLIGHT_CRASH_SEED` to replay one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KILLS: usize = 20;

fn price_file() -> Option<PathBuf> {
    let root = std::env::var_os("NEOLIGHT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let path = root.join("prices/mplfinance/yahoofinance-SPY-20080101-20180101.csv");
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not found (the shared data directory is absent)", path.display());
        None
    }
}

/// Starts a replay of `file` on `dir`; short windows make the strategy trade every few weeks.
fn spawn(file: &Path, dir: &Path, speed: &str, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file opens");
    Command::new(env!("CARGO_BIN_EXE_neolight"))
        .arg("run")
        .arg("--replay")
        .arg(format!("SPY={}", file.display()))
        .args(["--until-end", "--port", "0", "--fast-window", "3", "--slow-window", "8", "--speed", speed])
        .arg("--data-dir")
        .arg(dir)
        .env("NEOLIGHT_BIND", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("neolight starts")
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait works") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("neolight did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_to_end(file: &Path, dir: &Path, speed: &str, log: &Path) {
    let mut child = spawn(file, dir, speed, log);
    let status = wait_with_deadline(&mut child, Duration::from_secs(120));
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "replay exited with {status}; log:\n{text}");
}

/// Complete lines of a CSV mirror: a torn last line (no newline) is what start-up repairs.
fn complete_rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    lines.iter().skip(1).map(|l| l.trim_end().to_string()).collect()
}

/// Checks the mirrors as a reader would find them right after a crash.
fn check_mirrors(dir: &Path, moment: usize) {
    let fills = complete_rows(&dir.join("state/fills.csv"));
    let mut ids = HashSet::new();
    let mut last_time = String::new();
    for row in &fills {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), 7, "kill {moment}: fills.csv row {row:?} does not have 7 fields");
        assert!(cells[0] >= last_time.as_str(), "kill {moment}: fills.csv time {} after {last_time}", cells[0]);
        assert!(ids.insert(cells[1].to_string()), "kill {moment}: client order id {} repeats", cells[1]);
        last_time = cells[0].to_string();
    }

    let pnl = complete_rows(&dir.join("state/pnl_history.csv"));
    let mut previous: Option<String> = None;
    for row in &pnl {
        let time = row.split(',').next().unwrap_or_default().to_string();
        assert_eq!(time.len(), 20, "kill {moment}: pnl_history.csv timestamp {time:?} is not RFC 3339 in seconds");
        assert!(time.ends_with('Z'), "kill {moment}: pnl_history.csv timestamp {time:?} is not UTC");
        if let Some(previous) = &previous {
            assert!(time > *previous, "kill {moment}: pnl_history.csv time {time} not after {previous}");
        }
        previous = Some(time);
    }

    let brain = dir.join("runtime/atlas_brain.json");
    if brain.exists() {
        let text = std::fs::read_to_string(&brain).expect("brain mirror reads");
        let value: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("kill {moment}: atlas_brain.json is not JSON ({err}): {text:?}"));
        assert!(value.get("risk_scaler").is_some(), "kill {moment}: atlas_brain.json has no risk_scaler");
    }
}

fn final_equity(dir: &Path) -> f64 {
    let text = std::fs::read_to_string(dir.join("runtime/last_run.json")).expect("last_run.json exists");
    let value: serde_json::Value = serde_json::from_str(&text).expect("last_run.json is JSON");
    value["final_equity"].as_f64().expect("final_equity is a number")
}

fn assert_same_outcome(reference: &Path, crashed: &Path) {
    let expected_fills = std::fs::read_to_string(reference.join("state/fills.csv")).unwrap();
    let actual_fills = std::fs::read_to_string(crashed.join("state/fills.csv")).unwrap();
    assert!(expected_fills.lines().count() > 20, "the reference run should trade; fills:\n{expected_fills}");
    assert_eq!(actual_fills, expected_fills, "fills differ from the uninterrupted run");
    let expected_pnl = std::fs::read_to_string(reference.join("state/pnl_history.csv")).unwrap();
    let actual_pnl = std::fs::read_to_string(crashed.join("state/pnl_history.csv")).unwrap();
    assert_eq!(actual_pnl.lines().count(), expected_pnl.lines().count(), "pnl_history row counts differ");
    assert_eq!(actual_pnl, expected_pnl, "pnl_history differs from the uninterrupted run");
    assert_eq!(final_equity(crashed), final_equity(reference), "final equity differs");
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let Some(file) = price_file() else { return };
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("reference");
    let crashed = work.path().join("crashed");
    let log = work.path().join("neolight.log");
    run_to_end(&file, &reference, "max", &log);

    let seed: u64 = std::env::var("NEOLIGHT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash test seed {seed} (set NEOLIGHT_CRASH_SEED={seed} to repeat these kill moments)");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut kills = 0;
    let mut finished_early = 0;
    while kills < KILLS {
        let mut child = spawn(&file, &crashed, "400", &log);
        let delay = Duration::from_millis(rng.gen_range(150..1200));
        let started = Instant::now();
        let mut exited = None;
        while started.elapsed() < delay {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match exited {
            Some(status) => {
                assert!(status.success(), "run exited with {status} before its kill; log:\n{}", std::fs::read_to_string(&log).unwrap());
                finished_early += 1;
                assert!(finished_early < 50, "the replay keeps finishing before the kill moment");
            }
            None => {
                child.kill().expect("SIGKILL is delivered");
                child.wait().unwrap();
                kills += 1;
            }
        }
        check_mirrors(&crashed, kills);
    }
    eprintln!("{kills} kills, {finished_early} runs finished before their kill moment");

    run_to_end(&file, &crashed, "400", &log);
    check_mirrors(&crashed, kills + 1);
    assert_same_outcome(&reference, &crashed);
}

/// Runs a paced replay until it has written some fills, kills it and lets `corrupt` damage the
/// sled directory. Then it finishes the replay and returns the reference and crashed directories.
fn crash_and_corrupt(corrupt: impl Fn(&Path)) -> Option<(tempfile::TempDir, PathBuf, PathBuf, String)> {
    let file = price_file()?;
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("reference");
    let crashed = work.path().join("crashed");
    let log = work.path().join("neolight.log");
    run_to_end(&file, &reference, "max", &log);

    let mut child = spawn(&file, &crashed, "1000", &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while complete_rows(&crashed.join("state/fills.csv")).len() < 10 {
        assert!(Instant::now() < deadline, "no fills after 30 s; log:\n{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    corrupt(&crashed.join("ledger"));

    run_to_end(&file, &crashed, "max", &log);
    let text = std::fs::read_to_string(&log).unwrap();
    check_mirrors(&crashed, 1);
    assert_same_outcome(&reference, &crashed);
    Some((work, reference, crashed, text))
}

#[test]
fn unopenable_sled_is_rebuilt_from_journal() {
    // A directory where sled expects its data file: sled cannot open the store at all.
    let Some((_work, _reference, crashed, log)) = crash_and_corrupt(|ledger| {
        std::fs::remove_file(ledger.join("db")).unwrap();
        std::fs::create_dir(ledger.join("db")).unwrap();
    }) else {
        return;
    };
    let archive: Vec<String> = std::fs::read_dir(crashed.join("archive"))
        .expect("the broken store was moved into archive/")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(archive.iter().any(|name| name.ends_with("sled-unreadable")), "archive holds {archive:?}");
    assert!(log.contains("rebuilding the ledger from state/fills.csv"), "no rebuild warning in log:\n{log}");
}

#[test]
fn garbage_sled_file_recovers_from_journal() {
    // sled 0.34.7 opens a data file of garbage as an empty store; the journal rolls every fill
    // forward into it.
    let Some((_work, _reference, _crashed, log)) = crash_and_corrupt(|ledger| {
        let db = ledger.join("db");
        let mut bytes = std::fs::read(&db).expect("sled data file exists");
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(31).wrapping_add(7);
        }
        std::fs::write(&db, bytes).unwrap();
    }) else {
        return;
    };
    assert!(log.contains("rolling journal fills forward"), "no roll-forward in log:\n{log}");
}
