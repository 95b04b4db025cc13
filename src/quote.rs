//! `neolight quote SYMBOL... [--json]`: one quote per symbol straight from the provider
//! cascade. It opens no data directory, so it runs beside a running mesh.

use std::sync::Arc;

use neolight_actors::providers::cascade::{Cascade, FetchReport, Mode};
use neolight_actors::providers::client::ProviderClient;
use neolight_messages::Symbol;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{json, Value};
use tracing::error;

use crate::config::ProviderConfig;

fn report_json(report: &FetchReport) -> Value {
    match &report.quote {
        Some((provider, quote)) => json!({
            "symbol": report.symbol,
            "price": quote.price.to_f64(),
            "bid": quote.bid.and_then(|d| d.to_f64()),
            "ask": quote.ask.and_then(|d| d.to_f64()),
            "source": provider.as_str(),
            "freshness": "fresh",
            "age_ms": 0,
            "exchange_time": quote.exchange_time,
            "attempts": report.attempts,
        }),
        None => json!({
            "symbol": report.symbol,
            "price": null,
            "bid": null,
            "ask": null,
            "source": null,
            "freshness": null,
            "age_ms": null,
            "exchange_time": null,
            "attempts": report.attempts,
        }),
    }
}

fn print_table(reports: &[FetchReport]) {
    println!("{:<10} {:>14} {:<13} {:<22} attempts", "symbol", "price", "source", "exchange time");
    for report in reports {
        let attempts: Vec<String> = report.attempts.iter().map(|a| format!("{}:{}", a.provider, a.outcome)).collect();
        let (price, source, time) = match &report.quote {
            Some((provider, quote)) => (
                quote.price.to_string(),
                provider.as_str().to_string(),
                quote.exchange_time.map_or("-".to_string(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ),
            None => ("-".to_string(), "-".to_string(), "-".to_string()),
        };
        println!("{:<10} {:>14} {:<13} {:<22} {}", report.symbol, price, source, time, attempts.join(" "));
    }
}

/// Exit codes: 0 every symbol got a price, 1 some did not, 2 invalid settings.
pub fn run(symbols: Vec<Symbol>, providers: ProviderConfig, as_json: bool) -> u8 {
    let client = match ProviderClient::new(providers.credentials, &providers.base_urls, providers.timeout) {
        Ok(client) => client,
        Err(err) => {
            error!("{err}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(error = %err, "cannot start the async runtime");
            return 2;
        }
    };
    // Symbols are fetched concurrently, so the command takes about one cascade's time.
    let reports = runtime.block_on(async move {
        let cascade = Arc::new(Cascade::new(client, &providers.cascade));
        let tasks: Vec<_> = symbols
            .into_iter()
            .map(|symbol| {
                let cascade = cascade.clone();
                tokio::spawn(async move { cascade.fetch(&symbol, Mode::Caller).await })
            })
            .collect();
        let mut reports = Vec::with_capacity(tasks.len());
        for task in tasks {
            match task.await {
                Ok(report) => reports.push(report),
                Err(err) => error!(error = %err, "a quote task failed"),
            }
        }
        reports
    });
    // A name lookup stuck in a resolver thread must not hold the process after the budget:
    // the runtime is shut down without waiting for it.
    runtime.shutdown_background();
    if as_json {
        let quotes: Vec<Value> = reports.iter().map(report_json).collect();
        println!("{}", json!({ "quotes": quotes }));
    } else {
        print_table(&reports);
    }
    if reports.iter().all(|r| r.quote.is_some()) {
        0
    } else {
        1
    }
}
