//! Classification of quote-provider HTTP responses.
//!
//! [`classify`] turns one HTTP response of one of the six quote providers (status, content
//! type, `Retry-After` header, body bytes) into an [`Outcome`]. The outcome is a price the cache
//! may keep or the reason there is none, in the vocabulary of `neolight quote` attempts
//! (`quote`, `unknown_symbol`, `rate_limited`, `auth_error`, `transient`, `malformed`).
//! [`classify_alpaca_multi`] does the same for Alpaca's multi-symbol latest-quote response.
//!
//! The functions are pure: the caller passes the clock reading `now`, and nothing outside the
//! response is read. They do not panic on any input bytes.
//!
//! Price rules shared by every provider:
//! - a missing, null, zero, negative or non-finite number is never a price;
//! - the price is the mid of a valid bid and ask (rounded to 8 decimal places, half to even),
//!   else the last trade; a crossed (bid above ask) or one-sided quote without a last trade is
//!   no tradable price, reported as [`Outcome::UnknownSymbol`];
//! - money is read from the number's text into a [`Decimal`], never computed through `f64`
//!   when the text is available.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use neolight_messages::Symbol;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value};

/// Longest `detail` text, in characters, before it is cut and ends with `…`.
const DETAIL_MAX_CHARS: usize = 200;

/// Decimal places of a mid price.
const MID_DP: u32 = 8;

/// Significant digits kept of a JSON number parsed as `f64`, because further digits may be noise.
const FLOAT_SIGNIFICANT_DIGITS: u32 = 15;

/// How far ahead of `now` an exchange time may be before it is ignored.
const MAX_CLOCK_AHEAD: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Bytes of a non-JSON body scanned to describe it in a `detail`.
const SUMMARY_SCAN_BYTES: usize = 16 * 1024;

/// A quote provider. Variants are declared in cascade order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderId {
    Alpaca,
    Finnhub,
    TwelveData,
    AlphaVantage,
    /// The Alpha Vantage listing on RapidAPI, which serves Alpha Vantage bodies through RapidAPI's
    /// gateway.
    RapidApi,
    Yahoo,
}

impl ProviderId {
    /// Every provider, in cascade order.
    pub const ALL: [ProviderId; 6] = [
        ProviderId::Alpaca,
        ProviderId::Finnhub,
        ProviderId::TwelveData,
        ProviderId::AlphaVantage,
        ProviderId::RapidApi,
        ProviderId::Yahoo,
    ];

    /// Returns the id used in routes, logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Alpaca => "alpaca",
            ProviderId::Finnhub => "finnhub",
            ProviderId::TwelveData => "twelvedata",
            ProviderId::AlphaVantage => "alphavantage",
            ProviderId::RapidApi => "rapidapi",
            ProviderId::Yahoo => "yahoo",
        }
    }

    /// Parses an id as [`ProviderId::as_str`] writes it, ignoring ASCII case and surrounding
    /// whitespace. Returns `None` for any other text.
    pub fn parse(text: &str) -> Option<ProviderId> {
        let text = text.trim();
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A price read from a provider; never zero, negative, non-finite or missing.
///
/// `bid` and `ask` are both set, with `bid <= ask`, exactly when `price` is their mid. Both are
/// `None` when the price is a last trade or a close. `exchange_time` is `None` when the provider
/// gave no usable time (missing, before 1990, or more than a day after `now`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedQuote {
    pub price: Decimal,
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    pub exchange_time: Option<DateTime<Utc>>,
}

/// Classification of one provider response for one symbol.
///
/// Every `detail` is a short human-readable text of at most about 200 characters. It contains
/// the provider's own message when there is one, and the HTTP status when it was not 2xx. It
/// may repeat secrets the provider echoed (API keys), so the caller scrubs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A tradable price.
    Quote(ParsedQuote),
    /// The provider does not know the symbol, or has no tradable price for it (zeros, nulls,
    /// a crossed or one-sided quote without a last trade, an empty result). This is not a
    /// provider failure, so the caller falls through to the next provider.
    UnknownSymbol { detail: String },
    /// Rejection of calls for a while. `wait` is the delay the response states: the
    /// `Retry-After` header, or the time to the next minute for a per-minute limit. `daily`
    /// marks a used-up quota that lasts until the provider's day (or longer period) resets.
    /// The caller computes that reset time, so `wait` is then set only by `Retry-After`.
    RateLimited {
        wait: Option<Duration>,
        daily: bool,
        detail: String,
    },
    /// A bad or missing key, or a plan that does not cover the endpoint. The error lasts until
    /// the configuration changes.
    AuthError { detail: String },
    /// A provider-side failure worth retrying later: 5xx, an unexpected status, or an error
    /// body that matches none of the other outcomes (including error bodies sent with HTTP 200).
    Transient { detail: String },
    /// A body that is not what the provider sends: not JSON, HTML, plain text or empty under
    /// HTTP 2xx, or JSON of the wrong shape.
    Malformed { detail: String },
}

impl Outcome {
    /// Returns the `attempts[].outcome` value of `neolight quote`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Quote(_) => "quote",
            Outcome::UnknownSymbol { .. } => "unknown_symbol",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::AuthError { .. } => "auth_error",
            Outcome::Transient { .. } => "transient",
            Outcome::Malformed { .. } => "malformed",
        }
    }

    /// Returns the detail text, which every outcome but a quote has.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Quote(_) => None,
            Outcome::UnknownSymbol { detail }
            | Outcome::RateLimited { detail, .. }
            | Outcome::AuthError { detail }
            | Outcome::Transient { detail }
            | Outcome::Malformed { detail } => Some(detail),
        }
    }
}

/// An HTTP response as the client received it.
#[derive(Debug, Clone, Copy)]
pub struct RawResponse<'a> {
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `Retry-After` header, if any: delay seconds or an HTTP-date.
    pub retry_after: Option<&'a str>,
    pub body: &'a [u8],
}

/// Classifies one provider response to a latest-price request for `symbol`.
///
/// The status is checked first. 429 is a rate limit whatever the body. 401 and 403 are auth or
/// plan errors, unless the body text describes a rate limit. 5xx is transient. Other non-2xx
/// statuses are transient unless the body describes a rate limit, an auth error or an unknown
/// symbol (an Alpaca JSON 404 and a Yahoo 404 chart error are unknown symbols). Under 2xx the
/// body must be JSON of the provider's shape, and error bodies are classified by their text.
pub fn classify(
    provider: ProviderId,
    symbol: &Symbol,
    response: &RawResponse<'_>,
    now: DateTime<Utc>,
) -> Outcome {
    let parsed = ParsedResponse::read(response, now);
    classify_parsed(provider, symbol, &parsed)
}

/// Classifies Alpaca's multi-symbol response (`/v2/stocks/quotes/latest?symbols=A,B`) into one
/// outcome per requested symbol, in request order.
///
/// A symbol missing from `quotes` is [`Outcome::UnknownSymbol`]. A response that is not a
/// `quotes` map (429, an error body, not JSON, ...) gives every symbol the same outcome.
pub fn classify_alpaca_multi(
    symbols: &[Symbol],
    response: &RawResponse<'_>,
    now: DateTime<Utc>,
) -> Vec<(Symbol, Outcome)> {
    let parsed = ParsedResponse::read(response, now);
    symbols
        .iter()
        .map(|symbol| {
            let outcome = classify_parsed(ProviderId::Alpaca, symbol, &parsed);
            (symbol.clone(), outcome)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The response, parsed once.

/// Kind of response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Empty,
    Json,
    Html,
    Text,
    /// Body that starts like JSON but does not parse (truncated, invalid UTF-8, too deep,
    /// number out of range, ...).
    BrokenJson,
    Binary,
}

struct ParsedResponse<'r> {
    status: u16,
    retry_after: Option<&'r str>,
    now: DateTime<Utc>,
    json: Option<Value>,
    kind: BodyKind,
    /// Gist of a body that is not JSON (see [`describe_non_json`]).
    summary: String,
}

impl<'r> ParsedResponse<'r> {
    fn read(response: &RawResponse<'r>, now: DateTime<Utc>) -> ParsedResponse<'r> {
        let body = response.body;
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let trimmed = trim_ascii_bytes(body);
        let (json, kind, summary) = if trimmed.is_empty() {
            (None, BodyKind::Empty, "empty body".to_owned())
        } else {
            match serde_json::from_slice::<Value>(trimmed) {
                Ok(value) => (Some(value), BodyKind::Json, String::new()),
                Err(error) => {
                    let (kind, summary) = describe_non_json(trimmed, response.content_type, &error);
                    (None, kind, summary)
                }
            }
        };
        ParsedResponse {
            status: response.status,
            retry_after: response.retry_after,
            now,
            json,
            kind,
            summary,
        }
    }

    fn is_success(&self) -> bool {
        (200..=299).contains(&self.status)
    }

    /// Formats `text` as a detail, prefixed with the HTTP status when it is not 2xx.
    fn detail(&self, text: &str) -> String {
        let text = clip(text);
        match (self.is_success(), text.is_empty()) {
            (true, true) => "error body without a message".to_owned(),
            (true, false) => text,
            (false, true) => format!("HTTP {}", self.status),
            (false, false) => format!("HTTP {}: {}", self.status, text),
        }
    }

    /// Returns the provider's message for outcomes decided by the status: the error text of a
    /// JSON body, else a description of the body.
    fn message(&self, provider: ProviderId) -> String {
        match &self.json {
            Some(value) => match value.as_object() {
                Some(obj) => provider_message(provider, obj).unwrap_or_else(|| compact(value)),
                None => compact(value),
            },
            None => match self.kind {
                BodyKind::Empty => String::new(),
                BodyKind::Html => format!("HTML page: {}", self.summary),
                _ => self.summary.clone(),
            },
        }
    }

    /// Builds the outcome of a 2xx body that is not JSON.
    fn not_json(&self) -> Outcome {
        let text = match self.kind {
            BodyKind::Html => format!("HTML instead of JSON: {}", self.summary),
            BodyKind::Text => format!("text instead of JSON: {}", self.summary),
            _ => self.summary.clone(),
        };
        self.malformed(text)
    }

    /// Builds a rate limit from `text`, the provider's message (possibly empty).
    fn rate_limited(&self, text: &str) -> Outcome {
        let lower = text.to_lowercase();
        let per_minute = lower.contains("minute");
        // A text naming both a per-minute and a per-day limit counts as per-minute. Misreading
        // a minute as a day would shut the provider for the rest of the day.
        let daily = !per_minute && contains_any(&lower, DAILY_PHRASES);
        let header = self
            .retry_after
            .and_then(|value| parse_retry_after(value, self.now));
        let wait = header.or_else(|| per_minute.then(|| until_next_minute(self.now)));
        Outcome::RateLimited {
            wait,
            daily,
            detail: self.detail(text),
        }
    }

    /// Classifies a provider's error text, using `fallback` when it describes no rate limit,
    /// auth error or unknown symbol.
    fn outcome_for_text(&self, text: &str, fallback: Fallback) -> Outcome {
        match classify_text(text) {
            TextKind::RateLimit => self.rate_limited(text),
            TextKind::Auth => Outcome::AuthError {
                detail: self.detail(text),
            },
            TextKind::UnknownSymbol => Outcome::UnknownSymbol {
                detail: self.detail(text),
            },
            TextKind::Other => match fallback {
                Fallback::Transient => Outcome::Transient {
                    detail: self.detail(text),
                },
                Fallback::UnknownSymbol => Outcome::UnknownSymbol {
                    detail: self.detail(text),
                },
            },
        }
    }

    fn unknown(&self, text: impl AsRef<str>) -> Outcome {
        Outcome::UnknownSymbol {
            detail: self.detail(text.as_ref()),
        }
    }

    fn malformed(&self, text: impl AsRef<str>) -> Outcome {
        Outcome::Malformed {
            detail: self.detail(text.as_ref()),
        }
    }

    /// Reads an exchange time from `value`, if usable.
    fn time(&self, value: Option<&Value>) -> Option<DateTime<Utc>> {
        value.and_then(|v| read_time(v, self.now))
    }
}

/// Outcome of an error text that describes no rate limit, auth error or unknown symbol.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    Transient,
    UnknownSymbol,
}

/// Classifies a parsed response as [`classify`] documents.
fn classify_parsed(provider: ProviderId, symbol: &Symbol, parsed: &ParsedResponse<'_>) -> Outcome {
    match parsed.status {
        429 => parsed.rate_limited(&parsed.message(provider)),
        401 | 403 => {
            let message = parsed.message(provider);
            if classify_text(&message) == TextKind::RateLimit {
                parsed.rate_limited(&message)
            } else {
                Outcome::AuthError {
                    detail: parsed.detail(&message),
                }
            }
        }
        500..=599 => Outcome::Transient {
            detail: parsed.detail(&parsed.message(provider)),
        },
        200..=299 => classify_success(provider, symbol, parsed),
        _ => classify_other_status(provider, parsed),
    }
}

/// Classifies a 2xx response: the provider's data shape, else its error body, else malformed.
fn classify_success(provider: ProviderId, symbol: &Symbol, parsed: &ParsedResponse<'_>) -> Outcome {
    let Some(value) = &parsed.json else {
        return parsed.not_json();
    };
    let Some(obj) = value.as_object() else {
        return parsed.malformed(format!(
            "JSON {} where an object was expected: {}",
            json_kind(value),
            compact(value)
        ));
    };
    let data = match provider {
        ProviderId::Alpaca => alpaca_data(symbol, obj, parsed),
        ProviderId::Finnhub => finnhub_data(obj, parsed),
        ProviderId::TwelveData => twelvedata_data(obj, parsed),
        ProviderId::AlphaVantage | ProviderId::RapidApi => global_quote_data(obj, parsed),
        ProviderId::Yahoo => yahoo_data(obj, parsed),
    };
    if let Some(outcome) = data {
        return outcome;
    }
    if let Some(outcome) = error_body(provider, obj, parsed) {
        return outcome;
    }
    parsed.malformed(format!("unexpected JSON shape: {}", describe_keys(obj)))
}

/// Classifies a status that is neither 2xx, 401, 403, 429 nor 5xx (other 4xx, 1xx, 3xx).
fn classify_other_status(provider: ProviderId, parsed: &ParsedResponse<'_>) -> Outcome {
    let obj = parsed.json.as_ref().and_then(Value::as_object);
    if let Some(outcome) = obj.and_then(|obj| error_body(provider, obj, parsed)) {
        if !matches!(outcome, Outcome::Transient { .. }) {
            return outcome;
        }
    }
    // An Alpaca 404 with a JSON body means an unknown symbol. A 404 that is not JSON more
    // likely comes from a proxy or a wrong base URL, so it does not identify the symbol.
    if parsed.status == 404 && provider == ProviderId::Alpaca && parsed.json.is_some() {
        return parsed.unknown(parsed.message(provider));
    }
    Outcome::Transient {
        detail: parsed.detail(&parsed.message(provider)),
    }
}

// ---------------------------------------------------------------------------------------------
// Error bodies.

/// Classifies an error body of `provider`. Returns `None` when `obj` is not an error body.
fn error_body(
    provider: ProviderId,
    obj: &Map<String, Value>,
    parsed: &ParsedResponse<'_>,
) -> Option<Outcome> {
    match provider {
        ProviderId::TwelveData => {
            if let Some(outcome) = twelvedata_error(obj, parsed) {
                return Some(outcome);
            }
        }
        ProviderId::AlphaVantage | ProviderId::RapidApi => {
            if let Some(text) = string_field(obj, "Error Message") {
                // Alpha Vantage sends "Invalid API call" for a symbol it does not have.
                return Some(parsed.outcome_for_text(text, Fallback::UnknownSymbol));
            }
        }
        ProviderId::Yahoo => {
            if let Some(outcome) = yahoo_error(obj, parsed) {
                return Some(outcome);
            }
        }
        ProviderId::Alpaca | ProviderId::Finnhub => {}
    }
    let text = generic_message(obj)?;
    Some(parsed.outcome_for_text(&text, Fallback::Transient))
}

/// Classifies Twelve Data's `{"code": N, "message": "...", "status": "error"}`.
fn twelvedata_error(obj: &Map<String, Value>, parsed: &ParsedResponse<'_>) -> Option<Outcome> {
    let flagged = obj.get("status").and_then(Value::as_str) == Some("error");
    let code = obj.get("code").and_then(integer);
    if !flagged && code.is_none() {
        return None;
    }
    let message = string_field(obj, "message").unwrap_or("");
    let text = match code {
        Some(code) if message.is_empty() => format!("code {code}"),
        Some(code) => format!("code {code}: {message}"),
        None => message.to_owned(),
    };
    Some(match code {
        Some(429) => parsed.rate_limited(&text),
        Some(401) | Some(403) => Outcome::AuthError {
            detail: parsed.detail(&text),
        },
        Some(500..=599) => Outcome::Transient {
            detail: parsed.detail(&text),
        },
        _ => match classify_text(message) {
            TextKind::RateLimit => parsed.rate_limited(&text),
            TextKind::Auth => Outcome::AuthError {
                detail: parsed.detail(&text),
            },
            TextKind::UnknownSymbol => parsed.unknown(&text),
            TextKind::Other => Outcome::Transient {
                detail: parsed.detail(&text),
            },
        },
    })
}

/// Classifies Yahoo's `{"chart": {"result": null, "error": {"code", "description"}}}` (or
/// the same under `finance`).
fn yahoo_error(obj: &Map<String, Value>, parsed: &ParsedResponse<'_>) -> Option<Outcome> {
    let (code, description) = yahoo_error_parts(obj)?;
    let text = join_code(&code, &description);
    if code.eq_ignore_ascii_case("not found")
        || classify_text(&description) == TextKind::UnknownSymbol
    {
        return Some(parsed.unknown(&text));
    }
    Some(parsed.outcome_for_text(&text, Fallback::Transient))
}

fn yahoo_error_parts(obj: &Map<String, Value>) -> Option<(String, String)> {
    ["chart", "finance"].iter().find_map(|root| {
        let error = obj.get(*root)?.get("error")?;
        match error {
            Value::Null => None,
            Value::Object(err) => Some((
                scalar_text(err.get("code")).unwrap_or_default(),
                scalar_text(err.get("description")).unwrap_or_default(),
            )),
            other => Some((String::new(), scalar_text(Some(other)).unwrap_or_default())),
        }
    })
}

/// Returns the message of a provider's error body, for details.
fn provider_message(provider: ProviderId, obj: &Map<String, Value>) -> Option<String> {
    match provider {
        ProviderId::Yahoo => {
            if let Some((code, description)) = yahoo_error_parts(obj) {
                return Some(join_code(&code, &description));
            }
        }
        ProviderId::TwelveData => {
            if let Some(code) = obj.get("code").and_then(integer) {
                let message = string_field(obj, "message").unwrap_or("");
                return Some(join_code(&code.to_string(), message));
            }
        }
        _ => {}
    }
    generic_message(obj)
}

/// Returns the text under the first key that providers use for error messages.
fn generic_message(obj: &Map<String, Value>) -> Option<String> {
    const KEYS: [&str; 9] = [
        "message",
        "error",
        "Error Message",
        "Information",
        "Note",
        "detail",
        "description",
        "msg",
        "errors",
    ];
    KEYS.iter().find_map(|key| match obj.get(*key)? {
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        Value::Object(inner) => ["message", "description", "detail", "code"]
            .iter()
            .find_map(|k| scalar_text(inner.get(*k)).filter(|t| !t.trim().is_empty())),
        Value::Array(items) => items.iter().find_map(|item| match item {
            Value::String(text) => Some(text.clone()),
            Value::Object(inner) => scalar_text(inner.get("message")),
            _ => None,
        }),
        _ => None,
    })
}

fn join_code(code: &str, text: &str) -> String {
    match (code.trim().is_empty(), text.trim().is_empty()) {
        (true, _) => text.to_owned(),
        (false, true) => code.to_owned(),
        (false, false) => format!("{code}: {text}"),
    }
}

/// Topic of a provider's error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    RateLimit,
    Auth,
    UnknownSymbol,
    Other,
}

const RATE_LIMIT_PHRASES: &[&str] = &[
    "rate limit",
    "rate-limit",
    "ratelimit",
    "too many requests",
    "too many calls",
    "api limit",
    "limit reached",
    "limit exceeded",
    "run out of",
    "api credits",
    "call frequency",
    "requests per",
    "calls per",
    "quota",
    "throttl",
];

/// Phrases of a quota that resets after a day or longer. A monthly quota is reported as daily
/// too, so the caller probes once a day instead of calling against a spent quota.
const DAILY_PHRASES: &[&str] = &[
    "per day",
    "daily",
    "for the day",
    "next day",
    "a day",
    "/day",
    "per month",
    "monthly",
    "for the month",
    "next month",
];

const AUTH_PHRASES: &[&str] = &[
    "api key",
    "apikey",
    "api_key",
    "api token",
    "invalid token",
    "unauthorized",
    "unauthorised",
    "not authorized",
    "forbidden",
    "not subscribed",
    "subscription",
    "have access",
    "access denied",
    "permission",
    "premium endpoint",
    "authentication",
    "credentials",
];

const UNKNOWN_SYMBOL_PHRASES: &[&str] = &["symbol", "ticker", "delisted", "no data", "not found"];

/// Classifies an error text by its phrases: rate limit first (Alpha Vantage's quota text also
/// names the key), then auth, then unknown symbol.
///
/// NOTE: the phrase lists cover the provider texts known so far. A new wording falls back to
/// transient (or to unknown symbol for Alpha Vantage's `Error Message`).
fn classify_text(text: &str) -> TextKind {
    let lower = text.to_lowercase();
    if contains_any(&lower, RATE_LIMIT_PHRASES) {
        TextKind::RateLimit
    } else if contains_any(&lower, AUTH_PHRASES) {
        TextKind::Auth
    } else if contains_any(&lower, UNKNOWN_SYMBOL_PHRASES) {
        TextKind::UnknownSymbol
    } else {
        TextKind::Other
    }
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|needle| haystack.contains(needle))
}

// ---------------------------------------------------------------------------------------------
// Data shapes. Each function returns `None` when `obj` is not the provider's data shape at
// all, so that error bodies and wrong shapes are checked next.

/// Reads Alpaca's `{"symbol", "quote": {"ap", "bp", "t"}}`, `{"symbol", "trade": {"p", "t"}}`,
/// `{"quotes": {SYM: quote}}`, `{"trades": {SYM: trade}}`, and a snapshot
/// `{"latestQuote", "latestTrade"}`.
fn alpaca_data(
    symbol: &Symbol,
    obj: &Map<String, Value>,
    parsed: &ParsedResponse<'_>,
) -> Option<Outcome> {
    let single = ["quote", "trade", "latestQuote", "latestTrade"]
        .iter()
        .any(|key| obj.contains_key(*key));
    if single {
        if let Some(response_symbol) = obj.get("symbol").and_then(Value::as_str) {
            if !same_symbol(response_symbol, symbol.as_str()) {
                return Some(parsed.malformed(format!(
                    "response is for {}, expected {}",
                    clip(response_symbol),
                    symbol
                )));
            }
        }
    }
    if let Some(quote) = obj.get("quote") {
        return Some(alpaca_quote(quote, None, parsed));
    }
    if let Some(trade) = obj.get("trade") {
        return Some(alpaca_trade(trade, parsed));
    }
    if obj.contains_key("latestQuote") || obj.contains_key("latestTrade") {
        return Some(alpaca_snapshot(obj, parsed));
    }
    for (key, noun) in [("quotes", "quote"), ("trades", "trade")] {
        let Some(map) = obj.get(key) else { continue };
        return Some(match map {
            Value::Object(entries) => match lookup_symbol(entries, symbol) {
                Some(entry) if key == "quotes" => alpaca_quote(entry, None, parsed),
                Some(entry) => alpaca_trade(entry, parsed),
                None => parsed.unknown(format!("no {noun} for {symbol} in the response")),
            },
            Value::Null => parsed.unknown(format!("{key} is null")),
            other => parsed.malformed(format!("{key} is a JSON {}", json_kind(other))),
        });
    }
    if obj.contains_key("symbol") && obj.len() == 1 {
        return Some(parsed.unknown(format!("response for {symbol} has no quote")));
    }
    None
}

/// Reads an Alpaca quote object. `trade` is the last trade price to fall back on, with its time.
fn alpaca_quote(
    quote: &Value,
    trade: Option<(Decimal, Option<DateTime<Utc>>)>,
    parsed: &ParsedResponse<'_>,
) -> Outcome {
    let (bid, ask, time) = match quote {
        Value::Object(q) => (
            price(q.get("bp")),
            price(q.get("ap")),
            parsed.time(q.get("t")),
        ),
        Value::Null => (None, None, None),
        other => return parsed.malformed(format!("quote is a JSON {}", json_kind(other))),
    };
    match pick(bid, ask, trade.map(|(price, _)| price)) {
        Ok(Pick::Mid { price, bid, ask }) => Outcome::Quote(ParsedQuote {
            price,
            bid: Some(bid),
            ask: Some(ask),
            exchange_time: time,
        }),
        Ok(Pick::Last(price)) => Outcome::Quote(ParsedQuote {
            price,
            bid: None,
            ask: None,
            exchange_time: trade.and_then(|(_, time)| time),
        }),
        Err(reason) if quote.is_null() => parsed.unknown(format!("quote is null; {reason}")),
        Err(reason) => parsed.unknown(reason),
    }
}

fn alpaca_trade(trade: &Value, parsed: &ParsedResponse<'_>) -> Outcome {
    match trade {
        Value::Object(t) => match price(t.get("p")) {
            Some(price) => Outcome::Quote(ParsedQuote {
                price,
                bid: None,
                ask: None,
                exchange_time: parsed.time(t.get("t")),
            }),
            None => parsed.unknown(format!("no usable trade price (p = {})", shown(t.get("p")))),
        },
        Value::Null => parsed.unknown("trade is null"),
        other => parsed.malformed(format!("trade is a JSON {}", json_kind(other))),
    }
}

fn alpaca_snapshot(obj: &Map<String, Value>, parsed: &ParsedResponse<'_>) -> Outcome {
    let trade = obj
        .get("latestTrade")
        .and_then(Value::as_object)
        .and_then(|t| Some((price(t.get("p"))?, parsed.time(t.get("t")))));
    alpaca_quote(
        obj.get("latestQuote").unwrap_or(&Value::Null),
        trade,
        parsed,
    )
}

/// Reads Finnhub's `{"c", "d", "dp", "h", "l", "o", "pc", "t"}`: price `c`, time `t`.
fn finnhub_data(obj: &Map<String, Value>, parsed: &ParsedResponse<'_>) -> Option<Outcome> {
    let current = obj.get("c")?;
    let zero_or_absent = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(value) => decimal(value) == Some(Decimal::ZERO),
    };
    if ["c", "h", "l", "o", "pc", "t"]
        .iter()
        .all(|key| zero_or_absent(key))
    {
        return Some(parsed.unknown("all-zero quote: symbol unknown to finnhub"));
    }
    Some(match price(Some(current)) {
        Some(price) => Outcome::Quote(ParsedQuote {
            price,
            bid: None,
            ask: None,
            exchange_time: parsed.time(obj.get("t")),
        }),
        None => parsed.unknown(format!("no usable price (c = {})", shown(Some(current)))),
    })
}

/// Reads Twelve Data's `/quote` (`close`, time `last_quote_at` else `timestamp`) and `/price`
/// (`price`, no time). `is_market_open` does not change the price, because out of session
/// `close` is the session's close, which is the last trade.
fn twelvedata_data(obj: &Map<String, Value>, parsed: &ParsedResponse<'_>) -> Option<Outcome> {
    if obj.get("status").and_then(Value::as_str) == Some("error") {
        return None;
    }
    if let Some(close) = obj.get("close") {
        return Some(match price(Some(close)) {
            Some(price) => Outcome::Quote(ParsedQuote {
                price,
                bid: None,
                ask: None,
                exchange_time: parsed
                    .time(obj.get("last_quote_at"))
                    .or_else(|| parsed.time(obj.get("timestamp"))),
            }),
            None => parsed.unknown(format!("no usable close (close = {})", shown(Some(close)))),
        });
    }
    let value = obj.get("price")?;
    Some(match price(Some(value)) {
        Some(price) => Outcome::Quote(ParsedQuote {
            price,
            bid: None,
            ask: None,
            exchange_time: None,
        }),
        None => parsed.unknown(format!("no usable price (price = {})", shown(Some(value)))),
    })
}

/// Reads Alpha Vantage's `GLOBAL_QUOTE`, directly or through RapidAPI:
/// `{"Global Quote": {"05. price", "07. latest trading day", ...}}`.
fn global_quote_data(obj: &Map<String, Value>, parsed: &ParsedResponse<'_>) -> Option<Outcome> {
    let quote = obj.get("Global Quote")?;
    Some(match quote {
        Value::Object(q) if q.is_empty() => {
            parsed.unknown("empty \"Global Quote\": symbol unknown to the provider")
        }
        Value::Object(q) => match q.get("05. price") {
            None => parsed.malformed(format!(
                "\"Global Quote\" has no \"05. price\": {}",
                describe_keys(q)
            )),
            Some(value) => match price(Some(value)) {
                Some(price) => Outcome::Quote(ParsedQuote {
                    price,
                    bid: None,
                    ask: None,
                    exchange_time: parsed.time(q.get("07. latest trading day")),
                }),
                None => parsed.unknown(format!(
                    "no usable price (05. price = {})",
                    shown(Some(value))
                )),
            },
        },
        Value::Null => parsed.unknown("\"Global Quote\" is null"),
        other => parsed.malformed(format!("\"Global Quote\" is a JSON {}", json_kind(other))),
    })
}

/// Reads Yahoo's chart: `chart.result[0].meta.regularMarketPrice` at `meta.regularMarketTime`,
/// else the last usable close of `indicators.quote[0].close` at its `timestamp` entry.
///
/// When `regularMarketTime` is missing, `regularMarketPrice` gets the timestamp of the last bar
/// with a usable close. The price is at least that recent, so the time errs on the old side.
fn yahoo_data(obj: &Map<String, Value>, parsed: &ParsedResponse<'_>) -> Option<Outcome> {
    let chart = obj.get("chart")?.as_object()?;
    let result = chart.get("result")?;
    let first = match result {
        Value::Array(items) if !items.is_empty() => &items[0],
        Value::Null | Value::Array(_) => {
            if yahoo_error_parts(obj).is_some() {
                return None;
            }
            return Some(parsed.unknown("empty chart result"));
        }
        other => {
            return Some(parsed.malformed(format!("chart.result is a JSON {}", json_kind(other))))
        }
    };
    let Some(first) = first.as_object() else {
        return Some(parsed.malformed(format!("chart.result[0] is a JSON {}", json_kind(first))));
    };
    let meta = first.get("meta").and_then(Value::as_object);
    let indicators = first.get("indicators").and_then(Value::as_object);
    if meta.is_none() && indicators.is_none() {
        return Some(parsed.malformed(format!(
            "chart.result[0] has neither meta nor indicators: {}",
            describe_keys(first)
        )));
    }
    let last_close = yahoo_last_close(first, indicators, parsed);
    if let Some(price) = meta.and_then(|m| price(m.get("regularMarketPrice"))) {
        let time = meta
            .and_then(|m| parsed.time(m.get("regularMarketTime")))
            .or_else(|| last_close.and_then(|(_, time)| time));
        return Some(Outcome::Quote(ParsedQuote {
            price,
            bid: None,
            ask: None,
            exchange_time: time,
        }));
    }
    Some(match last_close {
        Some((price, time)) => Outcome::Quote(ParsedQuote {
            price,
            bid: None,
            ask: None,
            exchange_time: time,
        }),
        None => parsed.unknown("chart has no usable regularMarketPrice or close"),
    })
}

/// Returns the last usable close and its time.
fn yahoo_last_close(
    result: &Map<String, Value>,
    indicators: Option<&Map<String, Value>>,
    parsed: &ParsedResponse<'_>,
) -> Option<(Decimal, Option<DateTime<Utc>>)> {
    let closes = indicators?
        .get("quote")?
        .as_array()?
        .first()?
        .get("close")?
        .as_array()?;
    let timestamps = result.get("timestamp").and_then(Value::as_array);
    closes.iter().enumerate().rev().find_map(|(index, close)| {
        let price = price(Some(close))?;
        let time = timestamps.and_then(|ts| parsed.time(ts.get(index)));
        Some((price, time))
    })
}

// ---------------------------------------------------------------------------------------------
// Prices.

enum Pick {
    Mid {
        price: Decimal,
        bid: Decimal,
        ask: Decimal,
    },
    Last(Decimal),
}

/// Picks the mid of a valid bid and ask, else the last trade. `Err` explains why there is no
/// price. `bid`, `ask` and `last` are already known to be positive.
fn pick(bid: Option<Decimal>, ask: Option<Decimal>, last: Option<Decimal>) -> Result<Pick, String> {
    let problem = match (bid, ask) {
        (Some(bid), Some(ask)) if bid <= ask => match mid(bid, ask) {
            Some(price) => return Ok(Pick::Mid { price, bid, ask }),
            None => format!("no usable mid of bid {bid} and ask {ask}"),
        },
        (Some(bid), Some(ask)) => format!("crossed quote: bid {bid} > ask {ask}"),
        (Some(bid), None) => format!("one-sided quote: bid {bid}, no ask"),
        (None, Some(ask)) => format!("one-sided quote: ask {ask}, no bid"),
        (None, None) => "no usable bid or ask".to_owned(),
    };
    match last {
        Some(last) => Ok(Pick::Last(last)),
        None => Err(format!("{problem}, and no last trade")),
    }
}

/// Computes `(bid + ask) / 2` rounded to [`MID_DP`] places, half to even. Returns `None` if it
/// overflows or rounds to zero.
fn mid(bid: Decimal, ask: Decimal) -> Option<Decimal> {
    let sum = bid.checked_add(ask)?;
    let half = sum.checked_div(Decimal::TWO)?;
    let rounded = half
        .round_dp_with_strategy(MID_DP, RoundingStrategy::MidpointNearestEven)
        .normalize();
    (rounded > Decimal::ZERO).then_some(rounded)
}

/// Reads a positive price, or returns `None`.
fn price(value: Option<&Value>) -> Option<Decimal> {
    decimal(value?).filter(|d| *d > Decimal::ZERO)
}

/// Reads a finite decimal from a JSON number or numeric string. In a string, spaces, a leading
/// `+` and a trailing `%` are ignored, and exponents are accepted. An object
/// `{"raw": n, "fmt": "..."}` is read through `raw`.
fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(number) => {
            let text = number.to_string();
            let parsed = parse_decimal_text(&text)?;
            if number.is_f64() {
                // Without its float_roundtrip feature, serde_json may parse a long number one
                // binary digit off. Rounding removes the spurious digits this adds to the text.
                parsed
                    .round_sf(FLOAT_SIGNIFICANT_DIGITS)
                    .map(|d| d.normalize())
            } else {
                Some(parsed)
            }
        }
        Value::String(text) => {
            let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let cleaned = cleaned.strip_suffix('%').unwrap_or(&cleaned);
            parse_decimal_text(cleaned)
        }
        Value::Object(obj) => obj.get("raw").and_then(decimal),
        _ => None,
    }
}

fn parse_decimal_text(text: &str) -> Option<Decimal> {
    let text = text.strip_prefix('+').unwrap_or(text);
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    let digits = text.bytes().any(|b| b.is_ascii_digit());
    if text.is_empty() || !digits {
        return None;
    }
    let parsed = if plain {
        Decimal::from_str(text).ok()?
    } else if text
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        Decimal::from_scientific(text).ok()?
    } else {
        return None;
    };
    Some(parsed.normalize())
}

/// Reads an integer from a JSON number or numeric string.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Times.

/// Reads an exchange time from epoch seconds, milliseconds, microseconds or nanoseconds
/// (distinguished by magnitude), an RFC 3339 text, `YYYY-MM-DD HH:MM:SS` (UTC), or a trading
/// date `YYYY-MM-DD`. Returns `None` when unreadable, before 1990, or more than a day after
/// `now`.
///
/// A trading date means 20:00Z of that day, the close of the US regular session in summer and
/// an hour before it in winter, so never after the day's last trade; it is further capped at
/// `now`, because during the session the date is today's and the price is not from the future.
fn read_time(value: &Value, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let time = match value {
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                epoch_integer(i128::from(int))
            } else if let Some(int) = number.as_u64() {
                epoch_integer(i128::from(int))
            } else {
                epoch_float(number.as_f64()?)
            }
        }
        Value::String(text) => return read_time_text(text.trim(), now),
        Value::Object(obj) => return read_time(obj.get("raw")?, now),
        _ => None,
    }?;
    sane_time(time, now)
}

fn read_time_text(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if text.is_empty() {
        return None;
    }
    if let Ok(int) = text.parse::<i128>() {
        return sane_time(epoch_integer(int)?, now);
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return sane_time(epoch_float(text.parse().ok()?)?, now);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return sane_time(time.with_timezone(&Utc), now);
    }
    if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return sane_time(Utc.from_utc_datetime(&time), now);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let close = Utc.from_utc_datetime(&date.and_hms_opt(20, 0, 0)?);
    sane_time(close, now).map(|time| time.min(now))
}

fn epoch_integer(value: i128) -> Option<DateTime<Utc>> {
    let (units_per_second, nanos_per_unit): (i128, i128) = if value > 100_000_000_000_000_000 {
        (1_000_000_000, 1)
    } else if value > 100_000_000_000_000 {
        (1_000_000, 1_000)
    } else if value > 100_000_000_000 {
        (1_000, 1_000_000)
    } else {
        (1, 0)
    };
    let seconds = i64::try_from(value.div_euclid(units_per_second)).ok()?;
    let nanos = u32::try_from(value.rem_euclid(units_per_second) * nanos_per_unit).ok()?;
    DateTime::from_timestamp(seconds, nanos)
}

fn epoch_float(value: f64) -> Option<DateTime<Utc>> {
    if !value.is_finite() {
        return None;
    }
    let scale = if value > 1e17 {
        1e9
    } else if value > 1e14 {
        1e6
    } else if value > 1e11 {
        1e3
    } else {
        1.0
    };
    let seconds = value / scale;
    if !(-1e12..=1e12).contains(&seconds) {
        return None;
    }
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round().clamp(0.0, 999_999_999.0);
    DateTime::from_timestamp(whole as i64, nanos as u32)
}

fn sane_time(time: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let earliest = Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).single()?;
    let latest = now.checked_add_signed(MAX_CLOCK_AHEAD).unwrap_or(now);
    (time >= earliest && time <= latest).then_some(time)
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP-date (a past date waits zero).
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Duration::try_from_secs_f64(value.parse().ok()?).ok();
    }
    let at = DateTime::parse_from_rfc2822(value)
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Returns the time from `now` to the start of the next UTC minute, in (0, 60] seconds.
fn until_next_minute(now: DateTime<Utc>) -> Duration {
    let seconds = u64::try_from(now.timestamp().rem_euclid(60)).unwrap_or(0);
    let nanos = now.timestamp_subsec_nanos().min(999_999_999);
    Duration::from_secs(60).saturating_sub(Duration::new(seconds, nanos))
}

// ---------------------------------------------------------------------------------------------
// Text helpers.

/// Returns the kind of a body that is not JSON, and its gist: an HTML page's title or text,
/// the start of a text, or the JSON parse error.
fn describe_non_json(
    body: &[u8],
    content_type: Option<&str>,
    error: &serde_json::Error,
) -> (BodyKind, String) {
    let head = &body[..body.len().min(SUMMARY_SCAN_BYTES)];
    let text = String::from_utf8_lossy(head);
    let content_type = content_type.unwrap_or("").to_ascii_lowercase();
    let first = text.trim_start().chars().next().unwrap_or(' ');
    if content_type.contains("html") || first == '<' {
        let gist = html_title(&text).unwrap_or_else(|| collapse(&strip_tags(&text)));
        return (BodyKind::Html, gist);
    }
    if first == '{' || first == '[' || content_type.contains("json") {
        return (BodyKind::BrokenJson, format!("invalid JSON ({error})"));
    }
    if std::str::from_utf8(body).is_err() {
        return (
            BodyKind::Binary,
            format!("{} bytes that are not UTF-8 text", body.len()),
        );
    }
    (BodyKind::Text, collapse(&text))
}

fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title = collapse(html.get(start..end)?);
    (!title.is_empty()).then_some(title)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(1024));
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
        if out.len() > 4 * DETAIL_MAX_CHARS {
            break;
        }
    }
    out
}

/// Replaces whitespace runs with single spaces and trims the ends.
fn collapse(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > 4 * DETAIL_MAX_CHARS {
            break;
        }
    }
    out
}

/// Collapses `text` and cuts it to [`DETAIL_MAX_CHARS`] characters, ending with `…` when cut.
fn clip(text: &str) -> String {
    let collapsed = collapse(text);
    if collapsed.chars().count() <= DETAIL_MAX_CHARS {
        return collapsed;
    }
    let mut out: String = collapsed.chars().take(DETAIL_MAX_CHARS - 1).collect();
    out.push('…');
    out
}

/// Formats a JSON value as compact text, cut for a detail.
fn compact(value: &Value) -> String {
    clip(&value.to_string())
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None => "missing".to_owned(),
        Some(value) => {
            let text = value.to_string();
            let mut out: String = text.chars().take(40).collect();
            if out.len() < text.len() {
                out.push('…');
            }
            out
        }
    }
}

fn describe_keys(obj: &Map<String, Value>) -> String {
    if obj.is_empty() {
        return "empty object".to_owned();
    }
    let keys: Vec<&str> = obj.keys().take(8).map(String::as_str).collect();
    let more = if obj.len() > keys.len() { ", …" } else { "" };
    format!("keys {}{more}", keys.join(", "))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn string_field<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    obj.get(key).and_then(Value::as_str)
}

fn scalar_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn trim_ascii_bytes(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Compares symbols on their letters and digits, ignoring case and punctuation
/// (`BRK.B`, `BRK/B` and `brk-b` are one symbol).
fn same_symbol(a: &str, b: &str) -> bool {
    let key = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect()
    };
    key(a) == key(b)
}

fn lookup_symbol<'v>(entries: &'v Map<String, Value>, symbol: &Symbol) -> Option<&'v Value> {
    entries.get(symbol.as_str()).or_else(|| {
        entries
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(symbol.as_str()))
            .map(|(_, value)| value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    /// 2024-05-14T21:00:15.5Z: after every sample's exchange time, 44.5 s before a new minute.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 14, 21, 0, 15).unwrap() + chrono::TimeDelta::milliseconds(500)
    }

    const TO_NEXT_MINUTE: Duration = Duration::from_millis(44_500);

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn at(seconds: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(seconds, 0)
    }

    fn rfc(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    #[derive(Debug, Clone)]
    enum Expect {
        Quote {
            price: &'static str,
            bid: Option<&'static str>,
            ask: Option<&'static str>,
            time: Option<DateTime<Utc>>,
        },
        Rate {
            wait: Option<Duration>,
            daily: bool,
        },
        Label(&'static str),
        NotQuote,
    }

    fn quote(price: &'static str, time: Option<DateTime<Utc>>) -> Expect {
        Expect::Quote {
            price,
            bid: None,
            ask: None,
            time,
        }
    }

    fn mid(
        price: &'static str,
        bid: &'static str,
        ask: &'static str,
        time: Option<DateTime<Utc>>,
    ) -> Expect {
        Expect::Quote {
            price,
            bid: Some(bid),
            ask: Some(ask),
            time,
        }
    }

    fn rate(wait: Option<Duration>, daily: bool) -> Expect {
        Expect::Rate { wait, daily }
    }

    const UNKNOWN: Expect = Expect::Label("unknown_symbol");
    const AUTH: Expect = Expect::Label("auth_error");
    const TRANSIENT: Expect = Expect::Label("transient");
    const MALFORMED: Expect = Expect::Label("malformed");

    /// Properties every outcome has, whatever the input.
    fn invariants(outcome: &Outcome) -> Result<(), String> {
        match outcome {
            Outcome::Quote(q) => {
                if q.price <= Decimal::ZERO {
                    return Err(format!("non-positive price {}", q.price));
                }
                match (q.bid, q.ask) {
                    (None, None) => {}
                    (Some(bid), Some(ask)) if bid > Decimal::ZERO && bid <= ask => {}
                    other => return Err(format!("bad bid/ask {other:?}")),
                }
                if let Some(time) = q.exchange_time {
                    if time > now() + MAX_CLOCK_AHEAD || time.timestamp() < 631_152_000 {
                        return Err(format!("insane time {time}"));
                    }
                }
            }
            other => {
                let detail = other.detail().unwrap_or_default();
                if detail.is_empty() || detail.chars().count() > DETAIL_MAX_CHARS + 20 {
                    return Err(format!(
                        "bad detail length {}: {detail:?}",
                        detail.chars().count()
                    ));
                }
            }
        }
        Ok(())
    }

    fn verify(outcome: &Outcome, expect: &Expect) -> Result<(), String> {
        invariants(outcome)?;
        let ok = match (expect, outcome) {
            (
                Expect::Quote {
                    price,
                    bid,
                    ask,
                    time,
                },
                Outcome::Quote(q),
            ) => {
                q.price == dec(price)
                    && q.bid == bid.map(dec)
                    && q.ask == ask.map(dec)
                    && q.exchange_time == *time
            }
            (
                Expect::Rate { wait, daily },
                Outcome::RateLimited {
                    wait: w, daily: d, ..
                },
            ) => w == wait && d == daily,
            (Expect::Label(label), other) => other.label() == *label,
            (Expect::NotQuote, other) => !matches!(other, Outcome::Quote(_)),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {expect:?}, got {outcome:?}"))
        }
    }

    struct Case {
        name: &'static str,
        provider: ProviderId,
        symbol: &'static str,
        status: u16,
        content_type: Option<&'static str>,
        retry_after: Option<&'static str>,
        body: Vec<u8>,
        expect: Expect,
        detail_contains: Option<&'static str>,
    }

    fn case(
        name: &'static str,
        provider: ProviderId,
        status: u16,
        body: &str,
        expect: Expect,
    ) -> Case {
        Case {
            name,
            provider,
            symbol: "AAPL",
            status,
            content_type: Some("application/json"),
            retry_after: None,
            body: body.as_bytes().to_vec(),
            expect,
            detail_contains: None,
        }
    }

    impl Case {
        fn symbol(mut self, symbol: &'static str) -> Self {
            self.symbol = symbol;
            self
        }
        fn content_type(mut self, content_type: &'static str) -> Self {
            self.content_type = Some(content_type);
            self
        }
        fn retry_after(mut self, value: &'static str) -> Self {
            self.retry_after = Some(value);
            self
        }
        fn bytes(mut self, body: &[u8]) -> Self {
            self.body = body.to_vec();
            self
        }
        /// The detail must contain this text (ASCII case ignored).
        fn detail_contains(mut self, text: &'static str) -> Self {
            self.detail_contains = Some(text);
            self
        }

        fn run(&self) -> Result<(), String> {
            let response = RawResponse {
                status: self.status,
                content_type: self.content_type,
                retry_after: self.retry_after,
                body: &self.body,
            };
            let outcome = classify(self.provider, &Symbol::new(self.symbol), &response, now());
            verify(&outcome, &self.expect)?;
            if let Some(text) = self.detail_contains {
                let detail = outcome.detail().unwrap_or_default().to_lowercase();
                if !detail.contains(&text.to_lowercase()) {
                    return Err(format!("detail {detail:?} lacks {text:?}"));
                }
            }
            Ok(())
        }
    }

    fn run_all(cases: &[Case]) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                c.run()
                    .err()
                    .map(|e| format!("{} [{}]: {e}", c.name, c.provider))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    // -----------------------------------------------------------------------------------------
    // Fixtures.

    fn fixture_dir() -> PathBuf {
        match std::env::var_os("NEOLIGHT_SHARED_FIXTURES") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/providers"
            )),
        }
    }

    /// Expected outcomes per sample file, per requested symbol (two symbols: the multi call).
    fn fixture_expectations(file: &str) -> Option<Vec<(&'static str, Expect)>> {
        let alpaca_aapl = || {
            mid(
                "187.435",
                "187.41",
                "187.46",
                rfc("2024-05-14T15:42:07.118204361Z"),
            )
        };
        Some(match file {
            "alpaca.latest_quote.success.json" => vec![("AAPL", alpaca_aapl())],
            "alpaca.latest_quotes_multi.success.json" => vec![
                ("AAPL", alpaca_aapl()),
                (
                    "TSLA",
                    mid(
                        "174.86",
                        "174.82",
                        "174.9",
                        rfc("2024-05-14T15:42:09.502211390Z"),
                    ),
                ),
            ],
            "alpaca.latest_trade.success.json" => {
                vec![(
                    "AAPL",
                    quote("187.43", rfc("2024-05-14T15:42:06.930157114Z")),
                )]
            }
            // A bars response does not match a latest-price request.
            "alpaca.bars.success.json" => vec![("AAPL", MALFORMED)],
            "alpaca.auth_error.401.json" => vec![("AAPL", AUTH)],
            "alpaca.rate_limited.429.json" => vec![("AAPL", rate(None, false))],
            "finnhub.quote.success.json" => vec![("AAPL", quote("187.43", at(1_715_701_326)))],
            "finnhub.rate_limited.429.json" => vec![("AAPL", rate(None, false))],
            "finnhub.auth_error.401_invalid_key.json" => vec![("AAPL", AUTH)],
            "twelvedata.quote.success.json" => vec![("AAPL", quote("187.43", at(1_715_701_320)))],
            "twelvedata.price.success.json" => vec![("AAPL", quote("187.43", None))],
            "twelvedata.rate_limited.minute.json" => {
                vec![("AAPL", rate(Some(TO_NEXT_MINUTE), false))]
            }
            "alphavantage.global_quote.success.json" => {
                vec![("IBM", quote("169.11", rfc("2024-05-14T20:00:00Z")))]
            }
            "alphavantage.invalid_call.error_message.json" => vec![("IBM", UNKNOWN)],
            "alphavantage.rate_limited.daily_information.json" => vec![("IBM", rate(None, true))],
            "rapidapi.rate_limited.429_per_minute.json" => {
                vec![("IBM", rate(Some(TO_NEXT_MINUTE), false))]
            }
            "yahoo.chart.daily_with_adjclose.json" => {
                vec![("AAPL", quote("187.43", at(1_715_693_400)))]
            }
            "yahoo.chart.not_found.json" => vec![("AAPL", UNKNOWN)],
            _ => return None,
        })
    }

    #[test]
    fn every_provider_fixture_classifies_as_expected() {
        let dir = fixture_dir();
        let index_path = dir.join("index.json");
        let Ok(index) = std::fs::read(&index_path) else {
            eprintln!(
                "skipped: no provider fixtures at {} (set NEOLIGHT_SHARED_FIXTURES)",
                index_path.display()
            );
            return;
        };
        let index: Value = serde_json::from_slice(&index).expect("index.json is JSON");
        let entries = index.as_array().expect("index.json is an array");
        let mut checked = 0;
        let mut failures = Vec::new();
        for entry in entries {
            let file = entry["file"].as_str().expect("entry has a file");
            let Some(provider) = file.split('.').next().and_then(ProviderId::parse) else {
                continue;
            };
            let Some(status) = entry["status"].as_u64() else {
                eprintln!("{file}: no HTTP status (not a provider response), skipped");
                continue;
            };
            let expectations = fixture_expectations(file).unwrap_or_else(|| {
                panic!("{file} ({provider}) has no expected outcome in this test")
            });
            let body = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let response = RawResponse {
                status: u16::try_from(status).expect("status fits u16"),
                content_type: entry["content_type"].as_str(),
                retry_after: None,
                body: &body,
            };
            for (symbol, expect) in &expectations {
                let outcome = classify(provider, &Symbol::new(*symbol), &response, now());
                if let Err(e) = verify(&outcome, expect) {
                    failures.push(format!("{file} {symbol}: {e}"));
                }
            }
            if provider == ProviderId::Alpaca && expectations.len() > 1 {
                let symbols: Vec<Symbol> =
                    expectations.iter().map(|(s, _)| Symbol::new(*s)).collect();
                let outcomes = classify_alpaca_multi(&symbols, &response, now());
                assert_eq!(outcomes.len(), symbols.len());
                for ((symbol, outcome), (_, expect)) in outcomes.iter().zip(&expectations) {
                    if let Err(e) = verify(outcome, expect) {
                        failures.push(format!("{file} multi {symbol}: {e}"));
                    }
                }
            }
            checked += 1;
        }
        assert!(
            failures.is_empty(),
            "fixture failures:\n{}",
            failures.join("\n")
        );
        assert!(
            checked >= 18,
            "only {checked} provider fixtures found in {}",
            dir.display()
        );
    }

    #[test]
    fn fixture_detail_contains_provider_text() {
        let dir = fixture_dir();
        let Ok(body) = std::fs::read(dir.join("alphavantage.rate_limited.daily_information.json"))
        else {
            eprintln!("skipped: no provider fixtures at {}", dir.display());
            return;
        };
        let response = RawResponse {
            status: 200,
            content_type: Some("application/json"),
            retry_after: None,
            body: &body,
        };
        let outcome = classify(
            ProviderId::AlphaVantage,
            &Symbol::new("IBM"),
            &response,
            now(),
        );
        let detail = outcome.detail().unwrap();
        assert!(
            detail.starts_with("We have detected your API key"),
            "{detail}"
        );
        assert!(detail.chars().count() <= DETAIL_MAX_CHARS, "{detail}");
    }

    // -----------------------------------------------------------------------------------------
    // Hand-written cases.

    #[test]
    fn alpaca_case_table() {
        use ProviderId::Alpaca as A;
        run_all(&[
            case("quote mid", A, 200, r#"{"symbol":"AAPL","quote":{"t":"2024-05-14T15:42:07Z","ap":10.2,"bp":10.1}}"#,
                mid("10.15", "10.1", "10.2", rfc("2024-05-14T15:42:07Z"))),
            case("quote numbers as strings", A, 200, r#"{"symbol":"AAPL","quote":{"t":"2024-05-14T15:42:07Z","ap":" 10.20 ","bp":"10.10"}}"#,
                mid("10.15", "10.1", "10.2", rfc("2024-05-14T15:42:07Z"))),
            case("mid rounds half to even, down", A, 200, r#"{"quote":{"ap":"1.00000003","bp":"1.00000002"}}"#,
                mid("1.00000002", "1.00000002", "1.00000003", None)),
            case("mid rounds half to even, up", A, 200, r#"{"quote":{"ap":"1.00000004","bp":"1.00000003"}}"#,
                mid("1.00000004", "1.00000003", "1.00000004", None)),
            case("locked quote", A, 200, r#"{"quote":{"ap":5,"bp":5}}"#, mid("5", "5", "5", None)),
            case("zero quote of an unknown symbol", A, 200,
                r#"{"symbol":"ZZZZ","quote":{"t":"0001-01-01T00:00:00Z","ax":"","ap":0,"as":0,"bx":"","bp":0,"bs":0,"c":null,"z":""}}"#,
                UNKNOWN).symbol("ZZZZ"),
            case("crossed quote", A, 200, r#"{"quote":{"ap":9.0,"bp":10.0}}"#, UNKNOWN).detail_contains("crossed"),
            case("one-sided bid", A, 200, r#"{"quote":{"ap":0,"bp":10.0}}"#, UNKNOWN).detail_contains("one-sided"),
            case("one-sided ask, null bid", A, 200, r#"{"quote":{"ap":10.0,"bp":null}}"#, UNKNOWN).detail_contains("one-sided"),
            case("negative bid", A, 200, r#"{"quote":{"ap":10.0,"bp":-1}}"#, UNKNOWN),
            case("NaN-like strings", A, 200, r#"{"quote":{"ap":"NaN","bp":"inf"}}"#, UNKNOWN),
            case("Infinity strings", A, 200, r#"{"quote":{"ap":"Infinity","bp":"-inf"}}"#, UNKNOWN),
            case("quote null", A, 200, r#"{"symbol":"AAPL","quote":null}"#, UNKNOWN),
            case("response without quote", A, 200, r#"{"symbol":"AAPL"}"#, UNKNOWN),
            case("quote not an object", A, 200, r#"{"symbol":"AAPL","quote":[1,2]}"#, MALFORMED),
            case("response for another symbol", A, 200, r#"{"symbol":"MSFT","quote":{"ap":2,"bp":1}}"#, MALFORMED).detail_contains("MSFT"),
            case("punctuation differs", A, 200, r#"{"symbol":"BRK.B","quote":{"ap":2,"bp":1}}"#,
                mid("1.5", "1", "2", None)).symbol("BRK/B"),
            case("latest trade", A, 200, r#"{"symbol":"AAPL","trade":{"t":"2024-05-14T15:42:06.5Z","p":"187.43"}}"#,
                quote("187.43", rfc("2024-05-14T15:42:06.5Z"))),
            case("latest trade zero", A, 200, r#"{"symbol":"AAPL","trade":{"p":0}}"#, UNKNOWN),
            case("snapshot: crossed quote falls back to trade", A, 200,
                r#"{"latestQuote":{"ap":9,"bp":10,"t":"2024-05-14T15:00:00Z"},"latestTrade":{"p":9.5,"t":"2024-05-14T14:59:00Z"}}"#,
                quote("9.5", rfc("2024-05-14T14:59:00Z"))),
            case("snapshot: valid quote wins", A, 200,
                r#"{"latestQuote":{"ap":10,"bp":9,"t":"2024-05-14T15:00:00Z"},"latestTrade":{"p":9.7}}"#,
                mid("9.5", "9", "10", rfc("2024-05-14T15:00:00Z"))),
            case("multi shape asked singly", A, 200, r#"{"quotes":{"AAPL":{"ap":2,"bp":1}}}"#, mid("1.5", "1", "2", None)),
            case("multi shape without the symbol", A, 200, r#"{"quotes":{"TSLA":{"ap":2,"bp":1}}}"#, UNKNOWN),
            case("huge JSON number", A, 200, r#"{"quote":{"ap":1e400,"bp":1e400}}"#, Expect::NotQuote),
            case("huge but finite number", A, 200, r#"{"quote":{"ap":1e300,"bp":1e300}}"#, UNKNOWN),
            case("401", A, 401, r#"{"message":"unauthorized"}"#, AUTH).detail_contains("unauthorized"),
            case("403 plan", A, 403, r#"{"message":"subscription does not permit querying recent SIP data"}"#, AUTH).detail_contains("403"),
            case("404 JSON", A, 404, r#"{"message":"not found"}"#, UNKNOWN).detail_contains("404"),
            case("404 HTML", A, 404, "<html><title>404 Not Found</title></html>", TRANSIENT).content_type("text/html").detail_contains("404"),
            case("400 invalid symbol", A, 400, r#"{"message":"invalid symbol: AAPL$"}"#, UNKNOWN),
            case("422 other", A, 422, r#"{"message":"invalid feed"}"#, TRANSIENT).detail_contains("422"),
            case("429", A, 429, r#"{"message":"too many requests."}"#, rate(None, false)).detail_contains("too many requests"),
            case("200 error message", A, 200, r#"{"message":"internal server error"}"#, TRANSIENT),
            case("array body", A, 200, "[]", MALFORMED),
            case("JSON string body", A, 200, r#""hello""#, MALFORMED),
            case("empty object", A, 200, "{}", MALFORMED),
        ]);
    }

    #[test]
    fn finnhub_case_table() {
        use ProviderId::Finnhub as F;
        run_all(&[
            case(
                "all-zero unknown symbol",
                F,
                200,
                r#"{"c":0,"d":null,"dp":null,"h":0,"l":0,"o":0,"pc":0,"t":0}"#,
                UNKNOWN,
            )
            .detail_contains("all-zero"),
            case(
                "c null",
                F,
                200,
                r#"{"c":null,"h":1,"l":1,"o":1,"pc":1,"t":1715701326}"#,
                UNKNOWN,
            ),
            case(
                "c negative",
                F,
                200,
                r#"{"c":-3,"h":1,"l":1,"o":1,"pc":1,"t":1715701326}"#,
                UNKNOWN,
            ),
            case(
                "c zero with other fields",
                F,
                200,
                r#"{"c":0,"h":1,"l":1,"o":1,"pc":1,"t":1715701326}"#,
                UNKNOWN,
            ),
            case(
                "c as string",
                F,
                200,
                r#"{"c":"187.43","t":1715701326}"#,
                quote("187.43", at(1_715_701_326)),
            ),
            case(
                "c as string with % and spaces",
                F,
                200,
                r#"{"c":" 187.43 % ","t":1715701326}"#,
                quote("187.43", at(1_715_701_326)),
            ),
            case(
                "c NaN string",
                F,
                200,
                r#"{"c":"NaN","t":1715701326}"#,
                UNKNOWN,
            ),
            case(
                "c nan lower",
                F,
                200,
                r#"{"c":"nan","t":1715701326}"#,
                UNKNOWN,
            ),
            case("c inf", F, 200, r#"{"c":"inf","t":1715701326}"#, UNKNOWN),
            case(
                "t milliseconds",
                F,
                200,
                r#"{"c":1,"t":1715701326000}"#,
                quote("1", at(1_715_701_326)),
            ),
            case(
                "t microseconds",
                F,
                200,
                r#"{"c":1,"t":1715701326000000}"#,
                quote("1", at(1_715_701_326)),
            ),
            case(
                "t nanoseconds",
                F,
                200,
                r#"{"c":1,"t":1715701326000000000}"#,
                quote("1", at(1_715_701_326)),
            ),
            case(
                "t fractional seconds",
                F,
                200,
                r#"{"c":1,"t":1715701326.25}"#,
                quote(
                    "1",
                    Some(at(1_715_701_326).unwrap() + chrono::TimeDelta::milliseconds(250)),
                ),
            ),
            case(
                "t as string",
                F,
                200,
                r#"{"c":1,"t":"1715701326"}"#,
                quote("1", at(1_715_701_326)),
            ),
            case(
                "t two days ahead",
                F,
                200,
                r#"{"c":1,"t":1715893215}"#,
                quote("1", None),
            ),
            case(
                "t before 1990",
                F,
                200,
                r#"{"c":1,"t":5}"#,
                quote("1", None),
            ),
            case("t negative", F, 200, r#"{"c":1,"t":-5}"#, quote("1", None)),
            case(
                "t garbage",
                F,
                200,
                r#"{"c":1,"t":"soon"}"#,
                quote("1", None),
            ),
            case(
                "invalid key, 200",
                F,
                200,
                r#"{"error":"Invalid API key."}"#,
                AUTH,
            )
            .detail_contains("Invalid API key"),
            case(
                "invalid key, 401",
                F,
                401,
                r#"{"error":"Invalid API key."}"#,
                AUTH,
            )
            .detail_contains("HTTP 401"),
            case(
                "no access, 403",
                F,
                403,
                r#"{"error":"You don't have access to this resource."}"#,
                AUTH,
            )
            .detail_contains("access"),
            case(
                "no access, 200",
                F,
                200,
                r#"{"error":"You don't have access to this resource."}"#,
                AUTH,
            ),
            case(
                "limit reached, 200",
                F,
                200,
                r#"{"error":"API limit reached. Please try again later. Remaining Limit: 0"}"#,
                rate(None, false),
            ),
            case(
                "429 retry-after seconds",
                F,
                429,
                r#"{"error":"API limit reached."}"#,
                rate(Some(Duration::from_secs(7)), false),
            )
            .retry_after("7"),
            case(
                "429 retry-after date",
                F,
                429,
                "",
                rate(Some(TO_NEXT_MINUTE), false),
            )
            .retry_after("Tue, 14 May 2024 21:01:00 GMT"),
            case(
                "429 retry-after date past",
                F,
                429,
                "",
                rate(Some(Duration::ZERO), false),
            )
            .retry_after("Tue, 14 May 2024 20:00:00 GMT"),
            case("429 retry-after garbage", F, 429, "", rate(None, false)).retry_after("later"),
            case("429 retry-after negative", F, 429, "", rate(None, false)).retry_after("-3"),
            case(
                "other error body, 200",
                F,
                200,
                r#"{"error":"Something went wrong on our side"}"#,
                TRANSIENT,
            )
            .detail_contains("went wrong"),
            case(
                "unknown symbol error",
                F,
                200,
                r#"{"error":"Symbol not supported"}"#,
                UNKNOWN,
            ),
            case(
                "502 HTML",
                F,
                502,
                "<html><head><title>502 Bad Gateway</title></head></html>",
                TRANSIENT,
            )
            .content_type("text/html")
            .detail_contains("HTTP 502: HTML page: 502 Bad Gateway"),
            case(
                "404 HTML from elsewhere",
                F,
                404,
                "<html>nope</html>",
                TRANSIENT,
            )
            .content_type("text/html"),
            case("418", F, 418, "I'm a teapot", TRANSIENT)
                .content_type("text/plain")
                .detail_contains("418"),
            case("302", F, 302, "", TRANSIENT).detail_contains("302"),
            case("204 empty", F, 204, "", MALFORMED),
            case("empty body", F, 200, "", MALFORMED).detail_contains("empty"),
            case("whitespace body", F, 200, " \n\t ", MALFORMED),
            case(
                "HTML under 200",
                F,
                200,
                "<!DOCTYPE html><html><head><title>Finnhub</title></head><body>hi</body></html>",
                MALFORMED,
            )
            .content_type("text/html")
            .detail_contains("HTML"),
            case(
                "HTML with JSON content type",
                F,
                200,
                "<html>oops</html>",
                MALFORMED,
            ),
            case("plain text under 200", F, 200, "OK", MALFORMED)
                .content_type("text/plain")
                .detail_contains("text"),
            case("truncated JSON", F, 200, r#"{"c":187.4"#, MALFORMED)
                .detail_contains("invalid JSON"),
            case("wrong shape", F, 200, r#"{"foo":1}"#, MALFORMED).detail_contains("foo"),
            case("invalid UTF-8", F, 200, "", MALFORMED)
                .bytes(b"\xff\xfe\xfd{\"c\":1}")
                .content_type("application/octet-stream"),
            case("invalid UTF-8 inside JSON", F, 200, "", MALFORMED).bytes(b"{\"c\":\"\xff\"}"),
            case("BOM before JSON", F, 200, "", quote("2", None)).bytes(b"\xEF\xBB\xBF{\"c\":2}"),
        ]);
    }

    #[test]
    fn twelvedata_case_table() {
        use ProviderId::TwelveData as T;
        const MINUTE: &str = r#"{"code":429,"message":"You have run out of API credits for the current minute. 9 API credits were used, with the current limit being 8. Wait for the next minute or consider switching to a higher tier plan at https://twelvedata.com/pricing","status":"error"}"#;
        const DAY: &str = r#"{"code":429,"message":"You have run out of API credits for the day. 801 API credits were used, with the current limit being 800. Wait for the next day or consider switching to a higher tier plan at https://twelvedata.com/pricing","status":"error"}"#;
        run_all(&[
            case("quote, last_quote_at", T, 200, r#"{"symbol":"AAPL","close":"187.43000","timestamp":1715693400,"last_quote_at":1715701320,"is_market_open":true}"#,
                quote("187.43", at(1_715_701_320))),
            case("quote, timestamp only", T, 200, r#"{"symbol":"AAPL","close":"187.43000","timestamp":1715693400,"is_market_open":false}"#,
                quote("187.43", at(1_715_693_400))),
            case("quote, bad last_quote_at", T, 200, r#"{"close":"187.43","timestamp":1715693400,"last_quote_at":0}"#,
                quote("187.43", at(1_715_693_400))),
            case("quote, zero close", T, 200, r#"{"symbol":"AAPL","close":"0.00000","timestamp":1715693400}"#, UNKNOWN),
            case("quote, null close", T, 200, r#"{"symbol":"AAPL","close":null}"#, UNKNOWN),
            case("price", T, 200, r#"{"price":"187.43000"}"#, quote("187.43", None)),
            case("price as number", T, 200, r#"{"price":187.43}"#, quote("187.43", None)),
            case("price NaN", T, 200, r#"{"price":"NaN"}"#, UNKNOWN),
            case("price empty", T, 200, r#"{"price":""}"#, UNKNOWN),
            case("minute credits, 200", T, 200, MINUTE, rate(Some(TO_NEXT_MINUTE), false)).detail_contains("current minute"),
            case("minute credits, 429", T, 429, MINUTE, rate(Some(TO_NEXT_MINUTE), false)).detail_contains("HTTP 429"),
            case("minute credits, Retry-After wins", T, 429, MINUTE, rate(Some(Duration::from_secs(12)), false)).retry_after("12"),
            case("daily credits", T, 200, DAY, rate(None, true)),
            case("code as string", T, 200, r#"{"code":"429","message":"too many","status":"error"}"#, rate(None, false)),
            case("code 401", T, 200, r#"{"code":401,"message":"**apikey** parameter is incorrect or not specified.","status":"error"}"#, AUTH).detail_contains("apikey"),
            case("code 403 plan", T, 200, r#"{"code":403,"message":"This endpoint is available starting from the Grow plan.","status":"error"}"#, AUTH),
            case("code 404 symbol", T, 200, r#"{"code":404,"message":"**symbol** not found: ZZZZ. Please specify it correctly according to API Documentation.","status":"error"}"#, UNKNOWN).detail_contains("ZZZZ"),
            case("code 400 symbol", T, 200, r#"{"code":400,"message":"**symbol** or **figi** parameter is missing or invalid.","status":"error"}"#, UNKNOWN),
            case("code 400 other", T, 200, r#"{"code":400,"message":"Invalid **interval** provided","status":"error"}"#, TRANSIENT).detail_contains("400"),
            case("code 500", T, 200, r#"{"code":500,"message":"Internal error, symbol AAPL","status":"error"}"#, TRANSIENT),
            case("HTTP 400 with symbol body", T, 400, r#"{"code":400,"message":"**symbol** not found","status":"error"}"#, UNKNOWN),
            case("status error without code", T, 200, r#"{"status":"error","message":"something broke"}"#, TRANSIENT),
            case("wrong shape", T, 200, r#"{"values":[]}"#, MALFORMED),
        ]);
    }

    #[test]
    fn alphavantage_rapidapi_case_table() {
        use ProviderId::{AlphaVantage as V, RapidApi as R};
        const GLOBAL: &str = r#"{"Global Quote":{"01. symbol":"IBM","05. price":"169.1100","07. latest trading day":"2024-05-14","10. change percent":"0.9250%"}}"#;
        const NOTE: &str = r#"{"Note":"Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API call frequency."}"#;
        const DAILY: &str = r#"{"Information":"We have detected your API key as KEY and our standard API rate limit is 25 requests per day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."}"#;
        run_all(&[
            case("global quote", V, 200, GLOBAL, quote("169.11", rfc("2024-05-14T20:00:00Z"))).symbol("IBM"),
            case("global quote via rapidapi", R, 200, GLOBAL, quote("169.11", rfc("2024-05-14T20:00:00Z"))).symbol("IBM"),
            case("trading date today is capped at now", V, 200,
                r#"{"Global Quote":{"05. price":"1.5","07. latest trading day":"2024-05-15"}}"#, quote("1.5", Some(now()))),
            case("trading date far ahead", V, 200,
                r#"{"Global Quote":{"05. price":"1.5","07. latest trading day":"2024-06-15"}}"#, quote("1.5", None)),
            case("trading date 1989", V, 200,
                r#"{"Global Quote":{"05. price":"1.5","07. latest trading day":"1989-12-29"}}"#, quote("1.5", None)),
            case("price with %", V, 200, r#"{"Global Quote":{"05. price":"12.5%"}}"#, quote("12.5", None)),
            case("empty global quote", V, 200, r#"{"Global Quote":{}}"#, UNKNOWN).detail_contains("empty"),
            case("empty global quote via rapidapi", R, 200, r#"{"Global Quote":{}}"#, UNKNOWN),
            case("zero price", V, 200, r#"{"Global Quote":{"01. symbol":"ZZZ","05. price":"0.0000"}}"#, UNKNOWN),
            case("global quote without price", V, 200, r#"{"Global Quote":{"01. symbol":"IBM"}}"#, MALFORMED),
            case("error message: invalid call", V, 200, r#"{"Error Message":"Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for GLOBAL_QUOTE."}"#, UNKNOWN).detail_contains("Invalid API call"),
            case("error message: key", V, 200, r#"{"Error Message":"the parameter apikey is invalid or missing. Please claim your free API key on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."}"#, AUTH),
            case("daily information", V, 200, DAILY, rate(None, true)).detail_contains("25 requests per day"),
            case("daily information with Retry-After", V, 200, DAILY, rate(Some(Duration::from_secs(60)), true)).retry_after("60"),
            case("note: per-minute and per-day text", V, 200, NOTE, rate(Some(TO_NEXT_MINUTE), false)),
            case("note via rapidapi", R, 200, NOTE, rate(Some(TO_NEXT_MINUTE), false)),
            case("information: premium endpoint", V, 200, r#"{"Information":"Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints"}"#, AUTH),
            case("information: demo key", V, 200, r#"{"Information":"The **demo** API key is for demo purposes only. Please claim your free API key at (https://www.alphavantage.co/support/#api-key) to explore our full API offerings."}"#, AUTH),
            case("information: other", V, 200, r#"{"Information":"The service is under maintenance, come back soon."}"#, TRANSIENT).detail_contains("maintenance"),
            case("rapidapi 403 not subscribed", R, 403, r#"{"message":"You are not subscribed to this API."}"#, AUTH).detail_contains("not subscribed"),
            case("rapidapi 401 invalid key", R, 401, r#"{"message":"Invalid API key. Go to https://docs.rapidapi.com/docs/keys for more info."}"#, AUTH),
            case("rapidapi 200 invalid key", R, 200, r#"{"message":"Invalid API key. Go to https://docs.rapidapi.com/docs/keys for more info."}"#, AUTH),
            case("rapidapi 429 per minute", R, 429, r#"{"message":"You have exceeded the rate limit per minute for your plan, BASIC, by the API provider"}"#, rate(Some(TO_NEXT_MINUTE), false)),
            case("rapidapi 403 rate-limit text", R, 403, r#"{"message":"You have exceeded the rate limit per minute for your plan, PRO, by the API provider"}"#, rate(Some(TO_NEXT_MINUTE), false)),
            case("rapidapi 429 daily quota", R, 429, r#"{"message":"You have exceeded the DAILY quota for Requests on your current plan, BASIC. Upgrade your plan at https://rapidapi.com/alphavantage/api/alpha-vantage"}"#, rate(None, true)),
            case("rapidapi 429 monthly quota", R, 429, r#"{"message":"You have exceeded the MONTHLY quota for Requests on your current plan, BASIC. Upgrade your plan at https://rapidapi.com/alphavantage/api/alpha-vantage"}"#, rate(None, true)),
            case("rapidapi 503 HTML", R, 503, "<html><body><h1>503 Service Unavailable</h1></body></html>", TRANSIENT).content_type("text/html").detail_contains("503"),
            case("wrong shape", V, 200, r#"{"Time Series (Daily)":{}}"#, MALFORMED),
        ]);
    }

    #[test]
    fn yahoo_case_table() {
        use ProviderId::Yahoo as Y;
        run_all(&[
            case("regularMarketPrice with time", Y, 200,
                r#"{"chart":{"result":[{"meta":{"regularMarketPrice":187.43,"regularMarketTime":1715701326},"timestamp":[1715693400],"indicators":{"quote":[{"close":[187.1]}]}}],"error":null}}"#,
                quote("187.43", at(1_715_701_326))),
            case("regularMarketTime in ms", Y, 200,
                r#"{"chart":{"result":[{"meta":{"regularMarketPrice":187.43,"regularMarketTime":1715701326000}}],"error":null}}"#,
                quote("187.43", at(1_715_701_326))),
            case("regularMarketPrice as raw/fmt", Y, 200,
                r#"{"chart":{"result":[{"meta":{"regularMarketPrice":{"raw":187.43,"fmt":"187.43"}}}],"error":null}}"#,
                quote("187.43", None)),
            case("nulls inside close array", Y, 200,
                r#"{"chart":{"result":[{"meta":{"currency":"USD"},"timestamp":[1715347800,1715607000,1715693400],"indicators":{"quote":[{"close":[184.23,186.77,null]}]}}],"error":null}}"#,
                quote("186.77", at(1_715_607_000))),
            case("zero regularMarketPrice falls back to close", Y, 200,
                r#"{"chart":{"result":[{"meta":{"regularMarketPrice":0},"timestamp":[1715347800,1715607000],"indicators":{"quote":[{"close":[184.23,0]}]}}],"error":null}}"#,
                quote("184.23", at(1_715_347_800))),
            case("close without its timestamp", Y, 200,
                r#"{"chart":{"result":[{"meta":{},"timestamp":[1715347800],"indicators":{"quote":[{"close":[null,184.23]}]}}],"error":null}}"#,
                quote("184.23", None)),
            case("all nulls", Y, 200,
                r#"{"chart":{"result":[{"meta":{"regularMarketPrice":null},"timestamp":[1,2],"indicators":{"quote":[{"close":[null,null]}]}}],"error":null}}"#,
                UNKNOWN),
            case("404 not found", Y, 404,
                r#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#,
                UNKNOWN).detail_contains("delisted"),
            case("200 result null with error", Y, 200,
                r#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#,
                UNKNOWN),
            case("200 other chart error", Y, 200,
                r#"{"chart":{"result":null,"error":{"code":"Internal Server Error","description":"Oops"}}}"#,
                TRANSIENT).detail_contains("Oops"),
            case("empty result", Y, 200, r#"{"chart":{"result":[],"error":null}}"#, UNKNOWN),
            case("null result, no error", Y, 200, r#"{"chart":{"result":null,"error":null}}"#, UNKNOWN),
            case("result entry without data", Y, 200, r#"{"chart":{"result":[{}],"error":null}}"#, MALFORMED),
            case("result not an array", Y, 200, r#"{"chart":{"result":"x","error":null}}"#, MALFORMED),
            case("401 invalid crumb", Y, 401, r#"{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}"#, AUTH).detail_contains("Invalid Crumb"),
            case("429 plain text", Y, 429, "Too Many Requests\r\n", rate(None, false)).content_type("text/plain").detail_contains("HTTP 429: Too Many Requests"),
            case("429 HTML", Y, 429, "<html><title>Too Many Requests</title></html>", rate(None, false)).content_type("text/html"),
            case("503 HTML", Y, 503, "<html><head><title>Service Unavailable</title></head><body>Try later</body></html>", TRANSIENT)
                .content_type("text/html").detail_contains("Service Unavailable"),
            case("500 empty", Y, 500, "", TRANSIENT).detail_contains("HTTP 500"),
            case("empty body", Y, 200, "", MALFORMED),
            case("wrong shape", Y, 200, r#"{"quoteResponse":{}}"#, MALFORMED),
        ]);
    }

    #[test]
    fn long_provider_text_is_cut() {
        let message = "x".repeat(5_000);
        let body = format!(r#"{{"error":"{message}"}}"#);
        let response = RawResponse {
            status: 503,
            content_type: None,
            retry_after: None,
            body: body.as_bytes(),
        };
        let outcome = classify(ProviderId::Finnhub, &Symbol::new("AAPL"), &response, now());
        let detail = outcome.detail().unwrap();
        assert_eq!(outcome.label(), "transient");
        assert!(detail.starts_with("HTTP 503: xxx"), "{detail}");
        assert!(detail.ends_with('…'), "{detail}");
        assert!(
            detail.chars().count() <= DETAIL_MAX_CHARS + 10,
            "{}",
            detail.chars().count()
        );
    }

    #[test]
    fn deeply_nested_json_is_malformed() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let nested_object = format!("{}1{}", r#"{"c":"#.repeat(10_000), "}".repeat(10_000));
        for body in [body, nested_object] {
            for provider in ProviderId::ALL {
                let response = RawResponse {
                    status: 200,
                    content_type: None,
                    retry_after: None,
                    body: body.as_bytes(),
                };
                let outcome = classify(provider, &Symbol::new("AAPL"), &response, now());
                assert_eq!(outcome.label(), "malformed", "{provider}: {outcome:?}");
            }
        }
    }

    #[test]
    fn alpaca_multi_classifies_each_symbol() {
        let body = br#"{"quotes":{"TSLA":{"ap":174.9,"bp":174.82,"t":"2024-05-14T15:42:09.502211390Z"},"aapl":{"ap":0,"bp":0},"MSFT":{"ap":2,"bp":3}}}"#;
        let response = RawResponse {
            status: 200,
            content_type: Some("application/json"),
            retry_after: None,
            body,
        };
        let symbols: Vec<Symbol> = ["TSLA", "AAPL", "MSFT", "NVDA"]
            .into_iter()
            .map(Symbol::new)
            .collect();
        let outcomes = classify_alpaca_multi(&symbols, &response, now());
        let got: Vec<(&str, &str)> = outcomes
            .iter()
            .map(|(s, o)| (s.as_str(), o.label()))
            .collect();
        assert_eq!(
            got,
            [
                ("TSLA", "quote"),
                ("AAPL", "unknown_symbol"),
                ("MSFT", "unknown_symbol"),
                ("NVDA", "unknown_symbol")
            ]
        );
        verify(
            &outcomes[0].1,
            &mid(
                "174.86",
                "174.82",
                "174.9",
                rfc("2024-05-14T15:42:09.502211390Z"),
            ),
        )
        .unwrap();
        assert!(outcomes[2].1.detail().unwrap().contains("crossed"));
        assert!(outcomes[3].1.detail().unwrap().contains("NVDA"));

        let same_for_all = [
            (
                429,
                &br#"{"message":"too many requests."}"#[..],
                "rate_limited",
            ),
            (401, &br#"{"message":"unauthorized"}"#[..], "auth_error"),
            (500, &b""[..], "transient"),
            (200, &b"<html></html>"[..], "malformed"),
            (200, &br#"{"message":"boom"}"#[..], "transient"),
            (200, &br#"{"quotes":{}}"#[..], "unknown_symbol"),
            (200, &br#"{"quotes":null}"#[..], "unknown_symbol"),
            (200, &br#"{"quotes":[]}"#[..], "malformed"),
        ];
        for (status, body, label) in same_for_all {
            let response = RawResponse {
                status,
                content_type: None,
                retry_after: None,
                body,
            };
            let outcomes = classify_alpaca_multi(&symbols, &response, now());
            assert_eq!(outcomes.len(), symbols.len());
            for (symbol, outcome) in &outcomes {
                assert_eq!(outcome.label(), label, "{status} {symbol}: {outcome:?}");
            }
        }
        assert!(classify_alpaca_multi(&[], &response, now()).is_empty());
    }

    #[test]
    fn provider_ids_round_trip() {
        let names: Vec<&str> = ProviderId::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "alpaca",
                "finnhub",
                "twelvedata",
                "alphavantage",
                "rapidapi",
                "yahoo"
            ]
        );
        for provider in ProviderId::ALL {
            assert_eq!(ProviderId::parse(provider.as_str()), Some(provider));
            assert_eq!(
                ProviderId::parse(&format!(" {} ", provider.as_str().to_uppercase())),
                Some(provider)
            );
            assert_eq!(provider.to_string(), provider.as_str());
        }
        let mut sorted = ProviderId::ALL;
        sorted.sort();
        assert_eq!(sorted, ProviderId::ALL);
        for bad in [
            "",
            "twelve_data",
            "alpha vantage",
            "replay",
            "sim",
            "yahoo!",
        ] {
            assert_eq!(ProviderId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn labels_match_outcomes() {
        let detail = || "d".to_owned();
        let outcomes = [
            (
                Outcome::Quote(ParsedQuote {
                    price: Decimal::ONE,
                    bid: None,
                    ask: None,
                    exchange_time: None,
                }),
                "quote",
            ),
            (
                Outcome::UnknownSymbol { detail: detail() },
                "unknown_symbol",
            ),
            (
                Outcome::RateLimited {
                    wait: None,
                    daily: false,
                    detail: detail(),
                },
                "rate_limited",
            ),
            (Outcome::AuthError { detail: detail() }, "auth_error"),
            (Outcome::Transient { detail: detail() }, "transient"),
            (Outcome::Malformed { detail: detail() }, "malformed"),
        ];
        for (outcome, label) in outcomes {
            assert_eq!(outcome.label(), label);
            assert_eq!(outcome.detail().is_none(), label == "quote");
        }
    }

    #[test]
    fn numbers_parse_from_text() {
        let read = |v: Value| decimal(&v);
        assert_eq!(read(serde_json::json!("187.43000")), Some(dec("187.43")));
        assert_eq!(read(serde_json::json!(" +187.43 % ")), Some(dec("187.43")));
        assert_eq!(read(serde_json::json!("1e2")), Some(dec("100")));
        assert_eq!(read(serde_json::json!("9.7E-7")), Some(dec("0.00000097")));
        assert_eq!(read(serde_json::json!(187.46)), Some(dec("187.46")));
        assert_eq!(read(serde_json::json!(0.1)), Some(dec("0.1")));
        assert_eq!(
            read(serde_json::json!(12345678901234567u64)),
            Some(dec("12345678901234567"))
        );
        for bad in [
            "", "%", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "1e-400", "12abc", "--1",
            "1.2.3", "e5", ".",
        ] {
            assert_eq!(read(Value::String(bad.to_owned())), None, "{bad:?}");
        }
        assert_eq!(read(Value::Null), None);
        assert_eq!(read(serde_json::json!(true)), None);
        assert_eq!(price(Some(&serde_json::json!("-1"))), None);
        assert_eq!(price(Some(&serde_json::json!("0.000"))), None);
    }

    #[test]
    fn retry_after_and_next_minute() {
        assert_eq!(
            parse_retry_after("30", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(" 1.5 ", now()),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 May 2024 21:01:15 GMT", now()),
            Some(Duration::from_millis(59_500))
        );
        assert_eq!(
            parse_retry_after("2024-05-14T21:00:25.5Z", now()),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("", now()), None);
        assert_eq!(parse_retry_after("99999999999999999999999", now()), None);
        let on_the_minute = Utc.with_ymd_and_hms(2024, 5, 14, 21, 0, 0).unwrap();
        assert_eq!(until_next_minute(on_the_minute), Duration::from_secs(60));
        assert_eq!(until_next_minute(now()), TO_NEXT_MINUTE);
    }

    // -----------------------------------------------------------------------------------------
    // Arbitrary input.

    fn statuses() -> impl Strategy<Value = u16> {
        prop_oneof![
            4 => prop::sample::select(vec![200u16, 204, 400, 401, 403, 404, 418, 429, 500, 503]),
            1 => any::<u16>(),
        ]
    }

    fn keys() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "c", "t", "h", "l", "o", "pc", "d", "dp", "quote", "quotes", "trade", "trades", "ap", "bp", "p",
                "symbol", "AAPL", "TSLA", "close", "price", "timestamp", "last_quote_at", "code", "message",
                "status", "Global Quote", "05. price", "07. latest trading day", "Error Message", "Information",
                "Note", "chart", "result", "error", "meta", "regularMarketPrice", "regularMarketTime",
                "indicators", "latestQuote", "latestTrade", "finance", "description", "raw",
            ]).prop_map(str::to_owned),
            1 => ".{0,8}",
        ]
    }

    fn leaves() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop::sample::select(vec![
                "0",
                "-1",
                "NaN",
                "inf",
                "187.43",
                "187.43 %",
                "1e400",
                "2024-05-14",
                "2024-05-14T15:42:07.118204361Z",
                "error",
                "Not Found",
                "rate limit per minute",
                "API key",
                "",
                "1715701326",
                "99999999999999999999999",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
            ".{0,12}".prop_map(Value::String),
        ]
    }

    fn json_values() -> impl Strategy<Value = Value> {
        leaves().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((keys(), inner), 0..6)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn check_all_providers(
        status: u16,
        content_type: Option<&str>,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> Result<(), TestCaseError> {
        let response = RawResponse {
            status,
            content_type,
            retry_after,
            body,
        };
        let symbol = Symbol::new("AAPL");
        for provider in ProviderId::ALL {
            let outcome = classify(provider, &symbol, &response, now());
            prop_assert!(
                invariants(&outcome).is_ok(),
                "{provider}: {:?} {outcome:?}",
                invariants(&outcome)
            );
        }
        let symbols = [Symbol::new("AAPL"), Symbol::new("TSLA")];
        let outcomes = classify_alpaca_multi(&symbols, &response, now());
        prop_assert_eq!(outcomes.len(), 2);
        for (_, outcome) in &outcomes {
            prop_assert!(invariants(outcome).is_ok(), "multi: {outcome:?}");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_bytes_never_panic(
            body in prop::collection::vec(any::<u8>(), 0..512),
            status in statuses(),
            content_type in prop::option::of(prop::sample::select(vec!["application/json", "text/html", "text/plain", ""])),
            retry_after in prop::option::of(".{0,24}"),
        ) {
            check_all_providers(status, content_type, retry_after.as_deref(), &body)?;
        }

        #[test]
        fn arbitrary_json_never_panics(value in json_values(), status in statuses(), retry_after in prop::option::of("[0-9]{0,25}")) {
            let body = serde_json::to_vec(&value).unwrap();
            check_all_providers(status, Some("application/json"), retry_after.as_deref(), &body)?;
        }

        #[test]
        fn arbitrary_provider_shapes_never_panic(inner in json_values(), status in statuses(), which in 0usize..8) {
            let wrapped = match which {
                0 => serde_json::json!({"symbol": "AAPL", "quote": inner}),
                1 => serde_json::json!({"quotes": {"AAPL": inner, "TSLA": {"ap": inner, "bp": 1}}}),
                2 => serde_json::json!({"c": inner, "t": inner}),
                3 => serde_json::json!({"close": inner, "last_quote_at": inner}),
                4 => serde_json::json!({"Global Quote": {"05. price": inner, "07. latest trading day": inner}}),
                5 => serde_json::json!({"chart": {"result": [{"meta": {"regularMarketPrice": inner, "regularMarketTime": inner},
                        "timestamp": [inner, 1715693400], "indicators": {"quote": [{"close": [inner, null]}]}}], "error": null}}),
                6 => serde_json::json!({"code": inner, "message": inner, "status": "error"}),
                _ => serde_json::json!({"chart": {"result": null, "error": inner}}),
            };
            let body = serde_json::to_vec(&wrapped).unwrap();
            check_all_providers(status, Some("application/json"), None, &body)?;
        }
    }
}
