//! Helpers for the integration tests: start the real binary, read the files it writes and ask
//! its HTTP API, always on 127.0.0.1.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use neolight_actors::persistence::ledger::{Ledger, Snapshot};
use rust_decimal::Decimal;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_neolight");

/// Starting cash every test passes with `--initial-cash`.
pub const INITIAL_CASH: &str = "100000";

pub const FILLS_HEADER: &str = "timestamp,client_order_id,symbol,side,qty,price,fee";
pub const PNL_HEADER: &str = "timestamp,equity,cash,positions_value,realized_pnl,unrealized_pnl,drawdown";

/// Returns `shared/data/prices`, or `None` after printing why the calling test skips.
pub fn prices_dir() -> Option<PathBuf> {
    let root = std::env::var_os("NEOLIGHT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")));
    let prices = root.join("prices");
    if prices.is_dir() {
        Some(prices)
    } else {
        eprintln!("skipped: no price files at {} (set NEOLIGHT_SHARED_DATA to the shared data directory)", prices.display());
        None
    }
}

/// Builds `neolight ARGS --data-dir DIR --port 0`, bound to 127.0.0.1, without settings
/// inherited from the environment of the test run.
pub fn neolight(args: &[&str], data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data-dir").arg(data_dir).args(["--port", "0"]);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let fixed = ["PORT", "REQUIRE_AUTH", "TRADING_MODE", "RENDER_MODE", "RUST_LOG"];
        if name.starts_with("NEOLIGHT_") || fixed.contains(&name.as_str()) {
            cmd.env_remove(&name);
        }
    }
    cmd.env("NEOLIGHT_BIND", "127.0.0.1").env("NO_COLOR", "1").env("RUST_LOG", "info");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Text a child writes to one pipe, collected by a thread as it arrives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn follow(&self, mut pipe: impl Read + Send + 'static) -> JoinHandle<()> {
        let sink = self.0.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A running `neolight` process, killed on drop if it is still running.
pub struct Proc {
    child: Child,
    stdout: Captured,
    stderr: Captured,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// How a finished process ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let readers = vec![
            stdout.follow(child.stdout.take().expect("stdout is piped")),
            stderr.follow(child.stderr.take().expect("stderr is piped")),
        ];
        Proc { child, stdout, stderr, readers, status: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Returns the exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `limit` for the exit. Kills the process and panics when it takes longer.
    pub fn finish(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.try_status() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("neolight did not exit within {limit:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Finished { status, stdout: self.stdout.text(), stderr: self.stderr.text() }
    }

    /// Sends a signal by name (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{name} {} failed: {status}", self.pid());
    }

    /// Waits until stderr announces the HTTP address and returns its port.
    pub fn wait_listening(&mut self, limit: Duration) -> u16 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(port) = listening_port(&self.stderr()) {
                return port;
            }
            if let Some(status) = self.try_status() {
                std::thread::sleep(Duration::from_millis(50));
                panic!("neolight exited ({status}) before listening; stderr:\n{}", self.stderr());
            }
            if Instant::now() >= deadline {
                panic!("neolight did not print `listening on` within {limit:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to its exit, within `limit`.
pub fn run(cmd: Command, limit: Duration) -> Finished {
    Proc::spawn(cmd).finish(limit)
}

/// Parses the port of the `listening on http://127.0.0.1:PORT` line.
pub fn listening_port(stderr: &str) -> Option<u16> {
    let marker = "listening on http://127.0.0.1:";
    let rest = &stderr[stderr.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Calls `probe` every 50 ms until it returns `Some`, for at most `limit`.
pub fn poll<T>(limit: Duration, condition: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {condition}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends GET `path` to 127.0.0.1:`port` and returns the status and the JSON body (`Null` when
/// the body is not JSON).
pub fn get(port: u16, path: &str) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let response = match ureq::get(&url).timeout(Duration::from_secs(5)).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("GET {url}: {err}"),
    };
    let status = response.status();
    let body = response.into_string().unwrap_or_else(|e| panic!("GET {url}: cannot read the body: {e}"));
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Parses the text of a JSON number into an exact decimal.
pub fn json_decimal(value: &Value, label: &str) -> Decimal {
    match value {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .unwrap_or_else(|e| panic!("{label}: {n} is not a decimal: {e}")),
        other => panic!("{label} is not a JSON number: {other}"),
    }
}

pub fn cents_apart(a: Decimal, b: Decimal) -> bool {
    (a - b).abs() >= Decimal::new(1, 2)
}

fn decimal(text: &str, label: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|e| panic!("{label}: {text:?} is not a decimal: {e}"))
}

fn rfc3339(text: &str, label: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{label}: {text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

#[derive(Debug, Clone)]
pub struct FillRow {
    pub line: usize,
    pub timestamp: DateTime<Utc>,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
}

#[derive(Debug, Clone)]
pub struct PnlRow {
    pub line: usize,
    pub timestamp: DateTime<Utc>,
    pub equity: Decimal,
    pub cash: Decimal,
    pub positions_value: Decimal,
}

pub fn fills_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state").join("fills.csv")
}

pub fn pnl_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state").join("pnl_history.csv")
}

/// Counts the complete rows (ending in a newline) below `path`'s header, 0 when the file does
/// not exist yet.
pub fn complete_rows(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.matches('\n').count().saturating_sub(1)
}

/// Reads the rows of a CSV mirror after checking its header, each with its 1-based line.
fn mirror_rows(path: &Path, header: &str) -> Vec<(usize, csv::StringRecord)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(first, header, "header of {}", path.display());
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| {
            let record = r.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let line = record.position().map_or(0, |p| p.line() as usize);
            (line, record)
        })
        .collect()
}

/// Reads every row of `state/fills.csv` with exact decimals.
pub fn read_fills(data_dir: &Path) -> Vec<FillRow> {
    let path = fills_path(data_dir);
    mirror_rows(&path, FILLS_HEADER)
        .into_iter()
        .map(|(line, r)| {
            let at = format!("{}:{line}", path.display());
            FillRow {
                line,
                timestamp: rfc3339(&r[0], &at),
                client_order_id: r[1].to_string(),
                symbol: r[2].to_string(),
                side: r[3].to_string(),
                qty: decimal(&r[4], &at),
                price: decimal(&r[5], &at),
                fee: decimal(&r[6], &at),
            }
        })
        .collect()
}

/// Reads every row of `state/pnl_history.csv` with exact decimals.
pub fn read_pnl(data_dir: &Path) -> Vec<PnlRow> {
    let path = pnl_path(data_dir);
    mirror_rows(&path, PNL_HEADER)
        .into_iter()
        .map(|(line, r)| {
            let at = format!("{}:{line}", path.display());
            PnlRow {
                line,
                timestamp: rfc3339(&r[0], &at),
                equity: decimal(&r[1], &at),
                cash: decimal(&r[2], &at),
                positions_value: decimal(&r[3], &at),
            }
        })
        .collect()
}

/// Cash and quantities implied by a list of fills.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    pub cash: Decimal,
    pub positions: BTreeMap<String, Decimal>,
}

pub fn book_from_fills(initial_cash: &str, fills: &[FillRow]) -> Book {
    let mut cash = decimal(initial_cash, "initial cash");
    let mut positions: BTreeMap<String, Decimal> = BTreeMap::new();
    for fill in fills {
        let notional = fill.qty * fill.price;
        let qty = positions.entry(fill.symbol.clone()).or_default();
        match fill.side.as_str() {
            "buy" => {
                cash -= notional + fill.fee;
                *qty += fill.qty;
            }
            "sell" => {
                cash += notional - fill.fee;
                *qty -= fill.qty;
            }
            other => panic!("fills.csv line {}: side {other:?} is neither buy nor sell", fill.line),
        }
    }
    positions.retain(|_, qty| !qty.is_zero());
    Book { cash, positions }
}

/// Asserts the fills-journal rules: timestamps never decrease, each client order id once.
pub fn check_fill_order(fills: &[FillRow]) {
    for pair in fills.windows(2) {
        assert!(
            pair[1].timestamp >= pair[0].timestamp,
            "fills.csv line {} at {} is earlier than line {} at {}",
            pair[1].line,
            pair[1].timestamp,
            pair[0].line,
            pair[0].timestamp
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for fill in fills {
        if let Some(first) = seen.insert(&fill.client_order_id, fill.line) {
            panic!("client_order_id {} appears on fills.csv lines {first} and {}", fill.client_order_id, fill.line);
        }
    }
}

/// Asserts that PnL history timestamps strictly increase.
pub fn check_pnl_order(rows: &[PnlRow]) {
    for pair in rows.windows(2) {
        assert!(
            pair[1].timestamp > pair[0].timestamp,
            "pnl_history.csv line {} at {} does not come after line {} at {}",
            pair[1].line,
            pair[1].timestamp,
            pair[0].line,
            pair[0].timestamp
        );
    }
}

/// Reads the last snapshot and counts the ledger records. Call it only after the process has
/// exited, because sled locks its directory.
pub fn read_ledger(data_dir: &Path) -> (Option<Snapshot>, usize) {
    let path = data_dir.join("ledger");
    let ledger = Ledger::open(&path).unwrap_or_else(|e| panic!("cannot open the ledger at {}: {e}", path.display()));
    let contents = ledger.read_all().unwrap_or_else(|e| panic!("cannot read the ledger at {}: {e}", path.display()));
    (contents.last_snapshot, contents.records.len())
}

/// Returns the snapshot's quantities by symbol, without zero positions.
pub fn snapshot_positions(snapshot: &Snapshot) -> BTreeMap<String, Decimal> {
    snapshot.positions.iter().filter(|(_, q)| !q.is_zero()).map(|(s, q)| (s.as_str().to_string(), *q)).collect()
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON ({e}):\n{text}", path.display()))
}

/// Reads every file below `dir` with its bytes, to show that a run changed nothing.
pub fn file_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.insert(path.strip_prefix(dir).unwrap_or(&path).to_path_buf(), bytes);
            }
        }
    }
    out
}

/// Keeps the lines of a log worth showing in a failure message: warnings, errors and plain output.
pub fn notable(stderr: &str) -> String {
    stderr.lines().filter(|l| !l.contains(" INFO ")).collect::<Vec<_>>().join("\n")
}

/// Port 9 (discard) has no listener on the test machines, so a provider aimed there fails to
/// connect at once.
pub const CLOSED_PORT: &str = "http://127.0.0.1:9";

/// Provider ids and the variables that override their base URLs.
pub const BASE_URLS: [(&str, &str); 6] = [
    ("alpaca", "NEOLIGHT_ALPACA_DATA_BASE_URL"),
    ("finnhub", "NEOLIGHT_FINNHUB_BASE_URL"),
    ("twelvedata", "NEOLIGHT_TWELVEDATA_BASE_URL"),
    ("alphavantage", "NEOLIGHT_ALPHAVANTAGE_BASE_URL"),
    ("rapidapi", "NEOLIGHT_RAPIDAPI_BASE_URL"),
    ("yahoo", "NEOLIGHT_YAHOO_BASE_URL"),
];

pub const CREDENTIALS: [&str; 6] =
    ["APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "FINNHUB_API_KEY", "TWELVEDATA_API_KEY", "ALPHAVANTAGE_API_KEY", "RAPIDAPI_KEY"];

/// Dummy credentials for every provider, for runs without a network.
pub const DUMMY_KEYS: [(&str, &str); 6] = [
    ("APCA_API_KEY_ID", "dummy-alpaca-id"),
    ("APCA_API_SECRET_KEY", "dummy-alpaca-secret"),
    ("FINNHUB_API_KEY", "dummy-finnhub"),
    ("TWELVEDATA_API_KEY", "dummy-twelvedata"),
    ("ALPHAVANTAGE_API_KEY", "dummy-alphavantage"),
    ("RAPIDAPI_KEY", "dummy-rapidapi"),
];

/// Points every provider at 127.0.0.1: those named in `urls` at the given URL, the others at
/// the closed port. Drops credentials inherited from the test's environment and sets `keys`.
pub fn local_providers(cmd: &mut Command, urls: &[(&str, String)], keys: &[(&str, &str)]) {
    for (name, variable) in BASE_URLS {
        let url = urls.iter().find(|(p, _)| *p == name).map_or(CLOSED_PORT, |(_, u)| u.as_str());
        assert!(url.starts_with("http://127.0.0.1:"), "{name} base URL {url} is not on 127.0.0.1");
        cmd.env(variable, url);
    }
    for variable in CREDENTIALS {
        cmd.env_remove(variable);
    }
    for (name, value) in keys {
        cmd.env(name, value);
    }
}

/// Provider response samples: `$NEOLIGHT_SHARED_FIXTURES`, else `shared/fixtures/providers`
/// beside the repository.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("NEOLIGHT_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/providers")))
}
