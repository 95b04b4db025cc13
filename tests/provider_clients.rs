//! Each quote provider's client against a wiremock server on 127.0.0.1: the request it sends
//! (path, query, auth headers) and how its responses are classified.

mod mock_providers;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mock_providers::*;
use neolight_actors::providers::classify::{Outcome, ParsedQuote};
use neolight_actors::providers::client::{Attempted, Credentials, ProviderClient, RAPIDAPI_HOST};
use neolight_actors::providers::ProviderId;
use rust_decimal::Decimal;
use wiremock::matchers::{header, header_regex, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TIMEOUT: Duration = Duration::from_secs(3);

fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal literal")
}

fn utc_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("RFC 3339 literal").with_timezone(&Utc)
}

/// Builds a client with every credential whose only reachable provider is `id` at `server`.
fn client_for(id: ProviderId, server: &MockServer) -> ProviderClient {
    client(credentials(), &[(id, server.uri())], TIMEOUT)
}

async fn fetch(id: ProviderId, server: &MockServer, symbol: &str) -> Attempted {
    client_for(id, server).fetch(id, &sym(symbol), Utc::now()).await.0
}

/// Serves `file` with its status and content type for any request, and fetches `symbol`.
async fn fetch_fixture(id: ProviderId, file: &str, symbol: &str) -> Attempted {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET")).respond_with(fixture(file).response()).mount(&server).await;
    fetch(id, &server, symbol).await
}

/// Returns the one request the server received.
async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("request recording is on");
    assert_eq!(requests.len(), 1, "requests received: {:?}", requests.iter().map(|r| r.url.to_string()).collect::<Vec<_>>());
    requests.remove(0)
}

fn quote_of(attempted: &Attempted) -> ParsedQuote {
    match attempted {
        Attempted::Answered(Outcome::Quote(q)) => q.clone(),
        other => panic!("expected a quote, got {other:?}"),
    }
}

fn assert_no_key_in_url(request: &Request) {
    let url = request.url.to_string();
    for key in ALL_KEYS {
        assert!(!url.contains(key), "key {key} is in the request URL {url}");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and successful responses, provider by provider.

#[tokio::test]
async fn alpaca_latest_quote_request_and_price() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/v2/stocks/AAPL/quotes/latest"))
        .and(header("APCA-API-KEY-ID", ALPACA_KEY_ID))
        .and(header("APCA-API-SECRET-KEY", ALPACA_SECRET))
        .respond_with(fixture("alpaca.latest_quote.success.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let attempted = fetch(ProviderId::Alpaca, &server, "AAPL").await;
    let quote = quote_of(&attempted);
    assert_eq!(quote.price, decimal("187.435"), "mid of bid 187.41 and ask 187.46: {quote:?}");
    assert_eq!((quote.bid, quote.ask), (Some(decimal("187.41")), Some(decimal("187.46"))), "bid and ask: {quote:?}");
    assert_eq!(quote.exchange_time, Some(utc_time("2024-05-14T15:42:07.118204361Z")), "exchange time: {quote:?}");
    let request = only_request(&server).await;
    assert_eq!(request.url.query(), None, "single-symbol request has no query: {}", request.url);
    assert_no_key_in_url(&request);
    server.verify().await;
}

#[tokio::test]
async fn alpaca_multi_request_prices_both() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/v2/stocks/quotes/latest"))
        .and(query_param("symbols", "AAPL,TSLA"))
        .and(header("APCA-API-KEY-ID", ALPACA_KEY_ID))
        .and(header("APCA-API-SECRET-KEY", ALPACA_SECRET))
        .respond_with(fixture("alpaca.latest_quotes_multi.success.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(ProviderId::Alpaca, &server);
    let (result, _) = client.fetch_alpaca_multi(&[sym("AAPL"), sym("TSLA")], Utc::now()).await;
    let outcomes = result.expect("the multi request gets a response");
    let prices: Vec<(String, Option<Decimal>)> = outcomes
        .iter()
        .map(|(s, o)| (s.as_str().to_string(), match o {
            Outcome::Quote(q) => Some(q.price),
            _ => None,
        }))
        .collect();
    assert_eq!(
        prices,
        vec![("AAPL".to_string(), Some(decimal("187.435"))), ("TSLA".to_string(), Some(decimal("174.86")))],
        "outcomes in request order: {outcomes:?}"
    );
    assert_no_key_in_url(&only_request(&server).await);
    server.verify().await;
}

#[tokio::test]
async fn alpaca_multi_missing_symbol_is_unknown() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/v2/stocks/quotes/latest"))
        .and(query_param("symbols", "AAPL,NOPE"))
        .respond_with(fixture("alpaca.latest_quotes_multi.success.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(ProviderId::Alpaca, &server);
    let (result, _) = client.fetch_alpaca_multi(&[sym("AAPL"), sym("NOPE")], Utc::now()).await;
    let outcomes = result.expect("the multi request gets a response");
    let labels: Vec<&str> = outcomes.iter().map(|(_, o)| o.label()).collect();
    assert_eq!(labels, vec!["quote", "unknown_symbol"], "outcomes: {outcomes:?}");
    server.verify().await;
}

#[tokio::test]
async fn finnhub_quote_request_and_price() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/quote"))
        .and(query_param("symbol", "AAPL"))
        .and(query_param_is_missing("token"))
        .and(header("X-Finnhub-Token", FINNHUB_KEY))
        .respond_with(fixture("finnhub.quote.success.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let quote = quote_of(&fetch(ProviderId::Finnhub, &server, "AAPL").await);
    assert_eq!(quote.price, decimal("187.43"), "price c: {quote:?}");
    assert_eq!(quote.exchange_time, DateTime::from_timestamp(1_715_701_326, 0), "time t: {quote:?}");
    assert_no_key_in_url(&only_request(&server).await);
    server.verify().await;
}

#[tokio::test]
async fn twelvedata_key_in_header_only() {
    let server = MockServer::builder().start().await;
    let authorization = format!("apikey {TWELVEDATA_KEY}");
    Mock::given(method("GET"))
        .and(path("/quote"))
        .and(query_param("symbol", "AAPL"))
        .and(query_param_is_missing("apikey"))
        .and(header("Authorization", authorization.as_str()))
        .respond_with(fixture("twelvedata.quote.success.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let quote = quote_of(&fetch(ProviderId::TwelveData, &server, "AAPL").await);
    assert_eq!(quote.price, decimal("187.43"), "price from close: {quote:?}");
    assert_eq!(quote.exchange_time, DateTime::from_timestamp(1_715_701_320, 0), "time last_quote_at: {quote:?}");
    assert_no_key_in_url(&only_request(&server).await);
    server.verify().await;
}

#[tokio::test]
async fn alphavantage_global_quote_request_and_price() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/query"))
        .and(query_param("function", "GLOBAL_QUOTE"))
        .and(query_param("symbol", "IBM"))
        .and(query_param("apikey", ALPHAVANTAGE_KEY))
        .respond_with(fixture("alphavantage.global_quote.success.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let quote = quote_of(&fetch(ProviderId::AlphaVantage, &server, "IBM").await);
    assert_eq!(quote.price, decimal("169.11"), "price 05. price: {quote:?}");
    assert_eq!(quote.exchange_time, Some(utc_time("2024-05-14T20:00:00Z")), "latest trading day at 20:00Z: {quote:?}");
    server.verify().await;
}

#[tokio::test]
async fn rapidapi_sends_listing_host_header() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/query"))
        .and(query_param("function", "GLOBAL_QUOTE"))
        .and(query_param("symbol", "IBM"))
        .and(query_param_is_missing("apikey"))
        .and(header("X-RapidAPI-Key", RAPIDAPI_KEY))
        .and(header("X-RapidAPI-Host", "alpha-vantage.p.rapidapi.com"))
        .respond_with(fixture("alphavantage.global_quote.success.json").response())
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(RAPIDAPI_HOST, "alpha-vantage.p.rapidapi.com", "the listing's host constant");
    let quote = quote_of(&fetch(ProviderId::RapidApi, &server, "IBM").await);
    assert_eq!(quote.price, decimal("169.11"), "price 05. price: {quote:?}");
    assert_no_key_in_url(&only_request(&server).await);
    server.verify().await;
}

#[tokio::test]
async fn yahoo_chart_request_looks_like_browser() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/v8/finance/chart/AAPL"))
        .and(query_param("interval", "1d"))
        .and(query_param("range", "5d"))
        .and(header_regex("User-Agent", r"^Mozilla/5\.0 \(.+\) .*(Chrome|Firefox|Safari)/"))
        .respond_with(fixture("yahoo.chart.daily_with_adjclose.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let quote = quote_of(&fetch(ProviderId::Yahoo, &server, "AAPL").await);
    assert_eq!(quote.price, decimal("187.43"), "regularMarketPrice: {quote:?}");
    assert_eq!(quote.exchange_time, DateTime::from_timestamp(1_715_693_400, 0), "time of the last bar: {quote:?}");
    assert_no_key_in_url(&only_request(&server).await);
    server.verify().await;
}

#[tokio::test]
async fn yahoo_works_without_credentials() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/v8/finance/chart/AAPL"))
        .respond_with(fixture("yahoo.chart.daily_with_adjclose.json").response())
        .expect(1)
        .mount(&server)
        .await;
    let client = client(Credentials::default(), &[(ProviderId::Yahoo, server.uri())], TIMEOUT);
    let (attempted, _) = client.fetch(ProviderId::Yahoo, &sym("AAPL"), Utc::now()).await;
    assert_eq!(quote_of(&attempted).price, decimal("187.43"), "Yahoo needs no key: {attempted:?}");
    server.verify().await;
}

#[tokio::test]
async fn symbol_with_slash_is_one_segment() {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/v2/stocks/BRK%2FB/quotes/latest"))
        .respond_with(ResponseTemplate::new(200).set_body_json(quote_body(ProviderId::Alpaca, "BRK/B", "412.5")))
        .expect(1)
        .mount(&server)
        .await;
    let attempted = fetch(ProviderId::Alpaca, &server, "BRK/B").await;
    assert_eq!(quote_of(&attempted).price, decimal("412.5"), "BRK/B through one path segment: {attempted:?}");
    server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// The error fixtures, each with the status and content type index.json gives it.

fn assert_label(attempted: &Attempted, label: &str, case: &str) {
    assert_eq!(attempted.label(), label, "{case}: {attempted:?}");
}

fn rate_limit_of(attempted: &Attempted) -> (Option<Duration>, bool) {
    match attempted {
        Attempted::Answered(Outcome::RateLimited { wait, daily, .. }) => (*wait, *daily),
        other => panic!("expected a rate limit, got {other:?}"),
    }
}

#[tokio::test]
async fn alpaca_auth_error_fixture() {
    let attempted = fetch_fixture(ProviderId::Alpaca, "alpaca.auth_error.401.json", "AAPL").await;
    assert_label(&attempted, "auth_error", "Alpaca 401 unauthorized");
}

#[tokio::test]
async fn alpaca_rate_limit_fixture() {
    let attempted = fetch_fixture(ProviderId::Alpaca, "alpaca.rate_limited.429.json", "AAPL").await;
    assert_eq!(rate_limit_of(&attempted), (None, false), "Alpaca 429 without Retry-After: {attempted:?}");
}

#[tokio::test]
async fn alpaca_trade_fixture_prices_last() {
    let attempted = fetch_fixture(ProviderId::Alpaca, "alpaca.latest_trade.success.json", "AAPL").await;
    let quote = quote_of(&attempted);
    assert_eq!((quote.price, quote.bid, quote.ask), (decimal("187.43"), None, None), "last trade price: {quote:?}");
}

#[tokio::test]
async fn alpaca_bars_fixture_is_malformed() {
    let attempted = fetch_fixture(ProviderId::Alpaca, "alpaca.bars.success.json", "AAPL").await;
    assert_label(&attempted, "malformed", "a bars body where a quote was asked");
}

#[tokio::test]
async fn finnhub_auth_error_fixture() {
    let attempted = fetch_fixture(ProviderId::Finnhub, "finnhub.auth_error.401_invalid_key.json", "AAPL").await;
    assert_label(&attempted, "auth_error", "Finnhub 401 Invalid API key");
}

#[tokio::test]
async fn finnhub_rate_limit_fixture() {
    let attempted = fetch_fixture(ProviderId::Finnhub, "finnhub.rate_limited.429.json", "AAPL").await;
    assert_eq!(rate_limit_of(&attempted), (None, false), "Finnhub 429 API limit reached: {attempted:?}");
}

#[tokio::test]
async fn twelvedata_price_fixture_prices() {
    let attempted = fetch_fixture(ProviderId::TwelveData, "twelvedata.price.success.json", "AAPL").await;
    assert_eq!(quote_of(&attempted).price, decimal("187.43"), "price as a string: {attempted:?}");
}

#[tokio::test]
async fn twelvedata_minute_limit_under_200() {
    let attempted = fetch_fixture(ProviderId::TwelveData, "twelvedata.rate_limited.minute.json", "AAPL").await;
    let (wait, daily) = rate_limit_of(&attempted);
    assert!(!daily, "a per-minute limit is not daily: {attempted:?}");
    let wait = wait.expect("a per-minute limit names the wait to the next minute");
    assert!(wait > Duration::ZERO, "wait {wait:?} is positive");
    assert!(wait <= Duration::from_secs(60), "wait {wait:?} is within the minute");
}

#[tokio::test]
async fn alphavantage_daily_information_fixture() {
    let attempted = fetch_fixture(ProviderId::AlphaVantage, "alphavantage.rate_limited.daily_information.json", "IBM").await;
    assert_eq!(rate_limit_of(&attempted), (None, true), "25 requests per day used up: {attempted:?}");
}

#[tokio::test]
async fn alphavantage_invalid_call_is_unknown() {
    let attempted = fetch_fixture(ProviderId::AlphaVantage, "alphavantage.invalid_call.error_message.json", "NOPE").await;
    assert_label(&attempted, "unknown_symbol", "Alpha Vantage Error Message for a symbol it lacks");
}

#[tokio::test]
async fn rapidapi_minute_limit_fixture() {
    let attempted = fetch_fixture(ProviderId::RapidApi, "rapidapi.rate_limited.429_per_minute.json", "IBM").await;
    let (wait, daily) = rate_limit_of(&attempted);
    assert!(!daily, "a per-minute plan limit is not daily: {attempted:?}");
    let wait = wait.expect("a per-minute limit names the wait to the next minute");
    assert!(wait > Duration::ZERO, "wait {wait:?} is positive");
    assert!(wait <= Duration::from_secs(60), "wait {wait:?} is within the minute");
}

#[tokio::test]
async fn yahoo_not_found_is_unknown() {
    let attempted = fetch_fixture(ProviderId::Yahoo, "yahoo.chart.not_found.json", "NOPE").await;
    assert_label(&attempted, "unknown_symbol", "Yahoo 404 chart error Not Found");
}

// ---------------------------------------------------------------------------------------------
// Classification through real HTTP.

async fn serve(template: ResponseTemplate) -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(method("GET")).respond_with(template).mount(&server).await;
    server
}

#[tokio::test]
async fn retry_after_seconds_sets_wait() {
    let server = serve(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .set_body_raw(r#"{"error": "API limit reached. Please try again later. Remaining Limit: 0"}"#, "application/json"),
    )
    .await;
    let attempted = fetch(ProviderId::Finnhub, &server, "AAPL").await;
    assert_eq!(rate_limit_of(&attempted), (Some(Duration::from_secs(7)), false), "Retry-After: 7 on a 429: {attempted:?}");
}

#[tokio::test]
async fn html_page_under_200_is_malformed() {
    let page = "<!DOCTYPE html><html><head><title>Yahoo is part of the Yahoo family of brands</title></head>\
                <body><form>Accept all cookies</form></body></html>";
    let server = serve(ResponseTemplate::new(200).set_body_raw(page, "text/html; charset=utf-8")).await;
    let attempted = fetch(ProviderId::Yahoo, &server, "AAPL").await;
    assert_label(&attempted, "malformed", "consent page sent with HTTP 200");
}

#[tokio::test]
async fn plain_text_429_is_rate_limited() {
    let server = serve(ResponseTemplate::new(429).set_body_raw("Too Many Requests", "text/plain")).await;
    let attempted = fetch(ProviderId::Yahoo, &server, "AAPL").await;
    assert_label(&attempted, "rate_limited", "plain-text 429");
}

#[tokio::test]
async fn status_503_is_transient() {
    let server = serve(ResponseTemplate::new(503).set_body_raw("<html><title>503 Service Unavailable</title></html>", "text/html")).await;
    let attempted = fetch(ProviderId::TwelveData, &server, "AAPL").await;
    assert_label(&attempted, "transient", "503 Service Unavailable");
}

#[tokio::test]
async fn slow_response_times_out() {
    let body = quote_body(ProviderId::Finnhub, "AAPL", "187.43");
    let server = serve(ResponseTemplate::new(200).set_body_json(body).set_delay(Duration::from_millis(1500))).await;
    let client = client(credentials(), &[(ProviderId::Finnhub, server.uri())], Duration::from_millis(300));
    let started = Instant::now();
    let (attempted, elapsed) = client.fetch(ProviderId::Finnhub, &sym("AAPL"), Utc::now()).await;
    let waited = started.elapsed();
    assert_eq!(attempted, Attempted::Timeout, "response delayed 1.5 s with a 300 ms timeout");
    assert_eq!(attempted.label(), "timeout", "label of a timeout");
    assert!(waited >= Duration::from_millis(250), "fetch returned after {waited:?} (reported {elapsed:?}), before the 300 ms timeout");
    assert!(waited < Duration::from_millis(1200), "fetch returned after {waited:?} (reported {elapsed:?}), long after the 300 ms timeout");
}

#[tokio::test]
async fn closed_port_is_connect_error() {
    let client = client(credentials(), &[], TIMEOUT);
    let started = Instant::now();
    let (attempted, _) = client.fetch(ProviderId::AlphaVantage, &sym("IBM"), Utc::now()).await;
    assert!(matches!(attempted, Attempted::Connect(_)), "fetch from {CLOSED_PORT}: {attempted:?}");
    assert_eq!(attempted.label(), "transient", "label of a connection error");
    let detail = attempted.detail();
    assert!(!detail.contains("http://"), "connect detail has no URL: {detail}");
    assert!(!detail.contains("127.0.0.1:9/"), "connect detail has no URL path: {detail}");
    assert!(!detail.contains(ALPHAVANTAGE_KEY), "connect detail has no apikey: {detail}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused connection took {:?}", started.elapsed());
}

#[tokio::test]
async fn finnhub_zeros_are_unknown_symbol() {
    let zeros = r#"{"c":0,"d":null,"dp":null,"h":0,"l":0,"o":0,"pc":0,"t":0}"#;
    let server = serve(ResponseTemplate::new(200).set_body_raw(zeros, "application/json")).await;
    let attempted = fetch(ProviderId::Finnhub, &server, "NOPE").await;
    assert_label(&attempted, "unknown_symbol", "Finnhub all-zero body");
}

#[tokio::test]
async fn oversized_body_is_cut_not_hung() {
    let mut body = br#"{"c": 187.43, "pad": ""#.to_vec();
    body.extend(vec![b'x'; 3 << 20]);
    body.extend_from_slice(br#""}"#);
    let server = serve(ResponseTemplate::new(200).set_body_raw(body, "application/json")).await;
    let started = Instant::now();
    let attempted = fetch(ProviderId::Finnhub, &server, "AAPL").await;
    let elapsed = started.elapsed();
    assert_label(&attempted, "malformed", "3 MiB body cut at 1 MiB");
    assert!(elapsed < Duration::from_secs(3), "oversized body took {elapsed:?}");
}

#[tokio::test]
async fn oversized_html_error_is_transient() {
    let mut page = b"<html><head><title>502 Bad Gateway</title></head><body>".to_vec();
    page.extend(vec![b'y'; 2 << 20]);
    page.extend_from_slice(b"</body></html>");
    let server = serve(ResponseTemplate::new(502).set_body_raw(page, "text/html")).await;
    let attempted = fetch(ProviderId::Yahoo, &server, "AAPL").await;
    assert_label(&attempted, "transient", "2 MiB 502 page");
    assert!(attempted.detail().chars().count() <= 220, "detail stays short: {} chars", attempted.detail().chars().count());
}
