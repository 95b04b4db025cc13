//! Command line and environment: every setting is a flag `--x-y` and a variable `NEOLIGHT_X_Y`
//! (the flag wins), read as text and validated at once, so one run reports every problem.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand};
use neolight_actors::market::price_file::ReplayInput;
use neolight_actors::providers::breaker::BreakerConfig;
use neolight_actors::providers::cascade::CascadeSettings;
use neolight_actors::providers::client::{base_url_variable, Credentials};
use neolight_actors::providers::limiter::Quota;
use neolight_actors::providers::ProviderId;
use neolight_actors::settings::{RiskLimits, TradingSettings};
use neolight_actors::strategies::StrategyKind;
use neolight_messages::{MarketSource, Symbol};
use rust_decimal::Decimal;

#[derive(Debug, Parser)]
#[command(name = "neolight", version, about = "Self-hosted research and paper-trading mesh", args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, which is what `neolight` alone does.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the mesh (the default command).
    Run(RunArgs),
    /// Ask the provider cascade for one quote per symbol, without opening the data directory.
    Quote(QuoteArgs),
}

/// Options of `neolight quote`.
#[derive(Debug, Args, Clone)]
pub struct QuoteArgs {
    /// Symbols to quote, such as AAPL MSFT.
    #[arg(required = true)]
    pub symbols: Vec<String>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub providers: ProviderArgs,
    /// Log format: text or json [default: text].
    #[arg(long, env = "NEOLIGHT_LOG_FORMAT", allow_hyphen_values = true)]
    pub log_format: Option<String>,
}

/// Settings of the live provider cascade, shared by `run --market live` and `quote`.
#[derive(Debug, Args, Clone, Default)]
pub struct ProviderArgs {
    /// Timeout of one provider request, at most 10s [default: 5s].
    #[arg(long, env = "NEOLIGHT_REQUEST_TIMEOUT", allow_hyphen_values = true)]
    pub request_timeout: Option<String>,
    /// Calls a breaker counts before it judges the failure rate [default: 5].
    #[arg(long, env = "NEOLIGHT_BREAKER_MIN_CALLS", allow_hyphen_values = true)]
    pub breaker_min_calls: Option<String>,
    /// First open period of a breaker; it doubles on each reopening [default: 30s].
    #[arg(long, env = "NEOLIGHT_BREAKER_BASE_OPEN", allow_hyphen_values = true)]
    pub breaker_base_open: Option<String>,
    /// Maximum open period of a breaker [default: 10m].
    #[arg(long, env = "NEOLIGHT_BREAKER_MAX_OPEN", allow_hyphen_values = true)]
    pub breaker_max_open: Option<String>,
    /// A call slower than this counts as a breaker failure [default: 3s].
    #[arg(long, env = "NEOLIGHT_BREAKER_SLOW_CALL", allow_hyphen_values = true)]
    pub breaker_slow_call: Option<String>,
    /// Maximum wait of the background refresher for one provider's rate-limit permit [default: 5s].
    #[arg(long, env = "NEOLIGHT_PERMIT_WAIT", allow_hyphen_values = true)]
    pub permit_wait: Option<String>,
    /// Alpaca rate limits, comma-separated windows such as 200/min [default: 200/min].
    #[arg(long, env = "NEOLIGHT_ALPACA_RATE_LIMIT", allow_hyphen_values = true)]
    pub alpaca_rate_limit: Option<String>,
    /// Finnhub rate limits [default: 30/s,60/min].
    #[arg(long, env = "NEOLIGHT_FINNHUB_RATE_LIMIT", allow_hyphen_values = true)]
    pub finnhub_rate_limit: Option<String>,
    /// Twelve Data rate limits [default: 8/min,800/day].
    #[arg(long, env = "NEOLIGHT_TWELVEDATA_RATE_LIMIT", allow_hyphen_values = true)]
    pub twelvedata_rate_limit: Option<String>,
    /// Alpha Vantage rate limits [default: 5/min,25/day].
    #[arg(long, env = "NEOLIGHT_ALPHAVANTAGE_RATE_LIMIT", allow_hyphen_values = true)]
    pub alphavantage_rate_limit: Option<String>,
    /// RapidAPI rate limits [default: 5/min].
    #[arg(long, env = "NEOLIGHT_RAPIDAPI_RATE_LIMIT", allow_hyphen_values = true)]
    pub rapidapi_rate_limit: Option<String>,
    /// Yahoo rate limits [default: 30/min].
    #[arg(long, env = "NEOLIGHT_YAHOO_RATE_LIMIT", allow_hyphen_values = true)]
    pub yahoo_rate_limit: Option<String>,
}

/// Validated provider settings.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub credentials: Credentials,
    pub base_urls: Vec<(ProviderId, String)>,
    pub timeout: Duration,
    pub cascade: CascadeSettings,
}

impl ProviderArgs {
    fn validate_into(&self, p: &mut Problems) -> ProviderConfig {
        let timeout = p.take("request-timeout", self.request_timeout.as_deref(), Duration::from_secs(5), |t| {
            parse_duration(t).and_then(|d| {
                if d > Duration::ZERO && d <= Duration::from_secs(10) {
                    Ok(d)
                } else {
                    Err(format!("{t:?} is outside 1ms..10s"))
                }
            })
        });
        let mut breaker = BreakerConfig::default();
        breaker.min_calls = p.take("breaker-min-calls", self.breaker_min_calls.as_deref(), breaker.min_calls, |t| match t.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("{t:?} is not a whole number of calls of at least 1")),
        });
        breaker.base_open = p.take("breaker-base-open", self.breaker_base_open.as_deref(), breaker.base_open, parse_duration);
        breaker.max_open = p.take("breaker-max-open", self.breaker_max_open.as_deref(), breaker.max_open, parse_duration);
        breaker.slow_call = p.take("breaker-slow-call", self.breaker_slow_call.as_deref(), breaker.slow_call, parse_duration);
        if breaker.max_open < breaker.base_open {
            p.0.push(format!("--breaker-max-open {:?} must not be shorter than --breaker-base-open {:?}", breaker.max_open, breaker.base_open));
        }
        let permit_wait = p.take("permit-wait", self.permit_wait.as_deref(), Duration::from_secs(5), parse_duration);

        let mut quotas = Vec::new();
        let limits = [
            (ProviderId::Alpaca, "alpaca-rate-limit", &self.alpaca_rate_limit),
            (ProviderId::Finnhub, "finnhub-rate-limit", &self.finnhub_rate_limit),
            (ProviderId::TwelveData, "twelvedata-rate-limit", &self.twelvedata_rate_limit),
            (ProviderId::AlphaVantage, "alphavantage-rate-limit", &self.alphavantage_rate_limit),
            (ProviderId::RapidApi, "rapidapi-rate-limit", &self.rapidapi_rate_limit),
            (ProviderId::Yahoo, "yahoo-rate-limit", &self.yahoo_rate_limit),
        ];
        for (provider, name, value) in limits {
            if let Some(text) = value {
                let parsed: Result<Vec<Quota>, String> =
                    text.split(',').map(str::trim).filter(|w| !w.is_empty()).map(Quota::parse).collect();
                match parsed {
                    Ok(windows) if !windows.is_empty() => quotas.push((provider, windows)),
                    Ok(_) => p.0.push(format!("--{name}: {text:?} names no window; use forms like 30/s,60/min")),
                    Err(problem) => p.0.push(format!("--{name}: {problem}")),
                }
            }
        }

        let mut base_urls = Vec::new();
        for provider in ProviderId::ALL {
            let variable = base_url_variable(provider);
            if let Ok(url) = std::env::var(variable) {
                let url = url.trim().to_string();
                if url.starts_with("http://") || url.starts_with("https://") {
                    base_urls.push((provider, url));
                } else {
                    p.0.push(format!("{variable}={url:?} is not an http:// or https:// URL"));
                }
            }
        }
        ProviderConfig {
            credentials: Credentials::from_env(),
            base_urls,
            timeout,
            // A caller waits at most two request timeouts for the whole cascade: one provider
            // may hang to its timeout and the next one still gets a full try.
            cascade: CascadeSettings { breaker, quotas, permit_wait, caller_budget: timeout * 2 },
        }
    }
}

impl QuoteArgs {
    /// Checks every value; returns the symbols, the provider settings and the log format.
    pub fn validate(&self) -> Result<(Vec<Symbol>, ProviderConfig, LogFormat), Vec<String>> {
        let mut p = Problems(Vec::new());
        let symbols: Vec<Symbol> = self.symbols.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(Symbol::new).collect();
        for symbol in &symbols {
            let valid = symbol.as_str().len() <= 32
                && symbol.as_str().chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '^' | '=' | '_' | '/'));
            if !valid {
                p.0.push(format!("{:?} is not a ticker; use letters, digits and . - ^ = _ / (at most 32 characters)", symbol.as_str()));
            }
        }
        if symbols.is_empty() {
            p.0.push("no symbol given; use for example `neolight quote AAPL MSFT`".to_string());
        }
        let providers = self.providers.validate_into(&mut p);
        let log_format = parse_log_format(&mut p, self.log_format.as_deref());
        if p.0.is_empty() {
            Ok((symbols, providers, log_format))
        } else {
            Err(p.0)
        }
    }
}

fn parse_log_format(p: &mut Problems, value: Option<&str>) -> LogFormat {
    p.take("log-format", value, LogFormat::Text, |t| match t.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is not a log format; use text or json")),
    })
}

/// Options of `neolight run`. Values are text here and checked by [`RunArgs::validate`].
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Market source: sim (seeded simulator), replay (price files) or live (providers).
    #[arg(long, env = "NEOLIGHT_MARKET", allow_hyphen_values = true)]
    pub market: Option<String>,
    /// Price file to replay, as [SYMBOL=]PATH; repeat for several files. Implies --market replay.
    #[arg(long, env = "NEOLIGHT_REPLAY", value_delimiter = ',')]
    pub replay: Vec<String>,
    /// Replay steps per wall second, or `max` for no pacing.
    #[arg(long, env = "NEOLIGHT_SPEED", allow_hyphen_values = true)]
    pub speed: Option<String>,
    /// Exit after the last replay step, the final snapshot and the summary.
    #[arg(long, env = "NEOLIGHT_UNTIL_END", value_parser = FalseyValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub until_end: bool,
    /// Move the data directory's state into its archive/ folder before starting.
    #[arg(long, env = "NEOLIGHT_RESET_STATE", value_parser = FalseyValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub reset_state: bool,
    /// Directory for the ledger, mirrors and identity [default: ./neolight-data].
    #[arg(long, env = "NEOLIGHT_DATA_DIR", allow_hyphen_values = true)]
    pub data_dir: Option<PathBuf>,
    /// HTTP port; 0 binds a free port [default: 8080].
    #[arg(long, env = "PORT", allow_hyphen_values = true)]
    pub port: Option<String>,
    /// HTTP bind address [default: 0.0.0.0].
    #[arg(long, env = "NEOLIGHT_BIND", allow_hyphen_values = true)]
    pub bind: Option<String>,
    /// Sim market seed [default: 42].
    #[arg(long, env = "NEOLIGHT_SEED", allow_hyphen_values = true)]
    pub seed: Option<String>,
    /// Symbols traded in sim and live, comma-separated [default: AAPL,MSFT,SPY].
    #[arg(long, env = "NEOLIGHT_UNIVERSE", allow_hyphen_values = true)]
    pub universe: Option<String>,
    /// Step interval in sim and live [default: 1s].
    #[arg(long, env = "NEOLIGHT_TICK", allow_hyphen_values = true)]
    pub tick: Option<String>,
    /// Interval between PnL history rows in sim and live [default: 1m].
    #[arg(long, env = "NEOLIGHT_MARK_INTERVAL", allow_hyphen_values = true)]
    pub mark_interval: Option<String>,
    /// Starting cash of the paper account [default: 100000].
    #[arg(long, env = "NEOLIGHT_INITIAL_CASH", allow_hyphen_values = true)]
    pub initial_cash: Option<String>,
    /// Fee per fill, in basis points of its value [default: 1].
    #[arg(long, env = "NEOLIGHT_FEE_BPS", allow_hyphen_values = true)]
    pub fee_bps: Option<String>,
    /// Slippage against each fill, in basis points of the price [default: 2].
    #[arg(long, env = "NEOLIGHT_SLIPPAGE_BPS", allow_hyphen_values = true)]
    pub slippage_bps: Option<String>,
    /// Value of a new position before the brain's risk_scaler [default: 10000].
    #[arg(long, env = "NEOLIGHT_ORDER_NOTIONAL", allow_hyphen_values = true)]
    pub order_notional: Option<String>,
    /// Active strategy: ma_crossover or mean_reversion [default: ma_crossover].
    #[arg(long, env = "NEOLIGHT_STRATEGY", allow_hyphen_values = true)]
    pub strategy: Option<String>,
    /// Fast moving-average window of ma_crossover, in steps [default: 10].
    #[arg(long, env = "NEOLIGHT_FAST_WINDOW", allow_hyphen_values = true)]
    pub fast_window: Option<String>,
    /// Slow moving-average window of ma_crossover, in steps [default: 30].
    #[arg(long, env = "NEOLIGHT_SLOW_WINDOW", allow_hyphen_values = true)]
    pub slow_window: Option<String>,
    /// Window of mean_reversion, in steps [default: 20].
    #[arg(long, env = "NEOLIGHT_REVERSION_WINDOW", allow_hyphen_values = true)]
    pub reversion_window: Option<String>,
    /// Standard deviations below the mean at which mean_reversion enters [default: 2].
    #[arg(long, env = "NEOLIGHT_REVERSION_ENTRY_Z", allow_hyphen_values = true)]
    pub reversion_entry_z: Option<String>,
    /// Largest value of one symbol's position [default: 25000].
    #[arg(long, env = "NEOLIGHT_MAX_POSITION_NOTIONAL", allow_hyphen_values = true)]
    pub max_position_notional: Option<String>,
    /// Largest sum of all positions' values [default: 100000].
    #[arg(long, env = "NEOLIGHT_MAX_GROSS_EXPOSURE", allow_hyphen_values = true)]
    pub max_gross_exposure: Option<String>,
    /// Loss within one trading day after which only reducing orders pass [default: 5000].
    #[arg(long, env = "NEOLIGHT_MAX_DAILY_LOSS", allow_hyphen_values = true)]
    pub max_daily_loss: Option<String>,
    /// Age up to which a quote is fresh [default: 60s].
    #[arg(long, env = "NEOLIGHT_MAX_AGE", allow_hyphen_values = true)]
    pub max_age: Option<String>,
    /// Age up to which a quote is stale; older is expired [default: 24h].
    #[arg(long, env = "NEOLIGHT_STALE_CAP", allow_hyphen_values = true)]
    pub stale_cap: Option<String>,
    /// Live market: no new position on a quote whose exchange time is older [default: 15m].
    #[arg(long, env = "NEOLIGHT_MAX_EXCHANGE_AGE", allow_hyphen_values = true)]
    pub max_exchange_age: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "NEOLIGHT_LOG_FORMAT", allow_hyphen_values = true)]
    pub log_format: Option<String>,
    #[command(flatten)]
    pub providers: ProviderArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A validated `run` configuration.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub market: MarketSource,
    pub replay: Vec<ReplayInput>,
    pub speed: Option<f64>,
    pub until_end: bool,
    pub reset_state: bool,
    pub data_dir: PathBuf,
    pub port: u16,
    pub bind: IpAddr,
    pub seed: u64,
    pub universe: Vec<Symbol>,
    pub tick: Duration,
    pub mark_interval: Duration,
    pub trading: TradingSettings,
    pub log_format: LogFormat,
    pub providers: ProviderConfig,
    /// `REQUIRE_AUTH=true`: every route but `/health` needs the `X-API-Key` header.
    pub require_auth: bool,
}

/// Parses `5s`, `15m`, `24h`, `250ms`, `2d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration; use forms like 500ms, 5s, 15m, 24h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return Err(format!("{text:?} has unknown unit {unit:?}; use ms, s, m, h or d")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Collects every problem instead of stopping at the first.
struct Problems(Vec<String>);

impl Problems {
    fn take<T>(&mut self, name: &str, value: Option<&str>, default: T, parse: impl FnOnce(&str) -> Result<T, String>) -> T {
        match value {
            None => default,
            Some(text) => match parse(text) {
                Ok(value) => value,
                Err(problem) => {
                    self.0.push(format!("--{name} (or {}): {problem}", variable_name(name)));
                    default
                }
            },
        }
    }
}

/// Returns the environment variable that sets the same value as flag `--name`.
fn variable_name(name: &str) -> String {
    match name {
        "port" => "PORT".to_string(),
        _ => format!("NEOLIGHT_{}", name.to_uppercase().replace('-', "_")),
    }
}

fn positive_decimal(text: &str) -> Result<Decimal, String> {
    match Decimal::from_str(text.trim()) {
        Ok(d) if d > Decimal::ZERO => Ok(d),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn bps(text: &str) -> Result<Decimal, String> {
    match Decimal::from_str(text.trim()) {
        Ok(d) if d >= Decimal::ZERO && d < Decimal::from(10_000) => Ok(d),
        _ => Err(format!("{text:?} is not a number of basis points between 0 and 9999")),
    }
}

fn window(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a window between 1 and 10000 steps")),
    }
}

impl RunArgs {
    /// Checks every value and returns the configuration, or every problem found.
    pub fn validate(&self) -> Result<RunConfig, Vec<String>> {
        let mut p = Problems(Vec::new());
        let defaults = TradingSettings::default();

        if let Ok(mode) = std::env::var("TRADING_MODE") {
            if mode != "PAPER_TRADING_MODE" {
                p.0.push(format!("TRADING_MODE={mode:?}: only PAPER_TRADING_MODE is supported; NeoLight trades paper only"));
            }
        }

        let market_default = if self.replay.is_empty() { MarketSource::Sim } else { MarketSource::Replay };
        let market = p.take("market", self.market.as_deref(), market_default, |t| match t.trim() {
            "sim" => Ok(MarketSource::Sim),
            "replay" => Ok(MarketSource::Replay),
            "live" => Ok(MarketSource::Live),
            other => Err(format!("{other:?} is not a market; use sim, replay or live")),
        });
        let mut replay = Vec::new();
        for arg in &self.replay {
            match ReplayInput::parse(arg) {
                Ok(input) => replay.push(input),
                Err(problem) => p.0.push(format!("--replay {arg:?}: {problem}")),
            }
        }
        match market {
            MarketSource::Replay if self.replay.is_empty() => {
                p.0.push("--market replay needs at least one --replay [SYMBOL=]PATH".to_string())
            }
            MarketSource::Sim | MarketSource::Live if !self.replay.is_empty() => {
                p.0.push(format!("--replay is only used with --market replay, not {market}"))
            }
            _ => {}
        }
        if self.until_end && market != MarketSource::Replay {
            p.0.push("--until-end only applies to --market replay".to_string());
        }

        let speed_default = None;
        let speed = p.take("speed", self.speed.as_deref(), speed_default, |t| match t.trim() {
            "max" => Ok(None),
            other => match other.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
                _ => Err(format!("{other:?} is not a speed; use a positive number of steps per second or max")),
            },
        });

        let port = p.take("port", self.port.as_deref(), 8080u16, |t| {
            t.trim().parse::<u16>().map_err(|_| format!("{t:?} is not a port between 0 and 65535"))
        });
        let bind = p.take("bind", self.bind.as_deref(), IpAddr::from([0, 0, 0, 0]), |t| {
            t.trim().parse::<IpAddr>().map_err(|_| format!("{t:?} is not an IP address; use for example 127.0.0.1 or 0.0.0.0"))
        });
        let seed = p.take("seed", self.seed.as_deref(), 42u64, |t| {
            t.trim().parse::<u64>().map_err(|_| format!("{t:?} is not an unsigned integer"))
        });
        let default_universe = ["AAPL", "MSFT", "SPY"].map(Symbol::new).to_vec();
        let universe = p.take("universe", self.universe.as_deref(), default_universe, |t| {
            let symbols: Vec<Symbol> = t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Symbol::new).collect();
            if symbols.is_empty() {
                Err(format!("{t:?} names no symbol; give a comma-separated list such as AAPL,MSFT"))
            } else {
                Ok(symbols)
            }
        });
        let tick = p.take("tick", self.tick.as_deref(), Duration::from_secs(1), |t| {
            parse_duration(t).and_then(|d| if d >= Duration::from_millis(1) { Ok(d) } else { Err(format!("{t:?} is shorter than 1ms")) })
        });
        let mark_interval = p.take("mark-interval", self.mark_interval.as_deref(), Duration::from_secs(60), parse_duration);
        let initial_cash = p.take("initial-cash", self.initial_cash.as_deref(), defaults.initial_cash, positive_decimal);
        let fee_bps = p.take("fee-bps", self.fee_bps.as_deref(), defaults.fee_bps, bps);
        let slippage_bps = p.take("slippage-bps", self.slippage_bps.as_deref(), defaults.slippage_bps, bps);
        let order_notional = p.take("order-notional", self.order_notional.as_deref(), defaults.order_notional, positive_decimal);
        let fast = p.take("fast-window", self.fast_window.as_deref(), 10, window);
        let slow = p.take("slow-window", self.slow_window.as_deref(), 30, window);
        if fast >= slow {
            p.0.push(format!("--fast-window {fast} must be shorter than --slow-window {slow}"));
        }
        let reversion_window = p.take("reversion-window", self.reversion_window.as_deref(), 20, window);
        let entry_z = p.take("reversion-entry-z", self.reversion_entry_z.as_deref(), 2.0, |t| match t.trim().parse::<f64>() {
            Ok(z) if z.is_finite() && z > 0.0 => Ok(z),
            _ => Err(format!("{t:?} is not a positive number")),
        });
        let strategy = p.take("strategy", self.strategy.as_deref(), StrategyKind::MaCrossover { fast, slow }, |t| match t.trim() {
            "ma_crossover" => Ok(StrategyKind::MaCrossover { fast, slow }),
            "mean_reversion" => Ok(StrategyKind::MeanReversion { window: reversion_window, entry_z }),
            other => Err(format!("{other:?} is not a strategy; use ma_crossover or mean_reversion")),
        });
        let limits = RiskLimits {
            max_position_notional: p.take("max-position-notional", self.max_position_notional.as_deref(), defaults.limits.max_position_notional, positive_decimal),
            max_gross_exposure: p.take("max-gross-exposure", self.max_gross_exposure.as_deref(), defaults.limits.max_gross_exposure, positive_decimal),
            max_daily_loss: p.take("max-daily-loss", self.max_daily_loss.as_deref(), defaults.limits.max_daily_loss, positive_decimal),
        };
        let max_age = p.take("max-age", self.max_age.as_deref(), defaults.max_age, parse_duration);
        let stale_cap = p.take("stale-cap", self.stale_cap.as_deref(), defaults.stale_cap, parse_duration);
        if stale_cap < max_age {
            p.0.push(format!("--stale-cap {stale_cap:?} must not be shorter than --max-age {max_age:?}"));
        }
        let max_exchange_age = p.take("max-exchange-age", self.max_exchange_age.as_deref(), Duration::from_secs(15 * 60), parse_duration);
        let log_format = parse_log_format(&mut p, self.log_format.as_deref());
        let providers = self.providers.validate_into(&mut p);
        let require_auth = match std::env::var("REQUIRE_AUTH") {
            Err(_) => false,
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "false" | "0" | "no" => false,
                "true" | "1" | "yes" => {
                    if std::env::var("NEOLIGHT_API_KEY").map_or(true, |k| k.is_empty()) {
                        p.0.push("REQUIRE_AUTH=true needs NEOLIGHT_API_KEY to be set".to_string());
                    }
                    true
                }
                other => {
                    p.0.push(format!("REQUIRE_AUTH={other:?} is not true or false"));
                    false
                }
            },
        };

        if !p.0.is_empty() {
            return Err(p.0);
        }
        Ok(RunConfig {
            market,
            replay,
            speed,
            until_end: self.until_end,
            reset_state: self.reset_state,
            data_dir: self.data_dir.clone().unwrap_or_else(|| PathBuf::from("./neolight-data")),
            port,
            bind,
            seed,
            universe,
            tick,
            mark_interval,
            trading: TradingSettings {
                initial_cash,
                fee_bps,
                slippage_bps,
                order_notional,
                strategy,
                limits,
                max_age,
                stale_cap,
                live_entry: (market == MarketSource::Live).then_some(max_exchange_age),
            },
            log_format,
            providers,
            require_auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn every_problem_is_reported() {
        let args = RunArgs {
            speed: Some("fast".into()),
            fee_bps: Some("-1".into()),
            strategy: Some("yolo".into()),
            ..RunArgs::default()
        };
        let problems = args.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("--speed"));
    }
}
