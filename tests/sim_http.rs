//! The mesh on its simulated market, seen through its HTTP API and its files, stopped with
//! SIGTERM or SIGINT and restarted on the same data directory.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::*;
use rust_decimal::Decimal;
use serde_json::Value;

/// Builds the sim flags. Short windows make a sim with a 50ms tick trade within a second or two.
fn sim_args(tick: &str) -> Vec<&str> {
    vec!["--tick", tick, "--mark-interval", "200ms", "--fast-window", "2", "--slow-window", "5", "--initial-cash", INITIAL_CASH]
}
const LISTEN_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(10);

const AGENTS: [&str; 5] = ["quote_service", "smart_trader", "execution_router", "intelligence_orchestrator", "persistence"];

fn start(args: &[&str], data: &Path) -> (Proc, u16) {
    let mut proc = Proc::spawn(neolight(args, data));
    let port = proc.wait_listening(LISTEN_LIMIT);
    (proc, port)
}

fn wait_for_fills(data: &Path) -> usize {
    let path = fills_path(data);
    poll(Duration::from_secs(20), "a row in state/fills.csv", || Some(complete_rows(&path)).filter(|n| *n > 0))
}

/// Sends `signal` and asserts exit code 0 within `STOP_LIMIT`.
fn stop(proc: Proc, signal: &str) {
    proc.signal(signal);
    let done = proc.finish(STOP_LIMIT);
    assert_eq!(done.code(), Some(0), "exit after SIG{signal}: {}; stderr:\n{}", done.status, notable(&done.stderr));
}

fn assert_numbers(object: &Value, keys: &[&str], what: &str) {
    for key in keys {
        assert!(object[key].is_number(), "{what}.{key} is not a JSON number: {object}");
    }
}

/// Checks that the final snapshot matches the cash and positions rebuilt from the journal,
/// and returns them.
fn check_snapshot(data: &Path) -> Book {
    let fills = read_fills(data);
    check_fill_order(&fills);
    check_pnl_order(&read_pnl(data));
    let book = book_from_fills(INITIAL_CASH, &fills);
    let (snapshot, _) = read_ledger(data);
    let snapshot = snapshot.expect("the ledger holds a final snapshot");
    assert_eq!(snapshot.cash, book.cash, "final snapshot cash vs cash rebuilt from {} fills", fills.len());
    assert_eq!(snapshot_positions(&snapshot), book.positions, "final snapshot positions vs positions rebuilt from fills");
    book
}

#[test]
fn sim_api_shows_live_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (proc, port) = start(&sim_args("50ms"), &data);

    wait_for_fills(&data);
    let pnl = pnl_path(&data);
    let rows = complete_rows(&pnl);
    poll(Duration::from_secs(10), "pnl_history.csv to grow", || (complete_rows(&pnl) > rows).then_some(()));

    let (status, health) = get(port, "/health");
    assert_eq!(status, 200, "/health: {health}");
    assert_eq!(health["status"], "ok", "/health: {health}");
    assert_eq!(health["mode"], "paper", "/health: {health}");
    assert_eq!(health["market"], "sim", "/health: {health}");
    assert_eq!(health["offline"], false, "/health: {health}");
    assert_eq!(health["agents"]["total"], 5, "/health: {health}");

    let (status, agents) = get(port, "/agents");
    assert_eq!(status, 200, "/agents: {agents}");
    let list = agents.as_array().unwrap_or_else(|| panic!("/agents is not an array: {agents}"));
    let names: BTreeSet<&str> = list.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, BTreeSet::from(AGENTS), "/agents names");
    let priorities: BTreeSet<u64> = list.iter().filter_map(|a| a["priority"].as_u64()).collect();
    assert_eq!(priorities, BTreeSet::from([1, 2, 3, 4, 5]), "/agents priorities: {agents}");
    for agent in list {
        assert_eq!(agent["state"], "running", "/agents entry {agent}");
    }

    let (status, missing) = get(port, "/agents/nope");
    assert_eq!(status, 404, "/agents/nope: {missing}");
    assert!(missing["error"].is_string(), "/agents/nope has no error text: {missing}");

    let portfolio = poll(Duration::from_secs(10), "/portfolio with a position", || {
        let (status, body) = get(port, "/portfolio");
        (status == 200 && body["positions"].as_array().is_some_and(|p| !p.is_empty())).then_some(body)
    });
    assert_numbers(&portfolio, &["cash", "equity", "realized_pnl", "unrealized_pnl"], "/portfolio");
    assert!(portfolio["trading_state"].is_string(), "/portfolio trading_state: {portfolio}");
    for position in portfolio["positions"].as_array().unwrap() {
        assert!(position["symbol"].is_string(), "/portfolio position symbol: {position}");
        assert_numbers(position, &["qty", "avg_price", "market_price", "price_age_ms", "unrealized_pnl"], "/portfolio position");
    }

    let (status, brain) = get(port, "/brain");
    assert_eq!(status, 200, "/brain: {brain}");
    assert_numbers(&brain, &["risk_scaler", "confidence"], "/brain");

    let (status, quotes) = get(port, "/quotes");
    assert_eq!(status, 200, "/quotes: {quotes}");
    let quotes = quotes.as_array().unwrap_or_else(|| panic!("/quotes is not an array: {quotes}"));
    assert!(!quotes.is_empty(), "/quotes is empty");
    for quote in quotes {
        assert_eq!(quote["source"], "sim", "/quotes entry {quote}");
        assert_eq!(quote["freshness"], "fresh", "/quotes entry {quote}");
    }

    stop(proc, "TERM");
    check_snapshot(&data);
}

#[test]
fn restart_continues_from_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (proc, _) = start(&sim_args("50ms"), &data);
    wait_for_fills(&data);
    stop(proc, "INT");
    let journal = std::fs::read(fills_path(&data)).unwrap();
    let before = check_snapshot(&data);

    // One tick at start and no more for an hour, so nothing trades while we look.
    let (proc, port) = start(&sim_args("1h"), &data);
    let portfolio = poll(Duration::from_secs(15), "/portfolio after the restart", || {
        let (status, body) = get(port, "/portfolio");
        (status == 200).then_some(body)
    });
    let journal_now = std::fs::read(fills_path(&data)).unwrap();
    assert!(journal_now.starts_with(&journal), "fills.csv lost rows on restart: {} -> {} bytes", journal.len(), journal_now.len());

    // Orders left open at the stop may fill on the first tick, and those fills are in the journal too.
    let now = book_from_fills(INITIAL_CASH, &read_fills(&data));
    let cash = json_decimal(&portfolio["cash"], "/portfolio cash");
    assert!(
        !cents_apart(cash, now.cash),
        "/portfolio cash {cash} after restart vs {} rebuilt from fills.csv (final snapshot before restart: {})",
        now.cash,
        before.cash
    );
    let positions: BTreeMap<String, Decimal> = portfolio["positions"]
        .as_array()
        .unwrap_or_else(|| panic!("/portfolio positions: {portfolio}"))
        .iter()
        .map(|p| (p["symbol"].as_str().unwrap_or_default().to_string(), json_decimal(&p["qty"], "/portfolio qty")))
        .collect();
    assert_eq!(
        positions.keys().collect::<Vec<_>>(),
        now.positions.keys().collect::<Vec<_>>(),
        "/portfolio symbols after restart vs fills.csv"
    );
    for (symbol, qty) in &now.positions {
        let reported = positions[symbol];
        assert!((reported - qty).abs() < Decimal::new(1, 6), "/portfolio {symbol} qty {reported} vs {qty} rebuilt from fills.csv");
    }

    stop(proc, "TERM");
    check_snapshot(&data);
}
