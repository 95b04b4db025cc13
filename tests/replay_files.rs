//! Replays of the shared price files, checked the way a user would check them: the books
//! rebuilt from `state/fills.csv` must match the snapshot, the summary and the PnL history.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use common::*;
use rust_decimal::{Decimal, RoundingStrategy};

const RUN_LIMIT: Duration = Duration::from_secs(45);

/// One `--replay [SYMBOL=]PATH`.
struct Input {
    symbol: Option<&'static str>,
    path: PathBuf,
}

impl Input {
    fn new(prices: &Path, symbol: Option<&'static str>, relative: &str) -> Input {
        Input { symbol, path: prices.join(relative) }
    }

    fn arg(&self) -> String {
        match self.symbol {
            Some(symbol) => format!("{symbol}={}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

fn replay(inputs: &[Input], data_dir: &Path, extra: &[&str]) -> Finished {
    let mut args: Vec<String> = vec!["run".into(), "--until-end".into(), "--initial-cash".into(), INITIAL_CASH.into()];
    for input in inputs {
        args.push("--replay".into());
        args.push(input.arg());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(neolight(&args, data_dir), RUN_LIMIT)
}

fn assert_exit(finished: &Finished, code: i32) {
    assert_eq!(finished.code(), Some(code), "exit status {}; stderr:\n{}", finished.status, notable(&finished.stderr));
}

/// Last close of each symbol in a price file, scaled to the adjusted close when there is one.
/// Rows with a missing or non-positive price are left out, as the product skips them.
fn last_closes(input: &Input) -> BTreeMap<String, Decimal> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(&input.path).expect("open price file");
    let header: Vec<String> = reader.headers().expect("header").iter().map(|h| h.trim().to_lowercase()).collect();
    let column = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
    let date = column(&["date", "datetime", "time", "timestamp"]).expect("date column");
    let prices: Vec<usize> = ["open", "high", "low", "close"].iter().map(|n| column(&[n]).expect("price column")).collect();
    let close = prices[3];
    let adj = column(&["adj close", "adj_close", "adjclose", "adjusted close"]);
    let ticker = column(&["ticker", "symbol"]);
    let stem = input.path.file_stem().unwrap().to_string_lossy().to_uppercase();

    // Date text and close of the latest row per symbol. These files use ISO dates, which sort as text.
    let mut last: BTreeMap<String, (String, Decimal)> = BTreeMap::new();
    for record in reader.records() {
        let record = record.expect("price row");
        let positive = |i: usize| Decimal::from_str(record.get(i).unwrap_or("").trim()).ok().filter(|d| *d > Decimal::ZERO);
        if prices.iter().any(|&i| positive(i).is_none()) {
            continue;
        }
        let price = match adj {
            Some(a) => match positive(a) {
                Some(adj) => adj.round_dp_with_strategy(8, RoundingStrategy::MidpointNearestEven),
                None => continue,
            },
            None => positive(close).unwrap(),
        };
        let symbol = match (input.symbol, ticker) {
            (Some(s), _) => s.to_string(),
            (None, Some(t)) => record[t].trim().to_uppercase(),
            (None, None) => stem.clone(),
        };
        let day = record[date].trim().to_string();
        let entry = last.entry(symbol).or_insert_with(|| (day.clone(), price));
        if day >= entry.0 {
            *entry = (day, price);
        }
    }
    last.into_iter().map(|(s, (_, p))| (s, p)).collect()
}

/// Rebuilds cash and positions from `state/fills.csv` and compares them with every other
/// account of the run: the final snapshot, `last_run.json` and the last PnL history row.
fn check_books(data_dir: &Path, inputs: &[Input]) {
    let fills = read_fills(data_dir);
    assert!(!fills.is_empty(), "the replay made no fill in {}", fills_path(data_dir).display());
    check_fill_order(&fills);
    let book = book_from_fills(INITIAL_CASH, &fills);

    let mut closes = BTreeMap::new();
    for input in inputs {
        closes.extend(last_closes(input));
    }
    let mut positions_value = Decimal::ZERO;
    for (symbol, qty) in &book.positions {
        assert!(*qty > Decimal::ZERO, "fills leave {symbol} at {qty}, a short position in a long-only run");
        let close = closes.get(symbol).unwrap_or_else(|| panic!("fills hold {symbol}, which is in no input file"));
        positions_value += qty * close;
    }
    let equity = book.cash + positions_value;

    let (snapshot, _) = read_ledger(data_dir);
    let snapshot = snapshot.expect("the ledger holds a final snapshot");
    assert_eq!(snapshot.cash, book.cash, "snapshot cash vs cash rebuilt from fills.csv");
    assert_eq!(snapshot_positions(&snapshot), book.positions, "snapshot positions vs positions rebuilt from fills.csv");
    assert!(!cents_apart(snapshot.equity, equity), "snapshot equity {} vs rebuilt equity {equity}", snapshot.equity);

    let last_run = read_json(&data_dir.join("runtime").join("last_run.json"));
    let final_equity = json_decimal(&last_run["final_equity"], "last_run.json final_equity");
    assert!(!cents_apart(final_equity, equity), "last_run.json final_equity {final_equity} vs rebuilt equity {equity}");

    let pnl = read_pnl(data_dir);
    check_pnl_order(&pnl);
    let last = pnl.last().expect("pnl_history.csv has rows");
    assert_eq!(last.cash, book.cash, "cash of the last pnl_history.csv row (line {}) vs rebuilt cash", last.line);
    assert_eq!(
        last.equity,
        last.cash + last.positions_value,
        "pnl_history.csv line {}: equity is not cash + positions_value",
        last.line
    );
    assert!(!cents_apart(last.equity, equity), "equity of the last pnl_history.csv row {} vs rebuilt equity {equity}", last.equity);

    let brain = read_json(&data_dir.join("runtime").join("atlas_brain.json"));
    assert!(brain["risk_scaler"].is_number(), "atlas_brain.json risk_scaler: {brain}");
    assert!(brain["confidence"].is_number(), "atlas_brain.json confidence: {brain}");
    let updated_at = brain["updated_at"].as_str().unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(updated_at).is_ok(), "atlas_brain.json updated_at {updated_at:?} is not RFC 3339");
}

#[test]
fn mplfinance_trio_adds_up() {
    let Some(prices) = prices_dir() else { return };
    let inputs = [
        Input::new(&prices, Some("SPY"), "mplfinance/yahoofinance-SPY-20080101-20180101.csv"),
        Input::new(&prices, Some("AAPL"), "mplfinance/yahoofinance-AAPL-20040819-20180120.csv"),
        Input::new(&prices, Some("GOOG"), "mplfinance/yahoofinance-GOOG-20040819-20180120.csv"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_exit(&replay(&inputs, &data, &[]), 0);
    check_books(&data, &inputs);
}

#[test]
fn bokeh_long_file_adds_up() {
    let Some(prices) = prices_dir() else { return };
    let inputs = [Input::new(&prices, None, "bokeh-sampledata/stocks.csv")];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_exit(&replay(&inputs, &data, &[]), 0);
    check_books(&data, &inputs);
}

#[test]
fn pandas_ta_spy_adds_up() {
    let Some(prices) = prices_dir() else { return };
    let inputs = [Input::new(&prices, None, "pandas-ta/SPY_D.csv")];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_exit(&replay(&inputs, &data, &[]), 0);
    check_books(&data, &inputs);
}

#[test]
fn btc_null_rows_warned_once() {
    let Some(prices) = prices_dir() else { return };
    let inputs = [Input::new(&prices, None, "crypto/yahoo-btc-usd/BTC-USD.csv")];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let finished = replay(&inputs, &data, &[]);
    assert_exit(&finished, 0);

    let warnings: Vec<&str> = finished.stderr.lines().filter(|l| l.contains("WARN") && l.contains("null")).collect();
    assert_eq!(warnings.len(), 1, "warnings about null rows:\n{}", warnings.join("\n"));
    let warning = warnings[0];
    assert!(warning.contains("2020-04-17"), "the warning does not name 2020-04-17: {warning}");
    let words: Vec<&str> = warning.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    assert!(words.contains(&"4"), "the warning does not give the count 4: {warning}");
    check_books(&data, &inputs);
}

#[test]
fn rerun_writes_nothing_new() {
    let Some(prices) = prices_dir() else { return };
    let inputs = [Input::new(&prices, None, "crypto/yahoo-btc-usd/BTC-USD.csv")];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let last_run_path = data.join("runtime").join("last_run.json");

    assert_exit(&replay(&inputs, &data, &[]), 0);
    let fills = std::fs::read(fills_path(&data)).unwrap();
    let pnl = std::fs::read(pnl_path(&data)).unwrap();
    let (_, records) = read_ledger(&data);
    let equity = read_json(&last_run_path)["final_equity"].clone();

    assert_exit(&replay(&inputs, &data, &[]), 0);
    let fills_again = std::fs::read(fills_path(&data)).unwrap();
    let pnl_again = std::fs::read(pnl_path(&data)).unwrap();
    assert!(fills_again == fills, "fills.csv changed on the rerun: {} -> {} bytes", fills.len(), fills_again.len());
    assert!(pnl_again == pnl, "pnl_history.csv changed on the rerun: {} -> {} bytes", pnl.len(), pnl_again.len());
    let (_, records_again) = read_ledger(&data);
    assert_eq!(records_again, records, "ledger records after the rerun vs after the first run");
    let equity_again = read_json(&last_run_path)["final_equity"].clone();
    assert_eq!(equity_again, equity, "last_run.json final_equity after the rerun vs after the first run");
    check_books(&data, &inputs);
}

#[test]
fn other_inputs_rejected_until_reset() {
    let Some(prices) = prices_dir() else { return };
    let first = [Input::new(&prices, None, "crypto/yahoo-btc-usd/BTC-USD.csv")];
    let second = [Input::new(&prices, None, "pandas-ta/SPY_D.csv")];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_exit(&replay(&first, &data, &[]), 0);
    let before = file_tree(&data);

    let rejected = replay(&second, &data, &[]);
    assert_exit(&rejected, 2);
    for needle in ["BTC-USD.csv", "SPY_D.csv", "--reset-state"] {
        assert!(rejected.stderr.contains(needle), "the rejection does not mention {needle}:\n{}", notable(&rejected.stderr));
    }
    let after = file_tree(&data);
    let changed: Vec<_> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(changed.is_empty(), "the rejected run changed {changed:?}");
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(added.is_empty(), "the rejected run added {added:?}");

    assert_exit(&replay(&second, &data, &["--reset-state"]), 0);
    let archive = data.join("archive");
    let moved: Vec<PathBuf> = std::fs::read_dir(&archive)
        .unwrap_or_else(|e| panic!("no {} after --reset-state: {e}", archive.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(moved.len(), 1, "entries in archive/: {moved:?}");
    let old_fills = before.get(Path::new("state/fills.csv")).expect("first run wrote fills.csv");
    let archived_fills = std::fs::read(moved[0].join("state").join("fills.csv")).unwrap_or_default();
    assert!(&archived_fills == old_fills, "archived fills.csv ({} bytes) is not the first run's ({} bytes)", archived_fills.len(), old_fills.len());
    let old_identity = before.get(Path::new("identity.json")).expect("first run wrote identity.json");
    assert_eq!(&std::fs::read(moved[0].join("identity.json")).unwrap_or_default(), old_identity, "archived identity.json");
    check_books(&data, &second);
}
