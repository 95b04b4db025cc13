//! Requests to the quote providers: one pooled reqwest client (rustls), per-provider base URLs
//! and credentials, a request timeout, and a bounded body read. Responses are classified by
//! [`super::classify`]; failures before an HTTP response become [`Attempted::Timeout`] or
//! [`Attempted::Connect`]. Nothing here logs; callers scrub and log.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use neolight_messages::Symbol;

use super::classify::{classify, classify_alpaca_multi, Outcome, ProviderId, RawResponse};
use super::scrub::Scrubber;

/// Response bodies larger than this are cut and classified as they are (quote responses are far smaller).
const MAX_BODY_BYTES: usize = 1 << 20;

/// RapidAPI's host header names the Alpha Vantage listing, also when the base URL is overridden.
pub const RAPIDAPI_HOST: &str = "alpha-vantage.p.rapidapi.com";

/// Yahoo rejects clients without a browser-like User-Agent with 429 or 403.
const BROWSER_USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

/// Credentials, by the providers' own variable names. `None` skips the provider.
#[derive(Clone, Default)]
pub struct Credentials {
    /// `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY`.
    pub alpaca: Option<(String, String)>,
    /// `FINNHUB_API_KEY`.
    pub finnhub: Option<String>,
    /// `TWELVEDATA_API_KEY`.
    pub twelvedata: Option<String>,
    /// `ALPHAVANTAGE_API_KEY`.
    pub alphavantage: Option<String>,
    /// `RAPIDAPI_KEY`.
    pub rapidapi: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |present: bool| if present { "set" } else { "unset" };
        f.debug_struct("Credentials")
            .field("alpaca", &set(self.alpaca.is_some()))
            .field("finnhub", &set(self.finnhub.is_some()))
            .field("twelvedata", &set(self.twelvedata.is_some()))
            .field("alphavantage", &set(self.alphavantage.is_some()))
            .field("rapidapi", &set(self.rapidapi.is_some()))
            .finish()
    }
}

impl Credentials {
    /// Reads the providers' variables; empty values count as unset.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Credentials {
            alpaca: var("APCA_API_KEY_ID").zip(var("APCA_API_SECRET_KEY")),
            finnhub: var("FINNHUB_API_KEY"),
            twelvedata: var("TWELVEDATA_API_KEY"),
            alphavantage: var("ALPHAVANTAGE_API_KEY"),
            rapidapi: var("RAPIDAPI_KEY"),
        }
    }

    pub fn has(&self, provider: ProviderId) -> bool {
        match provider {
            ProviderId::Alpaca => self.alpaca.is_some(),
            ProviderId::Finnhub => self.finnhub.is_some(),
            ProviderId::TwelveData => self.twelvedata.is_some(),
            ProviderId::AlphaVantage => self.alphavantage.is_some(),
            ProviderId::RapidApi => self.rapidapi.is_some(),
            ProviderId::Yahoo => true,
        }
    }

    /// Returns every configured secret value, for the scrubber.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((id, secret)) = &self.alpaca {
            out.push(id.clone());
            out.push(secret.clone());
        }
        out.extend(self.finnhub.iter().cloned());
        out.extend(self.twelvedata.iter().cloned());
        out.extend(self.alphavantage.iter().cloned());
        out.extend(self.rapidapi.iter().cloned());
        out
    }
}

/// Default base URL of each provider; `NEOLIGHT_<PROVIDER>_BASE_URL` replaces it.
pub fn default_base_url(provider: ProviderId) -> &'static str {
    match provider {
        ProviderId::Alpaca => "https://data.alpaca.markets",
        ProviderId::Finnhub => "https://finnhub.io/api/v1",
        ProviderId::TwelveData => "https://api.twelvedata.com",
        ProviderId::AlphaVantage => "https://www.alphavantage.co",
        ProviderId::RapidApi => "https://alpha-vantage.p.rapidapi.com",
        ProviderId::Yahoo => "https://query1.finance.yahoo.com",
    }
}

/// Name of the variable that overrides a provider's base URL.
pub fn base_url_variable(provider: ProviderId) -> &'static str {
    match provider {
        ProviderId::Alpaca => "NEOLIGHT_ALPACA_DATA_BASE_URL",
        ProviderId::Finnhub => "NEOLIGHT_FINNHUB_BASE_URL",
        ProviderId::TwelveData => "NEOLIGHT_TWELVEDATA_BASE_URL",
        ProviderId::AlphaVantage => "NEOLIGHT_ALPHAVANTAGE_BASE_URL",
        ProviderId::RapidApi => "NEOLIGHT_RAPIDAPI_BASE_URL",
        ProviderId::Yahoo => "NEOLIGHT_YAHOO_BASE_URL",
    }
}

/// Result of one provider call.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempted {
    /// The provider responded; the response's classification.
    Answered(Outcome),
    /// No response within the request timeout.
    Timeout,
    /// No connection (refused, unreachable, DNS, TLS); the detail is scrubbed and has no URL.
    Connect(String),
}

impl Attempted {
    /// Outcome name as `neolight quote --json` and `/providers` report it.
    pub fn label(&self) -> &'static str {
        match self {
            Attempted::Answered(outcome) => outcome.label(),
            Attempted::Timeout => "timeout",
            Attempted::Connect(_) => "transient",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Attempted::Answered(Outcome::Quote(q)) => format!("price {}", q.price),
            Attempted::Answered(Outcome::UnknownSymbol { detail })
            | Attempted::Answered(Outcome::AuthError { detail })
            | Attempted::Answered(Outcome::Transient { detail })
            | Attempted::Answered(Outcome::Malformed { detail })
            | Attempted::Answered(Outcome::RateLimited { detail, .. }) => detail.clone(),
            Attempted::Timeout => "no response within the request timeout".to_string(),
            Attempted::Connect(detail) => detail.clone(),
        }
    }
}

/// The pooled HTTP client and each provider's base URL.
#[derive(Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    base_urls: Vec<(ProviderId, String)>,
    credentials: Credentials,
    scrubber: Scrubber,
}

impl ProviderClient {
    /// Builds the client; providers missing from `overrides` use [`default_base_url`].
    pub fn new(
        credentials: Credentials,
        overrides: &[(ProviderId, String)],
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        let base_urls = ProviderId::ALL
            .iter()
            .map(|id| {
                let url = overrides
                    .iter()
                    .find(|(p, _)| p == id)
                    .map(|(_, url)| url.trim_end_matches('/').to_string())
                    .unwrap_or_else(|| default_base_url(*id).to_string());
                (*id, url)
            })
            .collect();
        let scrubber = Scrubber::new(credentials.secrets());
        Ok(ProviderClient { http, base_urls, credentials, scrubber })
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    fn base(&self, provider: ProviderId) -> &str {
        self.base_urls.iter().find(|(p, _)| *p == provider).map(|(_, u)| u.as_str()).unwrap_or_default()
    }

    fn request(&self, provider: ProviderId, symbol: &str) -> reqwest::RequestBuilder {
        let base = self.base(provider);
        let encoded = encode_path_segment(symbol);
        match provider {
            ProviderId::Alpaca => {
                let (id, secret) = self.credentials.alpaca.clone().unwrap_or_default();
                self.http
                    .get(format!("{base}/v2/stocks/{encoded}/quotes/latest"))
                    .header("APCA-API-KEY-ID", id)
                    .header("APCA-API-SECRET-KEY", secret)
            }
            ProviderId::Finnhub => self
                .http
                .get(format!("{base}/quote"))
                .query(&[("symbol", symbol)])
                .header("X-Finnhub-Token", self.credentials.finnhub.clone().unwrap_or_default()),
            ProviderId::TwelveData => self
                .http
                .get(format!("{base}/quote"))
                .query(&[("symbol", symbol)])
                .header("Authorization", format!("apikey {}", self.credentials.twelvedata.clone().unwrap_or_default())),
            ProviderId::AlphaVantage => self.http.get(format!("{base}/query")).query(&[
                ("function", "GLOBAL_QUOTE"),
                ("symbol", symbol),
                ("apikey", self.credentials.alphavantage.as_deref().unwrap_or_default()),
            ]),
            ProviderId::RapidApi => self
                .http
                .get(format!("{base}/query"))
                .query(&[("function", "GLOBAL_QUOTE"), ("symbol", symbol)])
                .header("X-RapidAPI-Key", self.credentials.rapidapi.clone().unwrap_or_default())
                .header("X-RapidAPI-Host", RAPIDAPI_HOST),
            ProviderId::Yahoo => self
                .http
                .get(format!("{base}/v8/finance/chart/{encoded}"))
                .query(&[("interval", "1d"), ("range", "5d")])
                .header("User-Agent", BROWSER_USER_AGENT),
        }
    }

    /// Sends one request and reads at most [`MAX_BODY_BYTES`] of the response body.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, Attempted> {
        let response = request.send().await.map_err(|err| self.transport_error(err))?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header("content-type");
        let retry_after = header("retry-after");
        let mut body = Vec::new();
        let mut response = response;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => return Err(self.transport_error(err)),
            }
        }
        Ok(Answer { status, content_type, retry_after, body })
    }

    fn transport_error(&self, err: reqwest::Error) -> Attempted {
        if err.is_timeout() {
            return Attempted::Timeout;
        }
        Attempted::Connect(self.scrubber.scrub_error(&err.without_url()))
    }

    /// Asks one provider for one symbol.
    pub async fn fetch(&self, provider: ProviderId, symbol: &Symbol, now: DateTime<Utc>) -> (Attempted, Duration) {
        let started = Instant::now();
        let result = match self.send(self.request(provider, symbol.as_str())).await {
            Ok(answer) => {
                let answer = answer.scrub_body(&self.scrubber);
                Attempted::Answered(self.scrubbed(classify(provider, symbol, &answer.raw(), now)))
            }
            Err(attempted) => attempted,
        };
        (result, started.elapsed())
    }

    /// Asks Alpaca for several symbols in one request.
    pub async fn fetch_alpaca_multi(&self, symbols: &[Symbol], now: DateTime<Utc>) -> (Result<Vec<(Symbol, Outcome)>, Attempted>, Duration) {
        let started = Instant::now();
        let (id, secret) = self.credentials.alpaca.clone().unwrap_or_default();
        let list = symbols.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let request = self
            .http
            .get(format!("{}/v2/stocks/quotes/latest", self.base(ProviderId::Alpaca)))
            .query(&[("symbols", list.as_str())])
            .header("APCA-API-KEY-ID", id)
            .header("APCA-API-SECRET-KEY", secret);
        let result = match self.send(request).await {
            Ok(answer) => Ok(classify_alpaca_multi(symbols, &answer.scrub_body(&self.scrubber).raw(), now)
                .into_iter()
                .map(|(symbol, outcome)| (symbol, self.scrubbed(outcome)))
                .collect()),
            Err(attempted) => Err(attempted),
        };
        (result, started.elapsed())
    }

    fn scrubbed(&self, outcome: Outcome) -> Outcome {
        let s = |detail: String| self.scrubber.scrub(&detail);
        match outcome {
            Outcome::Quote(q) => Outcome::Quote(q),
            Outcome::UnknownSymbol { detail } => Outcome::UnknownSymbol { detail: s(detail) },
            Outcome::RateLimited { wait, daily, detail } => Outcome::RateLimited { wait, daily, detail: s(detail) },
            Outcome::AuthError { detail } => Outcome::AuthError { detail: s(detail) },
            Outcome::Transient { detail } => Outcome::Transient { detail: s(detail) },
            Outcome::Malformed { detail } => Outcome::Malformed { detail: s(detail) },
        }
    }
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    /// Replaces every configured secret in a text body before it is classified, so that a key a
    /// provider echoes back cannot survive in a detail that the classifier shortens.
    fn scrub_body(mut self, scrubber: &Scrubber) -> Self {
        if scrubber.is_empty() {
            return self;
        }
        if let Ok(text) = std::str::from_utf8(&self.body) {
            let scrubbed = scrubber.scrub(text);
            if scrubbed != text {
                self.body = scrubbed.into_bytes();
            }
        }
        self
    }

    fn raw(&self) -> RawResponse<'_> {
        RawResponse {
            status: self.status,
            content_type: self.content_type.as_deref(),
            retry_after: self.retry_after.as_deref(),
            body: &self.body,
        }
    }
}

/// Percent-encodes a symbol for use as one URL path segment (`BRK/B`, `^GSPC`).
fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("BRK/B"), "BRK%2FB");
        assert_eq!(encode_path_segment("^GSPC"), "%5EGSPC");
        assert_eq!(encode_path_segment("BTC-USD"), "BTC-USD");
    }

    #[test]
    fn credentials_debug_hides_values() {
        let creds = Credentials { finnhub: Some("secret-finnhub-key".into()), ..Credentials::default() };
        let text = format!("{creds:?}");
        assert!(!text.contains("secret-finnhub-key"), "{text}");
        assert!(text.contains("finnhub: \"set\""), "{text}");
    }
}
