//! Wiremock stand-ins for the six quote providers, and the one place that builds base-URL
//! overrides. Every override points at 127.0.0.1: a mock server, or the closed port 9.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neolight_actors::providers::cascade::Cascade;
use neolight_actors::providers::client::{Credentials, ProviderClient};
use neolight_actors::providers::ProviderId;
use neolight_messages::Symbol;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A local port nothing listens on: connections are refused at once.
pub const CLOSED_PORT: &str = "http://127.0.0.1:9";

pub const ALPACA_KEY_ID: &str = "pk9Vq2ALPACA-ID-7731";
pub const ALPACA_SECRET: &str = "sk4Rt8ALPACA-SECRET-5520";
pub const FINNHUB_KEY: &str = "fh3Lm6FINNHUB-KEY-9014";
pub const TWELVEDATA_KEY: &str = "td8Wn1TWELVE-KEY-2267";
pub const ALPHAVANTAGE_KEY: &str = "av5Kc7ALPHAV-KEY-4408";
pub const RAPIDAPI_KEY: &str = "ra2Hx9RAPID-KEY-6193";

/// Every configured secret value.
pub const ALL_KEYS: [&str; 6] = [ALPACA_KEY_ID, ALPACA_SECRET, FINNHUB_KEY, TWELVEDATA_KEY, ALPHAVANTAGE_KEY, RAPIDAPI_KEY];

/// Credentials for every provider.
pub fn credentials() -> Credentials {
    Credentials {
        alpaca: Some((ALPACA_KEY_ID.to_string(), ALPACA_SECRET.to_string())),
        finnhub: Some(FINNHUB_KEY.to_string()),
        twelvedata: Some(TWELVEDATA_KEY.to_string()),
        alphavantage: Some(ALPHAVANTAGE_KEY.to_string()),
        rapidapi: Some(RAPIDAPI_KEY.to_string()),
    }
}

/// Overrides for all six providers: the given base URL, else the closed local port.
/// Panics on any base URL that is not on 127.0.0.1, so no test can reach a real provider.
pub fn overrides(given: &[(ProviderId, String)]) -> Vec<(ProviderId, String)> {
    let list: Vec<(ProviderId, String)> = ProviderId::ALL
        .iter()
        .map(|id| {
            let url = given.iter().find(|(p, _)| p == id).map(|(_, u)| u.clone()).unwrap_or_else(|| CLOSED_PORT.to_string());
            (*id, url)
        })
        .collect();
    for (id, url) in &list {
        assert!(url.starts_with("http://127.0.0.1:"), "base URL of {id} is not local: {url}");
    }
    assert_eq!(list.len(), 6, "overrides must cover all six providers: {list:?}");
    list
}

/// Builds a client whose six base URLs are `given` or the closed local port.
pub fn client(credentials: Credentials, given: &[(ProviderId, String)], timeout: Duration) -> ProviderClient {
    ProviderClient::new(credentials, &overrides(given), timeout).expect("client builds")
}

pub fn sym(text: &str) -> Symbol {
    Symbol::new(text)
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn fixtures_dir() -> PathBuf {
    std::env::var_os("NEOLIGHT_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/providers")))
}

/// A fixture's body with the status and content type `index.json` gives it.
pub struct Fixture {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub fn fixture(file: &str) -> Fixture {
    let dir = fixtures_dir();
    let index_text = std::fs::read_to_string(dir.join("index.json")).expect("fixtures index.json is readable");
    let index: Value = serde_json::from_str(&index_text).expect("index.json is JSON");
    let entry = index
        .as_array()
        .and_then(|list| list.iter().find(|e| e["file"] == file))
        .unwrap_or_else(|| panic!("{file} is not in index.json"));
    let status = entry["status"].as_u64().unwrap_or_else(|| panic!("{file} has no status in index.json")) as u16;
    let content_type = entry["content_type"].as_str().unwrap_or("application/json").to_string();
    let body = std::fs::read(dir.join(file)).unwrap_or_else(|err| panic!("cannot read fixture {file}: {err}"));
    Fixture { status, content_type, body }
}

impl Fixture {
    pub fn response(&self) -> ResponseTemplate {
        ResponseTemplate::new(self.status).set_body_raw(self.body.clone(), &self.content_type)
    }
}

// ---------------------------------------------------------------------------------------------
// One mock server per provider.

/// Six mock servers, one per provider, in cascade order.
pub struct Providers {
    servers: Vec<(ProviderId, MockServer)>,
}

impl Providers {
    pub async fn start() -> Self {
        let mut servers = Vec::new();
        for id in ProviderId::ALL {
            servers.push((id, MockServer::builder().start().await));
        }
        Providers { servers }
    }

    pub fn server(&self, id: ProviderId) -> &MockServer {
        &self.servers.iter().find(|(p, _)| *p == id).expect("every provider has a server").1
    }

    /// Base URLs of all six servers.
    pub fn bases(&self) -> Vec<(ProviderId, String)> {
        self.servers.iter().map(|(id, s)| (*id, s.uri())).collect()
    }

    /// Base URLs of the servers of `ids`. The other providers get the closed port.
    pub fn bases_only(&self, ids: &[ProviderId]) -> Vec<(ProviderId, String)> {
        self.bases().into_iter().filter(|(id, _)| ids.contains(id)).collect()
    }

    /// Number of requests the provider's server received.
    pub async fn hits(&self, id: ProviderId) -> usize {
        self.server(id).received_requests().await.map(|r| r.len()).unwrap_or(0)
    }

    /// Mounts `responder` for every request to the provider's server.
    pub async fn respond<R: Respond + 'static>(&self, id: ProviderId, responder: R) {
        Mock::given(wiremock::matchers::any()).respond_with(responder).mount(self.server(id)).await;
    }

    /// Resets the provider's server and mounts `responder` in place of its earlier mocks.
    pub async fn switch<R: Respond + 'static>(&self, id: ProviderId, responder: R) {
        self.server(id).reset().await;
        self.respond(id, responder).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Responders.

/// Returns the symbols of a provider request (every symbol of an Alpaca multi request).
pub fn requested_symbols(id: ProviderId, request: &Request) -> Vec<String> {
    let query = |key: &str| request.url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned());
    let segments: Vec<String> = request.url.path_segments().map(|s| s.map(|x| x.to_string()).collect()).unwrap_or_default();
    match id {
        ProviderId::Alpaca => match query("symbols") {
            Some(list) => list.split(',').map(str::to_string).collect(),
            // /v2/stocks/{symbol}/quotes/latest
            None => segments.get(2).cloned().into_iter().collect(),
        },
        // /v8/finance/chart/{symbol}
        ProviderId::Yahoo => segments.last().cloned().into_iter().collect(),
        _ => query("symbol").into_iter().collect(),
    }
}

fn number(text: &str) -> Value {
    serde_json::from_str(text).expect("price text is a JSON number")
}

/// Builds a valid success body of `id` for `symbol` at `price` (bid and ask equal for Alpaca).
pub fn quote_body(id: ProviderId, symbol: &str, price: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    let p = number(price);
    match id {
        ProviderId::Alpaca => json!({"symbol": symbol, "quote": {"t": "2024-05-14T15:42:07Z", "ap": p, "bp": p, "as": 1, "bs": 1}}),
        ProviderId::Finnhub => json!({"c": p, "d": 0.1, "dp": 0.05, "h": p, "l": p, "o": p, "pc": p, "t": now}),
        ProviderId::TwelveData => json!({"symbol": symbol, "close": price, "timestamp": now, "is_market_open": true}),
        ProviderId::AlphaVantage | ProviderId::RapidApi => {
            json!({"Global Quote": {"01. symbol": symbol, "05. price": price, "07. latest trading day": "2024-05-14"}})
        }
        ProviderId::Yahoo => json!({"chart": {"result": [{"meta": {"symbol": symbol, "regularMarketPrice": p, "regularMarketTime": now}}], "error": null}}),
    }
}

/// Responder that returns a valid quote at `price` for each requested symbol.
#[derive(Clone)]
pub struct QuoteResponder {
    pub provider: ProviderId,
    pub price: &'static str,
    pub delay: Duration,
}

impl QuoteResponder {
    pub fn new(provider: ProviderId, price: &'static str) -> Self {
        QuoteResponder { provider, price, delay: Duration::ZERO }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl Respond for QuoteResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let symbols = requested_symbols(self.provider, request);
        let body = if self.provider == ProviderId::Alpaca && request.url.path().ends_with("/stocks/quotes/latest") {
            let quotes: serde_json::Map<String, Value> = symbols
                .iter()
                .map(|s| (s.clone(), quote_body(ProviderId::Alpaca, s, self.price)["quote"].clone()))
                .collect();
            json!({ "quotes": quotes })
        } else {
            let symbol = symbols.first().cloned().unwrap_or_default();
            quote_body(self.provider, &symbol, self.price)
        };
        ResponseTemplate::new(200).set_body_json(body).set_delay(self.delay)
    }
}

/// Arrival times of requests, as a responder saw them.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    pub fn times(&self) -> Vec<Instant> {
        self.0.lock().expect("arrivals lock").clone()
    }
}

/// Wraps a responder and records when each request arrived.
pub struct Timed<R> {
    pub inner: R,
    pub arrivals: Arrivals,
}

impl<R: Respond> Respond for Timed<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.arrivals.0.lock().expect("arrivals lock").push(Instant::now());
        self.inner.respond(request)
    }
}

/// Largest number of arrivals within any window of length `window` (start included, end
/// excluded).
pub fn busiest_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    for (i, start) in sorted.iter().enumerate() {
        let inside = sorted[i..].iter().take_while(|t| t.duration_since(*start) < window).count();
        best = best.max(inside);
    }
    best
}

/// Polls `check` every 10 ms until it returns true or `limit` passes, and returns the last result.
pub async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Returns the snapshot row of one provider.
pub fn view(cascade: &Cascade, id: ProviderId) -> neolight_actors::providers::cascade::ProviderView {
    cascade.snapshot().into_iter().find(|v| v.name == id.as_str()).expect("snapshot lists every provider")
}
