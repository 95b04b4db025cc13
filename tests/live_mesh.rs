//! `neolight run --market live` without a network and against failing providers.
//!
//! No test here reaches a real provider. A run outside a network namespace has all six
//! provider base URLs on 127.0.0.1 (`local_providers`): a wiremock server, or the closed port 9.
//! A run with no network at all goes through `offline_run`, a shell script inside `unshare -n`.
//! That namespace has nothing but a loopback, and the script's curl checks run inside it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use wiremock::matchers::{any, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LISTEN_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Starts `neolight run --market live ARGS` on 127.0.0.1 with every provider local.
fn start_live(args: &[&str], data: &Path, urls: &[(&str, String)], keys: &[(&str, &str)], extra_env: &[(&str, &str)]) -> (Proc, u16) {
    let mut all = vec!["run", "--market", "live"];
    all.extend_from_slice(args);
    let mut cmd = neolight(&all, data);
    local_providers(&mut cmd, urls, keys);
    for (name, value) in extra_env {
        cmd.env(name, value);
    }
    let mut proc = Proc::spawn(cmd);
    let port = proc.wait_listening(LISTEN_LIMIT);
    (proc, port)
}

/// Sends SIGTERM, asserts exit code 0 and returns the whole stderr.
fn stop(proc: Proc) -> String {
    proc.signal("TERM");
    let done = proc.finish(STOP_LIMIT);
    assert_eq!(done.code(), Some(0), "exit after SIGTERM: {}; stderr:\n{}", done.status, notable(&done.stderr));
    done.stderr
}

fn fixture(name: &str) -> Value {
    let file = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

/// Finnhub's success sample with its price `c` replaced.
fn finnhub_quote(price: f64) -> Value {
    let mut body = fixture("finnhub.quote.success.json");
    body["c"] = serde_json::json!(price);
    body
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

fn mock_uri(server: &MockServer) -> String {
    let uri = server.uri();
    assert!(uri.starts_with("http://127.0.0.1:"), "wiremock listens on {uri}, not on 127.0.0.1");
    uri
}

/// Mounts Finnhub's `/quote?symbol=SYMBOL` below `prefix`, returning `price`.
fn mount_finnhub(rt: &tokio::runtime::Runtime, server: &MockServer, prefix: &str, symbol: &str, price: f64) {
    rt.block_on(
        Mock::given(method("GET"))
            .and(path(format!("{prefix}/quote")))
            .and(query_param("symbol", symbol))
            .respond_with(ResponseTemplate::new(200).set_body_json(finnhub_quote(price)))
            .mount(server),
    );
}

/// Sends POST `path` with an optional `X-API-Key` and returns the status and JSON body.
fn post(port: u16, route: &str, key: Option<&str>) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}{route}");
    let mut request = ureq::post(&url).timeout(Duration::from_secs(5));
    if let Some(key) = key {
        request = request.set("X-API-Key", key);
    }
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("POST {url}: {err}"),
    };
    let status = response.status();
    let body = response.into_string().unwrap_or_else(|e| panic!("POST {url}: cannot read the body: {e}"));
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn provider<'a>(providers: &'a Value, name: &str) -> &'a Value {
    providers["providers"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("/providers has no entry {name}: {providers}"))
}

fn find_quote<'a>(quotes: &'a Value, symbol: &str) -> Option<&'a Value> {
    quotes.as_array()?.iter().find(|q| q["symbol"] == symbol)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Checks that a quote's freshness label follows from its age and the run's limits.
fn assert_freshness_follows_age(quote: &Value, max_age_ms: i64, stale_cap_ms: i64, label: &str) {
    let age = quote["age_ms"].as_i64().unwrap_or_else(|| panic!("{label}: age_ms is not an integer: {quote}"));
    let expected = if age <= max_age_ms {
        "fresh"
    } else if age <= stale_cap_ms {
        "stale"
    } else {
        "expired"
    };
    assert_eq!(quote["freshness"], expected, "{label}: age_ms {age} with max_age {max_age_ms} ms and stale_cap {stale_cap_ms} ms: {quote}");
}

// ---------------------------------------------------------------------------------------------
// Runs inside `unshare -n`

/// Port of the mesh inside the namespace, where nothing else listens.
const NS_PORT: u16 = 18080;

/// Shell script run as `unshare -n sh -c SCRIPT`. It brings the loopback up and starts the mesh
/// under a 40 s `timeout`, so nothing outlives a failed test. When `/health` responds it sleeps
/// `NL_SETTLE` seconds, then for each word of `NL_STEPS` either sleeps (`sleep:SECONDS`) or GETs
/// that path with curl. Markers on stdout: `@@get PATH MS`, the body, `@@code STATUS` and
/// `@@done MS`, where MS is wall time in milliseconds. Last it prints the process state, sends
/// SIGTERM and prints `@@exit CODE`. The mesh's stdout and stderr go to the script's stderr.
const OFFLINE_SCRIPT: &str = r#"
set -u
ip link set lo up || { echo "@@no_loopback"; exit 97; }
echo "@@start $(date +%s%3N)"
timeout -s KILL 40 "$NL_BIN" run --market live --port "$NL_PORT" $NL_ARGS >&2 &
pid=$!
n=0
until curl -s -o /dev/null -m 1 "http://127.0.0.1:$NL_PORT/health"; do
  n=$((n+1))
  if [ $n -ge 150 ]; then echo "@@never_listened"; break; fi
  sleep 0.1
done
echo "@@listening $(date +%s%3N)"
sleep "$NL_SETTLE"
for step in $NL_STEPS; do
  case "$step" in
    sleep:*) sleep "${step#sleep:}"; continue ;;
  esac
  echo "@@get $step $(date +%s%3N)"
  curl -s -m 10 -w '\n@@code %{http_code}' "http://127.0.0.1:$NL_PORT$step"
  echo
  echo "@@done $(date +%s%3N)"
done
echo "@@state $(cut -d' ' -f3 /proc/$pid/stat)"
kill -TERM $pid
wait $pid
echo "@@exit $?"
"#;

/// One GET made inside the namespace.
#[derive(Debug)]
struct Get {
    path: String,
    /// Wall time before the request and after the response, in milliseconds.
    sent_ms: i64,
    done_ms: i64,
    status: u16,
    body: Value,
}

#[derive(Debug)]
struct OfflineRun {
    start_ms: i64,
    gets: Vec<Get>,
    /// State letter of the mesh process just before SIGTERM (`S` or `R` while it runs).
    state_before_term: String,
    exit: Option<i32>,
    stdout: String,
    stderr: String,
}

impl OfflineRun {
    fn get(&self, path: &str) -> &Get {
        self.gets.iter().find(|g| g.path == path).unwrap_or_else(|| panic!("no GET {path} in the offline run:\n{}", self.stdout))
    }
}

/// Returns why `unshare -n` cannot be used here, or `None` when it can.
fn unshare_unavailable() -> Option<String> {
    match Command::new("unshare").args(["-n", "sh", "-c", "ip link set lo up && command -v curl"]).output() {
        Err(err) => Some(format!("cannot run unshare: {err}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`unshare -n sh -c 'ip link set lo up && command -v curl'` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Ok(_) => None,
    }
}

/// Runs `OFFLINE_SCRIPT` in a new network namespace with `args` after `run --market live`,
/// `env` added to a clean environment, and the steps given.
fn offline_run(args: &[&str], env: &[(&str, &str)], settle_s: f64, steps: &[&str]) -> OfflineRun {
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", OFFLINE_SCRIPT]);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let fixed = ["PORT", "REQUIRE_AUTH", "TRADING_MODE", "RENDER_MODE", "RUST_LOG"];
        if name.starts_with("NEOLIGHT_") || fixed.contains(&name.as_str()) || CREDENTIALS.contains(&name.as_str()) {
            cmd.env_remove(&name);
        }
    }
    for arg in args {
        assert!(!arg.contains(char::is_whitespace), "argument {arg:?} would be split by the script");
    }
    cmd.env("NL_BIN", BIN)
        .env("NL_PORT", NS_PORT.to_string())
        .env("NL_ARGS", args.join(" "))
        .env("NL_SETTLE", format!("{settle_s}"))
        .env("NL_STEPS", steps.join(" "))
        .env("NEOLIGHT_BIND", "127.0.0.1")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let done = run(cmd, Duration::from_secs(60));
    parse_offline(done)
}

fn parse_offline(done: Finished) -> OfflineRun {
    let mut result = OfflineRun {
        start_ms: 0,
        gets: Vec::new(),
        state_before_term: String::new(),
        exit: None,
        stdout: done.stdout.clone(),
        stderr: done.stderr.clone(),
    };
    assert_eq!(done.code(), Some(0), "the namespace script ended with {}; stdout:\n{}\nstderr:\n{}", done.status, done.stdout, done.stderr);
    assert!(!done.stdout.contains("@@never_listened"), "the mesh never responded to /health inside the namespace; stderr:\n{}", done.stderr);
    let mut current: Option<Get> = None;
    let mut body = String::new();
    for line in done.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["@@start", ms] => result.start_ms = ms.parse().expect("start time"),
            ["@@get", path, ms] => {
                current = Some(Get { path: path.to_string(), sent_ms: ms.parse().expect("get time"), done_ms: 0, status: 0, body: Value::Null });
                body.clear();
            }
            ["@@code", code] => {
                let get = current.as_mut().expect("@@code after @@get");
                get.status = code.parse().unwrap_or(0);
                get.body = serde_json::from_str(&body).unwrap_or(Value::Null);
            }
            ["@@done", ms] => {
                let mut get = current.take().expect("@@done after @@get");
                get.done_ms = ms.parse().expect("done time");
                result.gets.push(get);
            }
            ["@@state", state] => result.state_before_term = state.to_string(),
            ["@@exit", code] => result.exit = code.parse().ok(),
            _ if line.starts_with("@@") => {}
            _ => body.push_str(line),
        }
    }
    result
}

/// Returns the maximum number of calls a breaker lets through in `elapsed` when every call
/// fails. `min_calls` failures open it, then each open period ends with one probe. Periods start
/// at `base` and double up to `max`, and the breaker's ±20 % jitter can shorten each by a fifth.
/// One more call of slack covers a probe that is being counted while the snapshot is taken.
fn max_failing_calls(min_calls: u64, base: Duration, max: Duration, elapsed: Duration) -> u64 {
    let mut probes = 0;
    let mut at = Duration::ZERO;
    let mut period = base;
    loop {
        at += period.min(max).mul_f64(0.8);
        if at > elapsed {
            break;
        }
        probes += 1;
        period *= 2;
    }
    min_calls + probes + 1
}

#[test]
fn no_network_stays_up_degraded() {
    if let Some(why) = unshare_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    // Default base URLs: inside the namespace every name lookup fails, as with Wi-Fi off.
    // The refresher retries a symbol without a price after max_age / 2 (1 s here), and the
    // breakers decide which providers it may call. A 200 ms tick gives 5 market steps per
    // second, so a mesh that called every provider for every symbol on every tick would make
    // about 15 calls per provider per second.
    let args = [
        "--data-dir", data_arg, "--universe", "AAPL,MSFT,SPY", "--tick", "200ms", "--max-age", "2s",
        "--breaker-min-calls", "5", "--breaker-base-open", "500ms", "--breaker-max-open", "2s",
    ];
    let run = offline_run(&args, &DUMMY_KEYS, 10.0, &["/health", "/agents", "/providers"]);

    assert!(matches!(run.state_before_term.as_str(), "S" | "R" | "D"), "mesh state before SIGTERM was {:?}; stderr:\n{}", run.state_before_term, run.stderr);
    assert_eq!(run.exit, Some(0), "mesh exit code after SIGTERM; stderr:\n{}", notable(&run.stderr));
    assert!(run.stderr.contains("SIGTERM received"), "the mesh did not log the SIGTERM it stopped on; stderr:\n{}", run.stderr);

    let health = run.get("/health");
    assert_eq!(health.status, 200, "/health status: {}", health.body);
    assert_eq!(health.body["status"], "degraded", "/health status field: {}", health.body);
    assert_eq!(health.body["offline"], true, "/health offline: {}", health.body);

    let agents = run.get("/agents");
    let list = agents.body.as_array().unwrap_or_else(|| panic!("/agents is not an array: {}", agents.body));
    assert!(!list.is_empty(), "/agents is empty");
    for agent in list {
        assert_eq!(agent["state"], "running", "agent {} is not running: {agent}", agent["name"]);
    }

    let providers = run.get("/providers");
    assert_eq!(providers.body["offline"], true, "/providers offline: {}", providers.body);
    let elapsed = Duration::from_millis((providers.done_ms - run.start_ms).max(0) as u64);
    let bound = max_failing_calls(5, Duration::from_millis(500), Duration::from_secs(2), elapsed);
    let steps = (elapsed.as_millis() / 200) as u64;
    let per_tick = 3 * steps;
    for (name, _) in BASE_URLS {
        let entry = provider(&providers.body, name);
        let attempts = entry["attempts"].as_u64().unwrap_or_else(|| panic!("{name}.attempts is not a count: {entry}"));
        eprintln!("{name}: {attempts} attempts in {elapsed:?}, state {}, bound {bound}", entry["state"]);
        assert!(attempts >= 1, "{name} was never tried in {elapsed:?}: {entry}");
        assert!(attempts <= bound, "{name}: {attempts} attempts in {elapsed:?}; its breaker allows at most {bound}: {entry}");
        assert!(attempts < per_tick / 2, "{name}: {attempts} attempts in {elapsed:?} is near one call per symbol per tick ({per_tick}): {entry}");
    }
    let offline_lines = run.stderr.lines().filter(|l| l.contains("offline:")).count();
    assert_eq!(offline_lines, 1, "lines announcing offline in the log; stderr:\n{}", notable(&run.stderr));
}

/// Polls `/quotes` until every symbol is fresh from `source`. Returns the list and the wall
/// time of the response in milliseconds.
fn wait_fresh(port: u16, symbols: &[&str], source: &str) -> (Value, i64) {
    poll(Duration::from_secs(15), &format!("fresh {source} quotes for {symbols:?}"), || {
        let (status, quotes) = get(port, "/quotes");
        let at = now_ms();
        let ready = status == 200
            && symbols.iter().all(|s| {
                find_quote(&quotes, s).is_some_and(|q| q["freshness"] == "fresh" && q["source"] == source && q["price"].is_number())
            });
        ready.then_some((quotes, at))
    })
}

/// Runs a live mesh against wiremock until AAPL and MSFT are cached, stops it, and returns the
/// prices and the estimated fetch times (wall ms) by symbol.
fn fill_cache(data: &Path) -> Vec<(&'static str, f64, i64)> {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    mount_finnhub(&rt, &server, "", "AAPL", 187.43);
    mount_finnhub(&rt, &server, "", "MSFT", 415.5);
    let urls = [("finnhub", mock_uri(&server))];
    let (proc, port) = start_live(&["--universe", "AAPL,MSFT"], data, &urls, &[("FINNHUB_API_KEY", "dummy-finnhub")], &[]);
    let (quotes, at) = wait_fresh(port, &["AAPL", "MSFT"], "finnhub");
    stop(proc);
    ["AAPL", "MSFT"]
        .into_iter()
        .map(|symbol| {
            let q = find_quote(&quotes, symbol).unwrap();
            (symbol, q["price"].as_f64().unwrap(), at - q["age_ms"].as_i64().unwrap())
        })
        .collect()
}

const AGE_SLACK_MS: i64 = 1000;

#[test]
fn restart_offline_serves_cache() {
    if let Some(why) = unshare_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cached = fill_cache(&data);
    // Make sure the quotes are older than the second run's 1 s max_age.
    let stale_after_ms = cached.iter().map(|c| c.2).max().unwrap() + 1300;
    while now_ms() < stale_after_ms {
        std::thread::sleep(Duration::from_millis(50));
    }

    let data_arg = data.to_str().unwrap();
    let args = [
        "--data-dir", data_arg, "--universe", "AAPL,MSFT", "--max-age", "1s", "--stale-cap", "1h",
        "--breaker-base-open", "500ms", "--breaker-max-open", "2s",
    ];
    let keys = [("FINNHUB_API_KEY", "dummy-finnhub")];
    let run = offline_run(&args, &keys, 1.5, &["/health", "/quotes", "/quotes/AAPL", "/orders"]);
    assert_eq!(run.exit, Some(0), "offline mesh exit code; stderr:\n{}", notable(&run.stderr));

    let health = run.get("/health");
    assert_eq!(health.status, 200, "/health status: {}", health.body);
    assert_eq!(health.body["status"], "degraded", "/health status field: {}", health.body);
    assert_eq!(health.body["offline"], true, "/health offline: {}", health.body);

    let quotes = run.get("/quotes");
    assert_eq!(quotes.status, 200, "/quotes status: {}", quotes.body);
    for (symbol, price, fetched_ms) in &cached {
        let quote = find_quote(&quotes.body, symbol).unwrap_or_else(|| panic!("/quotes offline has no {symbol}: {}", quotes.body));
        assert_eq!(quote["source"], "finnhub", "{symbol} source offline: {quote}");
        assert_eq!(quote["price"].as_f64(), Some(*price), "{symbol} price offline vs first run: {quote}");
        let age = quote["age_ms"].as_i64().unwrap_or(-1);
        let expected = (quotes.sent_ms - fetched_ms, quotes.done_ms - fetched_ms);
        assert!(
            age >= expected.0 - AGE_SLACK_MS && age <= expected.1 + AGE_SLACK_MS,
            "{symbol} age_ms {age} does not reflect the first run's fetch ({}..{} ms ago): {quote}",
            expected.0,
            expected.1
        );
        assert_freshness_follows_age(quote, 1000, 3_600_000, &format!("/quotes {symbol} offline"));
        assert_eq!(quote["freshness"], "stale", "{symbol} offline freshness: {quote}");
    }

    let aapl = run.get("/quotes/AAPL");
    assert_eq!(aapl.status, 200, "/quotes/AAPL status offline: {}", aapl.body);
    assert_eq!(aapl.body["source"], "finnhub", "/quotes/AAPL source offline: {}", aapl.body);
    assert_eq!(aapl.body["price"].as_f64(), Some(cached[0].1), "/quotes/AAPL price offline: {}", aapl.body);
    assert_freshness_follows_age(&aapl.body, 1000, 3_600_000, "/quotes/AAPL offline");
    assert_eq!(aapl.body["freshness"], "stale", "/quotes/AAPL freshness offline: {}", aapl.body);

    // Nothing bought on stale quotes.
    // NOTE: one restored quote per symbol, with a 2024 exchange time, gives no strategy a signal
    // to act on, so this check cannot tell the trader's freshness gate from a missing signal.
    let orders = run.get("/orders");
    assert_eq!(orders.status, 200, "/orders status offline: {}", orders.body);
    let events = orders.body["events"].as_array().unwrap_or_else(|| panic!("/orders has no events list: {}", orders.body));
    let buys: Vec<&Value> = events.iter().filter(|e| e["event"] == "accepted" && e["order"]["side"] == "buy").collect();
    assert!(buys.is_empty(), "accepted buys on stale quotes: {buys:?}");

    // The same cache with a 1 s stale cap: the quotes are now expired and have no price.
    let args = [
        "--data-dir", data_arg, "--universe", "AAPL,MSFT", "--max-age", "1s", "--stale-cap", "1s",
        "--breaker-base-open", "500ms", "--breaker-max-open", "2s",
    ];
    let run = offline_run(&args, &keys, 0.5, &["/health", "/quotes", "/quotes/AAPL"]);
    assert_eq!(run.exit, Some(0), "second offline mesh exit code; stderr:\n{}", notable(&run.stderr));
    let health = run.get("/health");
    assert_eq!(health.status, 200, "/health status with expired quotes: {}", health.body);
    assert_eq!(health.body["status"], "degraded", "/health status field with expired quotes: {}", health.body);
    assert_eq!(health.body["offline"], true, "/health offline with expired quotes: {}", health.body);
    let quotes = run.get("/quotes");
    for (symbol, _, _) in &cached {
        let quote = find_quote(&quotes.body, symbol).unwrap_or_else(|| panic!("/quotes has no {symbol}: {}", quotes.body));
        assert_eq!(quote["freshness"], "expired", "{symbol} with a 1 s stale cap: {quote}");
        assert!(quote["price"].is_null(), "{symbol} expired but priced: {quote}");
        assert_freshness_follows_age(quote, 1000, 1000, &format!("/quotes {symbol} expired"));
    }
    let aapl = run.get("/quotes/AAPL");
    assert_eq!(aapl.body["freshness"], "expired", "/quotes/AAPL with a 1 s stale cap: {}", aapl.body);
    assert!(aapl.body["price"].is_null(), "/quotes/AAPL expired but priced: {}", aapl.body);
}

#[test]
fn failing_provider_serves_stale_quote() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    mount_finnhub(&rt, &server, "", "AAPL", 187.43);
    let uri = mock_uri(&server);
    let urls = [("finnhub", uri.clone()), ("yahoo", uri)];
    let dir = tempfile::tempdir().unwrap();
    let args = ["--universe", "AAPL", "--max-age", "1s", "--breaker-base-open", "500ms", "--breaker-max-open", "1s"];
    let (proc, port) = start_live(&args, dir.path(), &urls, &[("FINNHUB_API_KEY", "dummy-finnhub")], &[]);
    wait_fresh(port, &["AAPL"], "finnhub");

    // Every provider now returns 503.
    rt.block_on(server.reset());
    rt.block_on(Mock::given(any()).respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable")).mount(&server));
    let first = poll(Duration::from_secs(10), "AAPL stale while finnhub returns 503", || {
        let (status, quote) = get(port, "/quotes/AAPL");
        (status == 200 && quote["freshness"] == "stale").then_some(quote)
    });
    assert_eq!(first["price"].as_f64(), Some(187.43), "stale AAPL keeps the last good price: {first}");
    assert_eq!(first["source"], "finnhub", "stale AAPL source: {first}");
    let first_age = first["age_ms"].as_i64().unwrap();
    let later = poll(Duration::from_secs(5), "AAPL age growing", || {
        let (_, quote) = get(port, "/quotes/AAPL");
        (quote["age_ms"].as_i64().unwrap_or(0) >= first_age + 500).then_some(quote)
    });
    assert_eq!(later["freshness"], "stale", "AAPL later, still failing: {later}");
    assert_eq!(later["price"].as_f64(), Some(187.43), "AAPL later keeps its price: {later}");
    let failed_calls = rt.block_on(server.received_requests()).unwrap_or_default().iter().filter(|r| r.url.path() == "/quote").count();
    assert!(failed_calls >= 1, "finnhub received no request while it returns 503");

    let (_, health) = get(port, "/health");
    assert_eq!(health["offline"], false, "/health offline while providers return 503: {health}");
    let (_, providers) = get(port, "/providers");
    assert_eq!(providers["offline"], false, "/providers offline while providers return 503: {providers}");
    let finnhub = provider(&providers, "finnhub");
    assert_eq!(finnhub["last_outcome"], "transient", "finnhub last outcome under 503: {finnhub}");

    // Finnhub recovers with a new price.
    rt.block_on(server.reset());
    mount_finnhub(&rt, &server, "", "AAPL", 190.25);
    let recovered = poll(Duration::from_secs(15), "AAPL fresh again after finnhub recovers", || {
        let (_, quote) = get(port, "/quotes/AAPL");
        (quote["freshness"] == "fresh").then_some(quote)
    });
    assert_eq!(recovered["price"].as_f64(), Some(190.25), "recovered AAPL price: {recovered}");
    assert_eq!(recovered["source"], "finnhub", "recovered AAPL source: {recovered}");
    stop(proc);
}

#[test]
fn secrets_never_leave_the_process() {
    let keys = [
        ("APCA_API_KEY_ID", "ALPACAIDECHO555"),
        ("APCA_API_SECRET_KEY", "ALPACASECRETECHO556"),
        ("FINNHUB_API_KEY", "FINNHUBECHO888"),
        ("TWELVEDATA_API_KEY", "TWELVEECHO999"),
        ("ALPHAVANTAGE_API_KEY", "SECRETECHO777"),
        ("RAPIDAPI_KEY", "RAPIDECHO666"),
    ];
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let uri = mock_uri(&server);
    let json_response = |status: u16, body: String| ResponseTemplate::new(status).set_body_raw(body, "application/json");
    let mounts = [
        ("^/alpaca/", json_response(500, r#"{"message":"internal error for key ALPACAIDECHO555 and secret ALPACASECRETECHO556"}"#.into())),
        ("^/finnhub/", json_response(500, r#"{"error":"server error while checking token FINNHUBECHO888"}"#.into())),
        ("^/twelvedata/", json_response(200, r#"{"code":401,"message":"**apikey** parameter is incorrect: TWELVEECHO999","status":"error"}"#.into())),
        (
            "^/alphavantage/",
            json_response(200, r#"{"Information":"We have detected your API key as SECRETECHO777 and our standard API rate limit is 25 requests per day."}"#.into()),
        ),
        ("^/rapidapi/", json_response(429, r#"{"message":"You have exceeded the rate limit per minute for your plan, BASIC, key RAPIDECHO666"}"#.into())),
        ("^/yahoo/", ResponseTemplate::new(200).set_body_json(fixture("yahoo.chart.daily_with_adjclose.json"))),
    ];
    for (prefix, template) in mounts {
        rt.block_on(Mock::given(path_regex(prefix)).respond_with(template).mount(&server));
    }
    let urls: Vec<(&str, String)> = BASE_URLS.iter().map(|(name, _)| (*name, format!("{uri}/{name}"))).collect();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--universe", "AAPL", "--max-age", "2s", "--breaker-base-open", "500ms", "--breaker-max-open", "1s"];
    let (proc, port) = start_live(&args, dir.path(), &urls, &keys, &[("RUST_LOG", "debug")]);

    let providers = poll(Duration::from_secs(15), "an attempt at every provider", || {
        let (_, providers) = get(port, "/providers");
        let all = BASE_URLS.iter().all(|(name, _)| provider(&providers, name)["attempts"].as_u64().unwrap_or(0) >= 1);
        all.then_some(providers)
    });
    let echoed = provider(&providers, "alphavantage")["last_error"].as_str().unwrap_or_default().to_string();
    assert!(echoed.contains("We have detected your API key as"), "alphavantage's echoing note did not reach last_error: {providers}");

    let mut documents = vec![("/providers".to_string(), providers.to_string())];
    for route in ["/health", "/quotes", "/quotes/AAPL", "/agents"] {
        documents.push((route.to_string(), get(port, route).1.to_string()));
    }

    // The quote command, against the same mocks and with every provider at a closed port
    // (transport errors there carry Alpha Vantage's `apikey=` URL).
    let everywhere_closed: Vec<(&str, String)> = Vec::new();
    for (label, urls) in [("quote --json (mocks)", &urls), ("quote --json (closed port)", &everywhere_closed)] {
        let mut cmd = Command::new(BIN);
        cmd.args(["quote", "AAPL", "--json"]).env("RUST_LOG", "debug").env("NO_COLOR", "1");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NEOLIGHT_") {
                cmd.env_remove(name);
            }
        }
        local_providers(&mut cmd, urls, &keys);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let done = run(cmd, Duration::from_secs(30));
        assert!(serde_json::from_str::<Value>(done.stdout.trim()).is_ok(), "{label}: stdout is not one JSON document:\n{}", done.stdout);
        documents.push((format!("{label} stdout"), done.stdout));
        documents.push((format!("{label} stderr"), done.stderr));
    }

    let stderr = stop(proc);
    documents.push(("mesh stderr".to_string(), stderr));
    for (where_, text) in &documents {
        for (variable, secret) in keys {
            assert!(!text.contains(secret), "{variable} value {secret} appears in {where_}:\n{text}");
        }
    }
}

#[test]
fn operator_isolates_and_releases() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let uri = mock_uri(&server);
    mount_finnhub(&rt, &server, "/finnhub", "AAPL", 187.43);
    let mut twelve = fixture("twelvedata.quote.success.json");
    twelve["close"] = "201.50000".into();
    rt.block_on(
        Mock::given(method("GET"))
            .and(path("/twelvedata/quote"))
            .and(query_param("symbol", "AAPL"))
            .and(header("Authorization", "apikey dummy-twelvedata"))
            .respond_with(ResponseTemplate::new(200).set_body_json(twelve))
            .mount(&server),
    );
    let urls = [("finnhub", format!("{uri}/finnhub")), ("twelvedata", format!("{uri}/twelvedata"))];
    let keys = [("FINNHUB_API_KEY", "dummy-finnhub"), ("TWELVEDATA_API_KEY", "dummy-twelvedata")];
    let args = ["--universe", "AAPL", "--max-age", "1s"];

    // Without a configured operator key the routes reject every request.
    let dir = tempfile::tempdir().unwrap();
    let (proc, port) = start_live(&args, dir.path(), &urls, &keys, &[]);
    let (status, body) = post(port, "/providers/finnhub/isolate", Some("anything"));
    assert_eq!(status, 403, "isolate without NEOLIGHT_API_KEY: {body}");
    assert!(body["error"].is_string(), "403 body is not a JSON error: {body}");
    stop(proc);

    let key = "operator-key-4711";
    let dir = tempfile::tempdir().unwrap();
    let (proc, port) = start_live(&args, dir.path(), &urls, &keys, &[("NEOLIGHT_API_KEY", key)]);
    wait_fresh(port, &["AAPL"], "finnhub");

    let (status, body) = post(port, "/providers/finnhub/isolate", Some("operator-key-4712"));
    assert_eq!(status, 401, "isolate with a wrong key: {body}");
    assert!(body["error"].is_string(), "401 body is not a JSON error: {body}");
    let (status, body) = post(port, "/providers/finnhub/isolate", None);
    assert_eq!(status, 401, "isolate without X-API-Key: {body}");

    let finnhub_calls = || {
        rt.block_on(server.received_requests()).unwrap_or_default().iter().filter(|r| r.url.path() == "/finnhub/quote").count()
    };
    let (status, body) = post(port, "/providers/finnhub/isolate", Some(key));
    assert_eq!(status, 200, "isolate with the right key: {body}");
    assert_eq!(body["state"], "isolated", "isolate response: {body}");
    let calls_at_isolation = finnhub_calls();
    let (_, providers) = get(port, "/providers");
    assert_eq!(provider(&providers, "finnhub")["state"], "isolated", "finnhub after isolate: {providers}");

    let fell_through = poll(Duration::from_secs(10), "AAPL from twelvedata while finnhub is isolated", || {
        let (_, quote) = get(port, "/quotes/AAPL");
        (quote["source"] == "twelvedata" && quote["freshness"] == "fresh").then_some(quote)
    });
    assert_eq!(fell_through["price"].as_f64(), Some(201.5), "AAPL price from twelvedata: {fell_through}");
    assert_eq!(finnhub_calls(), calls_at_isolation, "requests to finnhub while it is isolated");

    let (status, body) = post(port, "/providers/finnhub/release", Some(key));
    assert_eq!(status, 200, "release with the right key: {body}");
    let (_, providers) = get(port, "/providers");
    assert_eq!(provider(&providers, "finnhub")["state"], "closed", "finnhub after release: {providers}");
    poll(Duration::from_secs(10), "AAPL from finnhub again after release", || {
        let (_, quote) = get(port, "/quotes/AAPL");
        (quote["source"] == "finnhub" && quote["freshness"] == "fresh").then_some(())
    });

    let (status, body) = post(port, "/providers/nosuchprovider/isolate", Some(key));
    assert_eq!(status, 404, "isolate an unknown provider: {body}");
    assert!(body["error"].is_string(), "404 body is not a JSON error: {body}");
    stop(proc);
}

#[test]
fn bound_counts_probes_per_period() {
    // 0.4 + 0.8 + 1.6 = 2.8 s of shortest periods: three probes fit in 3 s.
    assert_eq!(max_failing_calls(5, Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(3)), 5 + 3 + 1);
    // The cap keeps later periods at 2 s (1.6 s with jitter).
    assert_eq!(max_failing_calls(5, Duration::from_millis(500), Duration::from_secs(2), Duration::from_millis(4400)), 5 + 4 + 1);
}
