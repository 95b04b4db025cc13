//! `neolight quote SYMBOL... [--json]` against wiremock on 127.0.0.1, beside a running mesh,
//! and with no network at all (`unshare -n`).
//!
//! Every run outside a network namespace has all six provider base URLs on 127.0.0.1
//! (`local_providers`), pointing at the wiremock server or at the closed port 9.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};


/// Documented values of `attempts[].outcome`.
const OUTCOMES: [&str; 10] = [
    "quote",
    "unknown_symbol",
    "rate_limited",
    "auth_error",
    "transient",
    "malformed",
    "timeout",
    "skipped_open",
    "skipped_no_permit",
    "skipped_no_credentials",
];

/// Documented keys of one entry of `quotes`, and of one attempt.
const QUOTE_KEYS: [&str; 9] = ["symbol", "price", "bid", "ask", "source", "freshness", "age_ms", "exchange_time", "attempts"];
const ATTEMPT_KEYS: [&str; 4] = ["provider", "outcome", "detail", "elapsed_ms"];

/// Removes settings inherited from the test's environment.
fn clean_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let fixed = ["PORT", "REQUIRE_AUTH", "TRADING_MODE", "RENDER_MODE", "RUST_LOG"];
        if name.starts_with("NEOLIGHT_") || fixed.contains(&name.as_str()) || CREDENTIALS.contains(&name.as_str()) {
            cmd.env_remove(&name);
        }
    }
    cmd.env("NO_COLOR", "1").env("RUST_LOG", "info");
}

/// Builds `neolight quote ARGS` with every provider local.
fn quote(args: &[&str], urls: &[(&str, String)], keys: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("quote").args(args);
    clean_env(&mut cmd);
    local_providers(&mut cmd, urls, keys);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn run_quote(cmd: Command) -> Finished {
    run(cmd, Duration::from_secs(30))
}

/// Parses stdout as exactly one JSON document.
fn one_document(stdout: &str) -> Value {
    let mut values = serde_json::Deserializer::from_str(stdout).into_iter::<Value>();
    let first = match values.next() {
        Some(Ok(value)) => value,
        other => panic!("stdout does not start with a JSON document ({other:?}):\n{stdout}"),
    };
    let rest: Vec<_> = values.collect();
    assert!(rest.is_empty(), "stdout holds more than one JSON document ({} more):\n{stdout}", rest.len());
    first
}

fn entry<'a>(doc: &'a Value, symbol: &str) -> &'a Value {
    doc["quotes"]
        .as_array()
        .and_then(|list| list.iter().find(|q| q["symbol"] == symbol))
        .unwrap_or_else(|| panic!("no quote for {symbol} in {doc}"))
}

fn attempts(quote: &Value) -> &Vec<Value> {
    quote["attempts"].as_array().unwrap_or_else(|| panic!("attempts is not an array: {quote}"))
}

fn outcome_of<'a>(quote: &'a Value, provider: &str) -> &'a str {
    attempts(quote)
        .iter()
        .find(|a| a["provider"] == provider)
        .and_then(|a| a["outcome"].as_str())
        .unwrap_or_else(|| panic!("no attempt of {provider}: {quote}"))
}

fn keys_of(object: &Value) -> BTreeSet<String> {
    object.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Checks the documented keys and their JSON types. `json_has_only_documented_keys` checks
/// for extra keys.
fn check_shape(quote: &Value) {
    for key in QUOTE_KEYS {
        assert!(quote.get(key).is_some(), "quote entry lacks {key:?}: {quote}");
    }
    assert!(quote["symbol"].is_string(), "symbol is not a string: {quote}");
    let priced = quote["price"].is_number();
    assert!(priced || quote["price"].is_null(), "price is neither a number nor null: {quote}");
    for key in ["bid", "ask"] {
        assert!(quote[key].is_number() || quote[key].is_null(), "{key} is neither a number nor null: {quote}");
    }
    if priced {
        assert!(quote["source"].is_string(), "a priced quote has no source: {quote}");
        assert!(quote["freshness"].is_string(), "a priced quote has no freshness: {quote}");
        assert!(quote["age_ms"].is_u64(), "age_ms of a priced quote is not a count: {quote}");
    }
    let time = &quote["exchange_time"];
    assert!(
        time.is_null() || time.as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "exchange_time is neither null nor RFC 3339: {quote}"
    );
    for attempt in attempts(quote) {
        for key in ATTEMPT_KEYS {
            assert!(attempt.get(key).is_some(), "attempt lacks {key:?}: {attempt}");
        }
        assert_eq!(keys_of(attempt), ATTEMPT_KEYS.iter().map(|k| k.to_string()).collect(), "keys of an attempt: {attempt}");
        assert!(attempt["provider"].is_string(), "provider is not a string: {attempt}");
        assert!(attempt["detail"].is_string(), "detail is not a string: {attempt}");
        assert!(attempt["elapsed_ms"].is_u64(), "elapsed_ms is not a count: {attempt}");
        let outcome = attempt["outcome"].as_str().unwrap_or_default();
        assert!(OUTCOMES.contains(&outcome), "outcome {outcome:?} is not a documented outcome: {attempt}");
    }
}

fn fixture(name: &str) -> Value {
    let file = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// Starts a wiremock server for Finnhub's `/quote` below `/finnhub`. It returns AAPL at 187.43,
/// MSFT at 415.5 and Finnhub's all-zero body for any other symbol.
fn finnhub_server(rt: &tokio::runtime::Runtime) -> (MockServer, String) {
    let server = rt.block_on(MockServer::start());
    let uri = server.uri();
    assert!(uri.starts_with("http://127.0.0.1:"), "wiremock listens on {uri}, not on 127.0.0.1");
    for (symbol, price) in [("AAPL", 187.43), ("MSFT", 415.5)] {
        let mut body = fixture("finnhub.quote.success.json");
        body["c"] = price.into();
        rt.block_on(
            Mock::given(method("GET"))
                .and(path("/finnhub/quote"))
                .and(query_param("symbol", symbol))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .with_priority(1)
                .mount(&server),
        );
    }
    let zeros = serde_json::json!({"c": 0, "d": null, "dp": null, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0});
    rt.block_on(
        Mock::given(path("/finnhub/quote")).respond_with(ResponseTemplate::new(200).set_body_json(zeros)).with_priority(5).mount(&server),
    );
    (server, uri)
}

#[test]
fn json_matches_design_shape() {
    let rt = runtime();
    let (_server, uri) = finnhub_server(&rt);
    let urls = [("finnhub", format!("{uri}/finnhub"))];
    let done = run_quote(quote(&["AAPL", "MSFT", "--json"], &urls, &[("FINNHUB_API_KEY", "dummy-finnhub")]));
    assert_eq!(done.code(), Some(0), "exit code with every symbol priced; stdout:\n{}\nstderr:\n{}", done.stdout, done.stderr);
    let doc = one_document(&done.stdout);
    assert_eq!(keys_of(&doc), BTreeSet::from(["quotes".to_string()]), "top-level keys: {doc}");
    let list = doc["quotes"].as_array().unwrap_or_else(|| panic!("quotes is not an array: {doc}"));
    assert_eq!(list.len(), 2, "one entry per symbol: {doc}");
    for (symbol, price) in [("AAPL", 187.43), ("MSFT", 415.5)] {
        let q = entry(&doc, symbol);
        check_shape(q);
        assert_eq!(q["price"].as_f64(), Some(price), "{symbol} price: {q}");
        assert_eq!(q["source"], "finnhub", "{symbol} source: {q}");
        assert_eq!(q["freshness"], "fresh", "{symbol} freshness of a quote just fetched: {q}");
        assert_eq!(q["exchange_time"], "2024-05-14T15:42:06Z", "{symbol} exchange_time from Finnhub's t: {q}");
        let order: Vec<&str> = attempts(q).iter().filter_map(|a| a["provider"].as_str()).collect();
        assert_eq!(order, ["alpaca", "finnhub"], "{symbol} attempts stop at the first price: {q}");
        assert_eq!(outcome_of(q, "alpaca"), "skipped_no_credentials", "{symbol} alpaca without keys: {q}");
        assert_eq!(outcome_of(q, "finnhub"), "quote", "{symbol} finnhub outcome: {q}");
    }
}

#[test]
fn json_has_only_documented_keys() {
    let rt = runtime();
    let (_server, uri) = finnhub_server(&rt);
    let urls = [("finnhub", format!("{uri}/finnhub"))];
    let done = run_quote(quote(&["AAPL", "ZZZZ", "--json"], &urls, &[("FINNHUB_API_KEY", "dummy-finnhub")]));
    let doc = one_document(&done.stdout);
    let documented: BTreeSet<String> = QUOTE_KEYS.iter().map(|k| k.to_string()).collect();
    for symbol in ["AAPL", "ZZZZ"] {
        let q = entry(&doc, symbol);
        let extra: Vec<String> = keys_of(q).difference(&documented).cloned().collect();
        assert!(extra.is_empty(), "{symbol} entry has undocumented keys {extra:?}: {q}");
    }
}

#[test]
fn unpriced_symbol_exits_one() {
    let rt = runtime();
    let (server, uri) = finnhub_server(&rt);
    rt.block_on(
        Mock::given(path_regex("^/yahoo/v8/finance/chart/"))
            .respond_with(ResponseTemplate::new(404).set_body_json(fixture("yahoo.chart.not_found.json")))
            .mount(&server),
    );
    let urls = [("finnhub", format!("{uri}/finnhub")), ("yahoo", format!("{uri}/yahoo"))];
    let done = run_quote(quote(&["AAPL", "ZZZZ", "--json"], &urls, &[("FINNHUB_API_KEY", "dummy-finnhub")]));
    assert_eq!(done.code(), Some(1), "exit code with one symbol unpriced; stderr:\n{}", done.stderr);
    let doc = one_document(&done.stdout);
    let aapl = entry(&doc, "AAPL");
    check_shape(aapl);
    assert_eq!(aapl["price"].as_f64(), Some(187.43), "AAPL still priced: {aapl}");
    let zzzz = entry(&doc, "ZZZZ");
    check_shape(zzzz);
    assert!(zzzz["price"].is_null(), "ZZZZ price: {zzzz}");
    assert_eq!(outcome_of(zzzz, "finnhub"), "unknown_symbol", "finnhub's all-zero body: {zzzz}");
    assert_eq!(outcome_of(zzzz, "yahoo"), "unknown_symbol", "yahoo's 404: {zzzz}");
}

#[test]
fn outcomes_name_each_failure() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let uri = server.uri();
    assert!(uri.starts_with("http://127.0.0.1:"), "wiremock listens on {uri}");
    let json = |status: u16, file: &str| ResponseTemplate::new(status).set_body_json(fixture(file));
    let mounts = [
        ("^/alpaca/", json(429, "alpaca.rate_limited.429.json")),
        ("^/finnhub/", json(401, "finnhub.auth_error.401_invalid_key.json")),
        ("^/twelvedata/", ResponseTemplate::new(503).set_body_string("Service Unavailable")),
        ("^/alphavantage/", ResponseTemplate::new(200).set_body_raw("<html><body>Maintenance</body></html>", "text/html")),
        ("^/rapidapi/", json(200, "alphavantage.global_quote.success.json").set_delay(Duration::from_secs(3))),
        ("^/yahoo/", json(200, "yahoo.chart.daily_with_adjclose.json")),
    ];
    for (prefix, template) in mounts {
        rt.block_on(Mock::given(path_regex(prefix)).respond_with(template).mount(&server));
    }

    // Rapid API's 3 s delay exceeds the 1 s request timeout.
    let urls: Vec<(&str, String)> = BASE_URLS.iter().map(|(name, _)| (*name, format!("{uri}/{name}"))).collect();
    let done = run_quote(quote(&["AAPL", "--json", "--request-timeout", "1s"], &urls, &DUMMY_KEYS));
    assert_eq!(done.code(), Some(0), "exit code with yahoo returning a quote; stderr:\n{}", done.stderr);

    let doc = one_document(&done.stdout);
    let q = entry(&doc, "AAPL");
    check_shape(q);
    let expected = [
        ("alpaca", "rate_limited"),
        ("finnhub", "auth_error"),
        ("twelvedata", "transient"),
        ("alphavantage", "malformed"),
        ("rapidapi", "timeout"),
        ("yahoo", "quote"),
    ];
    for (provider, outcome) in expected {
        assert_eq!(outcome_of(q, provider), outcome, "{provider} outcome: {q}");
    }
    assert_eq!(q["source"], "yahoo", "source after five failures: {q}");
}

#[test]
fn missing_credentials_are_skipped() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let uri = server.uri();
    assert!(uri.starts_with("http://127.0.0.1:"), "wiremock listens on {uri}");
    rt.block_on(
        Mock::given(path_regex("^/yahoo/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture("yahoo.chart.daily_with_adjclose.json")))
            .mount(&server),
    );
    let done = run_quote(quote(&["AAPL", "--json"], &[("yahoo", format!("{uri}/yahoo"))], &[]));
    assert_eq!(done.code(), Some(0), "exit code with yahoo returning a quote; stderr:\n{}", done.stderr);
    let doc = one_document(&done.stdout);
    let q = entry(&doc, "AAPL");
    check_shape(q);
    for (provider, _) in &BASE_URLS[..5] {
        assert_eq!(outcome_of(q, provider), "skipped_no_credentials", "{provider} without credentials: {q}");
    }
    assert_eq!(outcome_of(q, "yahoo"), "quote", "yahoo needs no credentials: {q}");
    let requests = rt.block_on(server.received_requests()).unwrap_or_default();
    assert_eq!(requests.len(), 1, "requests sent: {:?}", requests.iter().map(|r| r.url.to_string()).collect::<Vec<_>>());
}

#[test]
fn data_dir_is_never_created() {
    let rt = runtime();
    let (_server, uri) = finnhub_server(&rt);
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("must-not-exist").join("data");
    let mut cmd = quote(&["AAPL", "--json"], &[("finnhub", format!("{uri}/finnhub"))], &[("FINNHUB_API_KEY", "dummy-finnhub")]);
    cmd.env("NEOLIGHT_DATA_DIR", &absent);
    let done = run_quote(cmd);
    assert_eq!(done.code(), Some(0), "exit code; stderr:\n{}", done.stderr);
    assert!(!dir.path().join("must-not-exist").exists(), "quote created {}", absent.display());
    let listing: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(listing.is_empty(), "quote wrote into the parent directory: {listing:?}");
}

#[test]
fn works_beside_locked_mesh() {
    let rt = runtime();
    let (_server, uri) = finnhub_server(&rt);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A sim mesh locks `data`. Its provider base URLs are local too, although sim calls none.
    let mut mesh = neolight(&["run", "--market", "sim", "--tick", "100ms"], &data);
    local_providers(&mut mesh, &[], &[]);
    let mut mesh = Proc::spawn(mesh);
    mesh.wait_listening(Duration::from_secs(30));

    let mut cmd = quote(&["AAPL", "--json"], &[("finnhub", format!("{uri}/finnhub"))], &[("FINNHUB_API_KEY", "dummy-finnhub")]);
    cmd.env("NEOLIGHT_DATA_DIR", &data);
    let done = run_quote(cmd);
    assert_eq!(done.code(), Some(0), "quote beside a mesh locking the data dir; stderr:\n{}", done.stderr);
    let doc = one_document(&done.stdout);
    assert_eq!(entry(&doc, "AAPL")["price"].as_f64(), Some(187.43), "AAPL beside the mesh: {doc}");

    assert!(mesh.try_status().is_none(), "the mesh stopped while quote ran; stderr:\n{}", mesh.stderr());
    mesh.signal("TERM");
    let stopped = mesh.finish(Duration::from_secs(10));
    assert_eq!(stopped.code(), Some(0), "mesh exit after SIGTERM; stderr:\n{}", notable(&stopped.stderr));
}

#[test]
fn table_prints_line_per_symbol() {
    let rt = runtime();
    let (_server, uri) = finnhub_server(&rt);
    let done = run_quote(quote(&["AAPL", "MSFT"], &[("finnhub", format!("{uri}/finnhub"))], &[("FINNHUB_API_KEY", "dummy-finnhub")]));
    assert_eq!(done.code(), Some(0), "exit code; stderr:\n{}", done.stderr);
    let lines: Vec<&str> = done.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(serde_json::from_str::<Value>(done.stdout.trim()).is_err(), "the table form printed JSON:\n{}", done.stdout);
    for (symbol, price) in [("AAPL", "187.43"), ("MSFT", "415.5")] {
        let rows: Vec<&&str> = lines.iter().filter(|l| l.split_whitespace().next() == Some(symbol)).collect();
        assert_eq!(rows.len(), 1, "lines starting with {symbol}:\n{}", done.stdout);
        assert!(rows[0].contains(price), "{symbol} line lacks its price {price}: {}", rows[0]);
        assert!(rows[0].contains("finnhub"), "{symbol} line lacks its source: {}", rows[0]);
    }
    let others: Vec<&&str> = lines.iter().filter(|l| !matches!(l.split_whitespace().next(), Some("AAPL" | "MSFT"))).collect();
    assert!(others.len() <= 1, "more than one header line besides the symbols:\n{}", done.stdout);
}

/// Runs `neolight quote AAPL --json` inside `unshare -n` after the shell commands `setup`, with
/// credentials for every provider, default base URLs and default timeouts. Returns the run and
/// its duration, or `None` when `unshare -n` is not permitted here.
fn quote_in_namespace(setup: &str) -> Option<(Finished, Duration)> {
    match Command::new("unshare").args(["-n", "true"]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!("skipped: `unshare -n true` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Err(err) => {
            eprintln!("skipped: cannot run unshare: {err}");
            return None;
        }
    }
    let script = format!(r#"ip link set lo up && {setup} && exec timeout -s KILL 60 "$NL_BIN" quote AAPL --json"#);
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", &script]);
    clean_env(&mut cmd);
    cmd.env("NL_BIN", BIN);
    for (name, value) in DUMMY_KEYS {
        cmd.env(name, value);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let done = run(cmd, Duration::from_secs(70));
    Some((done, started.elapsed()))
}

/// Checks the output of a quote run that reached no provider.
fn check_unreached(done: &Finished, took: Duration, label: &str) {
    eprintln!("{label}: quote took {took:?}");
    assert_eq!(done.code(), Some(1), "{label}: exit code; stderr:\n{}", done.stderr);
    let doc = one_document(&done.stdout);
    let q = entry(&doc, "AAPL");
    check_shape(q);
    assert!(q["price"].is_null(), "{label}: AAPL priced: {q}");
    for (provider, _) in BASE_URLS {
        let outcome = outcome_of(q, provider);
        assert!(matches!(outcome, "transient" | "timeout"), "{label}: {provider} outcome is {outcome:?}: {q}");
    }
    assert!(took < Duration::from_secs(15), "{label}: quote took {took:?}; stdout:\n{}", done.stdout);
}

#[test]
fn no_network_fails_fast() {
    // Only a loopback, as with Wi-Fi off: every name lookup fails at once.
    let Some((done, took)) = quote_in_namespace("true") else { return };
    check_unreached(&done, took, "no network");
}

#[test]
fn silent_network_fails_fast() {
    // A default route into the loopback drops packets to any outside address, so name lookups
    // time out, as on a Wi-Fi without an uplink. Nothing leaves the namespace.
    let Some((done, took)) = quote_in_namespace("ip route add default dev lo") else { return };
    check_unreached(&done, took, "silent network");
}
