//! Replay price files: daily or intraday OHLC bars read from CSV for `--replay [SYMBOL=]PATH`.
//!
//! Columns are found by header name (case-insensitive, trimmed, any order): a date column
//! (`date`, `datetime`, `time` or `timestamp`), `open`, `high`, `low`, `close`, optionally
//! an adjusted close (`adj close`, `adj_close`, `adjclose`, `adjusted close`), `volume` and a
//! ticker column (`ticker` or `symbol`). Other columns, including an unnamed index column, are
//! ignored.
//!
//! The symbol of a bar is the `SYMBOL=` of the argument, else the row's ticker, else the file
//! stem in upper case. When an adjusted close is present, open, high, low and close are scaled
//! by `adj_close / close`, rounded to 8 decimal places (half-even).
//!
//! Rows with a bad date or price are skipped, and rows whose open or close lies outside
//! low..high get a wider low or high. Close-to-close moves over 40% count as possible
//! unadjusted splits. All three are counted and reported with `tracing::warn!`. Anything that
//! leaves no usable data, or makes the data ambiguous, is a [`PriceFileError`].

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use neolight_messages::{Bar, Symbol};
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};

const DATE_NAMES: &[&str] = &["date", "datetime", "time", "timestamp"];
const TICKER_NAMES: &[&str] = &["ticker", "symbol"];
const ADJ_CLOSE_NAMES: &[&str] = &["adj close", "adj_close", "adjclose", "adjusted close"];

/// Decimal places kept by the adjusted-close scaling.
const ADJUSTED_DP: u32 = 8;
/// A close-to-close move strictly above this percentage counts as a possible split.
const SPLIT_MOVE_PCT: i64 = 40;
/// Lines named in one warning.
const LISTED_LINES: usize = 5;
/// Tickers named in a [`PriceFileError::SymbolNotInFile`] message.
const LISTED_TICKERS: usize = 20;

/// One `--replay [SYMBOL=]PATH` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayInput {
    /// Symbol set on every bar of the file. With a ticker column, only that ticker's rows are kept.
    pub symbol: Option<Symbol>,
    pub path: PathBuf,
}

impl ReplayInput {
    /// Parses `SYMBOL=PATH` or `PATH`. The part before the first `=` is a symbol only when it
    /// looks like a ticker (ASCII letters, digits, `.`, `-`, `^`, `_`). Otherwise the whole
    /// argument is the path. Fails on an empty path.
    pub fn parse(arg: &str) -> Result<ReplayInput, String> {
        let arg = arg.trim();
        if arg.is_empty() {
            return Err("--replay needs a CSV price file: give SYMBOL=PATH or PATH".to_string());
        }
        if let Some((head, tail)) = arg.split_once('=') {
            if is_plausible_ticker(head) {
                let path = tail.trim();
                if path.is_empty() {
                    return Err(format!(
                        "--replay {arg}: the path after {head}= is empty; give {head}=PATH to a CSV price file"
                    ));
                }
                return Ok(ReplayInput {
                    symbol: Some(Symbol::new(head)),
                    path: PathBuf::from(path),
                });
            }
        }
        Ok(ReplayInput {
            symbol: None,
            path: PathBuf::from(arg),
        })
    }
}

impl FromStr for ReplayInput {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        ReplayInput::parse(arg)
    }
}

fn is_plausible_ticker(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text.bytes().any(|b| b.is_ascii_alphanumeric())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'^' | b'_'))
}

/// One parsed price file.
#[derive(Debug, Clone)]
pub struct PriceFile {
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Distinct symbols of `bars`, sorted.
    pub symbols: Vec<Symbol>,
    /// Bars sorted by `(time, symbol)`, no two with the same time and symbol.
    pub bars: Vec<Bar>,
    /// Data records in the file (header and blank lines excluded), including rows of other
    /// tickers left out by `SYMBOL=`.
    pub rows: usize,
    /// Rows dropped for a bad date, price or field count.
    pub skipped_rows: usize,
    /// Kept rows whose low or high was widened to include the open or close.
    pub widened_rows: usize,
    /// Close-to-close moves over 40% within one symbol.
    pub possible_splits: usize,
}

/// Bars of all replay files merged into time steps.
#[derive(Debug, Clone)]
pub struct ReplayData {
    /// The files in argument order, with `bars` moved out into `steps` (left empty).
    pub files: Vec<PriceFile>,
    /// Steps in ascending time. The bars of one step are sorted by symbol, one bar per symbol.
    pub steps: Vec<(DateTime<Utc>, Vec<Bar>)>,
    /// Bars across all steps.
    pub bar_count: usize,
}

/// Failure to load a replay price file. Every message names the file and the next step.
#[derive(Debug, thiserror::Error)]
pub enum PriceFileError {
    #[error("price file {} not found ({source}); check the path", .path.display())]
    Missing { path: PathBuf, source: io::Error },

    #[error("failed to read price file {} ({source}); check that the path names a readable file", .path.display())]
    Unreadable { path: PathBuf, source: io::Error },

    #[error(
        "price file {} is empty; it needs a header row with date, open, high, low, close and one row per bar",
        .path.display()
    )]
    Empty { path: PathBuf },

    #[error(
        "price file {} has a header ({header}) but no data rows; add one row per bar below the header",
        .path.display()
    )]
    NoDataRows { path: PathBuf, header: String },

    #[error(
        "price file {}, line {line}: malformed CSV record ({source}); fix or delete that line and save the file as UTF-8 CSV",
        .path.display()
    )]
    Csv {
        path: PathBuf,
        line: u64,
        source: csv::Error,
    },

    /// Quoted field that runs past the end of its line. The csv reader accepts it and would
    /// swallow the following lines into one field.
    #[error(
        "price file {}, line {line}: malformed CSV record, a quoted field runs past the end of the line; balance the quotes on that line",
        .path.display()
    )]
    UnclosedQuote { path: PathBuf, line: u64 },

    #[error(
        "price file {}, line 1: missing date column in header {header}; add a header row with date, open, high, low, close (the date column may be named date, datetime, time or timestamp)",
        .path.display()
    )]
    NoDateColumn { path: PathBuf, header: String },

    #[error(
        "price file {}, line 1: missing {missing} {} in header {header}; add a header row with date, open, high, low, close",
        .path.display(),
        if .missing.contains(',') { "columns" } else { "column" }
    )]
    MissingPriceColumns {
        path: PathBuf,
        /// Comma-separated names of the missing columns.
        missing: String,
        header: String,
    },

    #[error(
        "price file {} has no rows for ticker {symbol} (its tickers: {tickers}); use one of those before = or drop the {symbol}= prefix to load every ticker",
        .path.display()
    )]
    SymbolNotInFile {
        path: PathBuf,
        symbol: Symbol,
        /// Comma-separated tickers found in the file.
        tickers: String,
    },

    #[error(
        "price file {} has no usable row: none of its {rows} data rows has a valid date and prices (first: {first_bad}); each row needs a date and positive open, high, low and close",
        .path.display()
    )]
    NoValidRows {
        path: PathBuf,
        rows: usize,
        /// Line, value and reason of the first bad row.
        first_bad: String,
    },

    #[error("{}", duplicate_message(.symbol, .time, .first_path, .first_line, .second_path, .second_line))]
    DuplicateBar {
        symbol: Symbol,
        time: DateTime<Utc>,
        first_path: PathBuf,
        first_line: u64,
        second_path: PathBuf,
        second_line: u64,
    },
}

fn duplicate_message(
    symbol: &Symbol,
    time: &DateTime<Utc>,
    first_path: &Path,
    first_line: &u64,
    second_path: &Path,
    second_line: &u64,
) -> String {
    let when = show_time(time);
    if first_path == second_path && first_line == second_line {
        format!(
            "price file {} is given twice ({symbol} at {when}, line {first_line}); pass each file once",
            first_path.display()
        )
    } else if first_path == second_path {
        format!(
            "price file {}: {symbol} has two bars at {when}, lines {first_line} and {second_line}; delete one of the two rows",
            first_path.display()
        )
    } else {
        format!(
            "{symbol} has two bars at {when}: price file {} line {first_line} and price file {} line {second_line}; replay each symbol's dates from one file only, or give one file another SYMBOL=",
            first_path.display(),
            second_path.display()
        )
    }
}

/// Reads and parses one price file. Logs skipped rows, widened rows and possible splits.
pub fn load_price_file(input: &ReplayInput) -> Result<PriceFile, PriceFileError> {
    load_with_lines(input).map(|loaded| loaded.file)
}

/// Loads every file, then merges their bars into steps. Fails on the first file error, and on
/// one symbol having two bars at the same time, within a file or across files. No inputs give
/// empty data.
pub fn load_replay(inputs: &[ReplayInput]) -> Result<ReplayData, PriceFileError> {
    let mut files = Vec::with_capacity(inputs.len());
    let mut all: Vec<(Bar, usize, u64)> = Vec::new();
    for input in inputs {
        let Loaded { mut file, lines } = load_with_lines(input)?;
        let index = files.len();
        let bars = std::mem::take(&mut file.bars);
        all.reserve(bars.len());
        all.extend(
            bars.into_iter()
                .zip(lines)
                .map(|(bar, line)| (bar, index, line)),
        );
        files.push(file);
    }
    // The sort is stable, so equal keys stay in argument order, then line order.
    all.sort_by(|a, b| {
        a.0.time
            .cmp(&b.0.time)
            .then_with(|| a.0.symbol.cmp(&b.0.symbol))
    });
    if let Some(pair) = all
        .windows(2)
        .find(|w| w[0].0.time == w[1].0.time && w[0].0.symbol == w[1].0.symbol)
    {
        let (first, second) = (&pair[0], &pair[1]);
        return Err(PriceFileError::DuplicateBar {
            symbol: first.0.symbol.clone(),
            time: first.0.time,
            first_path: files[first.1].path.clone(),
            first_line: first.2,
            second_path: files[second.1].path.clone(),
            second_line: second.2,
        });
    }
    let bar_count = all.len();
    let mut steps: Vec<(DateTime<Utc>, Vec<Bar>)> = Vec::new();
    for (bar, _, _) in all {
        match steps.last_mut() {
            Some((time, bars)) if *time == bar.time => bars.push(bar),
            _ => steps.push((bar.time, vec![bar])),
        }
    }
    Ok(ReplayData {
        files,
        steps,
        bar_count,
    })
}

/// Parsed file with the 1-based source line of each bar, parallel to `file.bars`.
struct Loaded {
    file: PriceFile,
    lines: Vec<u64>,
}

struct Columns {
    width: usize,
    date: usize,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    adj_close: Option<usize>,
    volume: Option<usize>,
    ticker: Option<usize>,
}

impl Columns {
    fn find(path: &Path, header: &csv::StringRecord) -> Result<Columns, PriceFileError> {
        // NOTE: with separate date and time columns only the first is read, so intraday rows
        // of one day collide and fail as duplicate bars.
        let names: Vec<String> = header.iter().map(|c| c.trim().to_lowercase()).collect();
        let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
        let Some(date) = find(DATE_NAMES) else {
            return Err(PriceFileError::NoDateColumn {
                path: path.to_path_buf(),
                header: show_header(header),
            });
        };
        let prices = ["open", "high", "low", "close"].map(|name| (name, find(&[name])));
        let missing: Vec<&str> = prices
            .iter()
            .filter(|(_, index)| index.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(PriceFileError::MissingPriceColumns {
                path: path.to_path_buf(),
                missing: missing.join(", "),
                header: show_header(header),
            });
        }
        let [open, high, low, close] = prices.map(|(_, index)| index.unwrap_or_default());
        Ok(Columns {
            width: header.len(),
            date,
            open,
            high,
            low,
            close,
            adj_close: find(ADJ_CLOSE_NAMES),
            volume: find(&["volume"]),
            ticker: find(TICKER_NAMES),
        })
    }
}

fn show_header(header: &csv::StringRecord) -> String {
    let cells: Vec<String> = header.iter().map(|c| format!("{:?}", c.trim())).collect();
    format!("[{}]", cells.join(", "))
}

/// Row that was not turned into a bar, with its line, its date text and the reason.
struct BadRow {
    line: u64,
    date: String,
    reason: String,
}

impl BadRow {
    fn show(&self) -> String {
        if self.date.is_empty() {
            format!("line {}: {}", self.line, self.reason)
        } else {
            format!("line {} ({}): {}", self.line, self.date, self.reason)
        }
    }
}

/// Event counter that keeps the descriptions of the first few events for a warning.
#[derive(Default)]
struct Tally {
    count: usize,
    first: Vec<String>,
}

impl Tally {
    fn add(&mut self, describe: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.len() < LISTED_LINES {
            self.first.push(describe());
        }
    }

    fn listing(&self) -> String {
        let mut text = self.first.join("; ");
        if self.count > self.first.len() {
            let _ = write!(text, "; and {} more", self.count - self.first.len());
        }
        text
    }
}

fn load_with_lines(input: &ReplayInput) -> Result<Loaded, PriceFileError> {
    let path = input.path.as_path();
    let bytes = std::fs::read(path).map_err(|source| {
        let path = path.to_path_buf();
        if source.kind() == io::ErrorKind::NotFound {
            PriceFileError::Missing { path, source }
        } else {
            PriceFileError::Unreadable { path, source }
        }
    })?;
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PriceFileError::Empty {
            path: path.to_path_buf(),
        });
    }

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let csv_error = |source: csv::Error, fallback_line: u64| PriceFileError::Csv {
        path: path.to_path_buf(),
        line: source.position().map_or(fallback_line, |p| p.line()),
        source,
    };
    let mut header = csv::StringRecord::new();
    match reader.read_record(&mut header) {
        Ok(true) => {}
        Ok(false) => {
            return Err(PriceFileError::Empty {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(csv_error(e, 1)),
    }
    if spans_lines(&header) {
        return Err(PriceFileError::UnclosedQuote {
            path: path.to_path_buf(),
            line: 1,
        });
    }
    let columns = Columns::find(path, &header)?;
    let stem_symbol = || {
        Symbol::new(
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    };
    let fixed_symbol = match (&input.symbol, columns.ticker) {
        (Some(symbol), _) => Some(symbol.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(stem_symbol()),
    };
    let selected_ticker = columns.ticker.and(input.symbol.as_ref());

    let mut rows = 0usize;
    let mut selected_rows = 0usize;
    let mut other_tickers: BTreeSet<String> = BTreeSet::new();
    let mut first_bad: Option<BadRow> = None;
    let mut skipped = Tally::default();
    let mut widened = Tally::default();
    let mut parsed: Vec<(Bar, u64)> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut last_line = 1u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e, last_line + 1)),
        }
        rows += 1;
        let line = record.position().map_or(last_line + 1, |p| p.line());
        last_line = line;
        if spans_lines(&record) {
            return Err(PriceFileError::UnclosedQuote {
                path: path.to_path_buf(),
                line,
            });
        }

        let symbol = match (columns.ticker, &fixed_symbol) {
            (Some(index), fixed) => {
                let ticker = record.get(index).unwrap_or("").trim();
                if let Some(selected) = selected_ticker {
                    if !ticker.eq_ignore_ascii_case(selected.as_str())
                        && Symbol::new(ticker) != *selected
                    {
                        if !ticker.is_empty() && !other_tickers.contains(ticker) {
                            other_tickers.insert(ticker.to_string());
                        }
                        continue;
                    }
                }
                selected_rows += 1;
                if ticker.is_empty() && fixed.is_none() {
                    Err("ticker is empty".to_string())
                } else {
                    Ok(fixed.clone().unwrap_or_else(|| Symbol::new(ticker)))
                }
            }
            (None, fixed) => {
                selected_rows += 1;
                Ok(fixed.clone().unwrap_or_else(stem_symbol))
            }
        };
        match symbol.and_then(|symbol| parse_row(&record, &columns, symbol)) {
            Ok((bar, was_widened)) => {
                if was_widened {
                    widened.add(|| format!("line {line} ({})", show_time(&bar.time)));
                }
                parsed.push((bar, line));
            }
            Err(reason) => {
                let bad = BadRow {
                    line,
                    date: record.get(columns.date).unwrap_or("").trim().to_string(),
                    reason,
                };
                skipped.add(|| bad.show());
                if first_bad.is_none() {
                    first_bad = Some(bad);
                }
            }
        }
    }

    let path_buf = path.to_path_buf();
    if rows == 0 {
        return Err(PriceFileError::NoDataRows {
            path: path_buf,
            header: show_header(&header),
        });
    }
    if let (Some(symbol), 0) = (selected_ticker, selected_rows) {
        let mut tickers: Vec<String> = other_tickers
            .iter()
            .map(|t| Symbol::new(t.as_str()).0)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let more = tickers.len().saturating_sub(LISTED_TICKERS);
        tickers.truncate(LISTED_TICKERS);
        let mut listed = if tickers.is_empty() {
            "none".to_string()
        } else {
            tickers.join(", ")
        };
        if more > 0 {
            let _ = write!(listed, " and {more} more");
        }
        return Err(PriceFileError::SymbolNotInFile {
            path: path_buf,
            symbol: symbol.clone(),
            tickers: listed,
        });
    }
    if parsed.is_empty() {
        return Err(PriceFileError::NoValidRows {
            path: path_buf,
            rows: selected_rows,
            first_bad: first_bad.map_or_else(|| "none".to_string(), |b| b.show()),
        });
    }

    parsed.sort_by(|a, b| {
        a.0.time
            .cmp(&b.0.time)
            .then_with(|| a.0.symbol.cmp(&b.0.symbol))
    });
    if let Some(pair) = parsed
        .windows(2)
        .find(|w| w[0].0.time == w[1].0.time && w[0].0.symbol == w[1].0.symbol)
    {
        let (first_line, second_line) = (pair[0].1.min(pair[1].1), pair[0].1.max(pair[1].1));
        return Err(PriceFileError::DuplicateBar {
            symbol: pair[0].0.symbol.clone(),
            time: pair[0].0.time,
            first_path: path_buf.clone(),
            first_line,
            second_path: path_buf,
            second_line,
        });
    }

    let possible_splits = count_possible_splits(path, &parsed, columns.adj_close.is_some());
    if skipped.count > 0 {
        tracing::warn!(
            "price file {}: skipped {} of {} rows with a missing or invalid date or price: {}",
            path.display(),
            skipped.count,
            selected_rows,
            skipped.listing()
        );
    }
    if widened.count > 0 {
        tracing::warn!(
            "price file {}: {} rows have open or close outside low..high; low/high widened to include them: {}",
            path.display(),
            widened.count,
            widened.listing()
        );
    }

    let symbols: Vec<Symbol> = parsed
        .iter()
        .map(|(bar, _)| &bar.symbol)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    let (bars, lines): (Vec<Bar>, Vec<u64>) = parsed.into_iter().unzip();
    Ok(Loaded {
        file: PriceFile {
            path: path_buf,
            sha256,
            symbols,
            bars,
            rows,
            skipped_rows: skipped.count,
            widened_rows: widened.count,
            possible_splits,
        },
        lines,
    })
}

/// Tells whether a field of the record contains a line break, which only a quoted field that
/// runs on past its line produces in a price file.
fn spans_lines(record: &csv::StringRecord) -> bool {
    record.as_slice().contains(['\n', '\r'])
}

/// Converts one record into a bar and a flag that is true when low or high was widened.
/// Returns the reason when the row is unusable.
fn parse_row(
    record: &csv::StringRecord,
    columns: &Columns,
    symbol: Symbol,
) -> Result<(Bar, bool), String> {
    // A longer row is as unusable as a shorter one: two rows glued together, or a shifted column.
    if record.len() != columns.width {
        return Err(format!(
            "has {} fields, the header has {}",
            record.len(),
            columns.width
        ));
    }

    let field = |index: usize| record.get(index).unwrap_or("").trim();
    let date_text = field(columns.date);
    let time = parse_time(date_text).ok_or_else(|| {
        if date_text.is_empty() {
            "date is empty".to_string()
        } else {
            format!("date {date_text:?} has an unknown format (accepted: YYYY-MM-DD[THH:MM[:SS]], M/D/YYYY, D.M.YYYY, epoch seconds)")
        }
    })?;

    let mut open = positive_price(field(columns.open), "open")?;
    let mut high = positive_price(field(columns.high), "high")?;
    let mut low = positive_price(field(columns.low), "low")?;
    let mut close = positive_price(field(columns.close), "close")?;

    if let Some(index) = columns.adj_close {
        let adj = positive_price(field(index), "adj close")?;
        if adj != close {
            let scale = |value: Decimal| {
                value
                    .checked_mul(adj)
                    .and_then(|v| v.checked_div(close))
                    .map(|v| v.round_dp_with_strategy(ADJUSTED_DP, RoundingStrategy::MidpointNearestEven))
                    .filter(|v| *v > Decimal::ZERO)
                    .ok_or_else(|| {
                        format!("price {value} scaled by adj close {adj} / close {close} is out of range")
                    })
            };
            let scaled = [scale(open)?, scale(high)?, scale(low)?, scale(close)?];
            [open, high, low, close] = scaled;
        }
    }

    let volume = columns
        .volume
        .and_then(|index| parse_decimal(field(index)))
        .filter(|v| *v >= Decimal::ZERO);

    let widened = open < low || open > high || close < low || close > high;
    if widened {
        high = high.max(open).max(close);
        low = low.min(open).min(close);
    }

    Ok((
        Bar {
            symbol,
            time,
            open,
            high,
            low,
            close,
            volume,
        },
        widened,
    ))
}

fn positive_price(text: &str, name: &str) -> Result<Decimal, String> {
    if text.is_empty() {
        return Err(format!("{name} is empty"));
    }
    match parse_decimal(text) {
        None => Err(format!("{name} {text:?} is not a number")),
        Some(value) if value <= Decimal::ZERO => Err(format!("{name} {text:?} is not positive")),
        Some(value) => Ok(value),
    }
}

/// Parses a plain or scientific decimal (`"4006500.0"`, `"1e3"`, `"2.5E-4"`) without `f64`.
fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    if text.contains(['e', 'E']) {
        Decimal::from_scientific_lossy(text).ok()
    } else {
        Decimal::from_str(text).ok()
    }
}

/// Counts and logs close-to-close moves over [`SPLIT_MOVE_PCT`] per symbol. Expects `bars`
/// sorted by time.
/// With an adjusted close column the prices are already adjusted, so such a move is reported as
/// a large move rather than a likely split.
fn count_possible_splits(path: &Path, bars: &[(Bar, u64)], adjusted: bool) -> usize {
    let mut previous: HashMap<&Symbol, (Decimal, DateTime<Utc>)> = HashMap::new();
    let mut count = 0;
    for (bar, line) in bars {
        if let Some((prev_close, prev_time)) = previous.insert(&bar.symbol, (bar.close, bar.time)) {
            let change = bar.close - prev_close;
            if change.abs() * Decimal::ONE_HUNDRED > prev_close * Decimal::from(SPLIT_MOVE_PCT) {
                count += 1;
                let pct = change * Decimal::ONE_HUNDRED / prev_close;
                let advice = if adjusted {
                    "a large move in adjusted prices; check the row if it is not a real move"
                } else {
                    "possible unadjusted split, use prices adjusted for splits or add an adj close column"
                };
                tracing::warn!(
                    "price file {}, line {}: {} close moved {}{:.1}% from {} to {} ({} -> {}); {}",
                    path.display(),
                    line,
                    bar.symbol,
                    if pct > Decimal::ZERO { "+" } else { "" },
                    pct,
                    show_time(&prev_time),
                    show_time(&bar.time),
                    prev_close,
                    bar.close,
                    advice
                );
            }
        }
    }
    count
}

/// Formats a midnight UTC time as `YYYY-MM-DD` and any other time as RFC 3339.
fn show_time(time: &DateTime<Utc>) -> String {
    if time.time() == NaiveTime::MIN {
        time.format("%Y-%m-%d").to_string()
    } else {
        time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

/// Parses the accepted date forms into UTC: ISO date, ISO date-time (`T` or space, optional
/// `Z` or `±HH[:MM]` zone, none = UTC), `M/D/YYYY[ H:MM[:SS]]`, `D.M.YYYY[ H:MM[:SS][.fff]]`
/// and integer epoch seconds.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        let time = DateTime::from_timestamp(text.parse().ok()?, 0)?;
        return (1..=9999).contains(&time.year()).then_some(time);
    }
    let bytes = text.as_bytes();
    if bytes.len() >= 10 && bytes[4] == b'-' && bytes[7] == b'-' {
        return parse_iso(text);
    }
    if text.contains('/') {
        return parse_numeric_date(text, '/', true);
    }
    if text.contains('.') {
        return parse_numeric_date(text, '.', false);
    }
    None
}

fn parse_iso(text: &str) -> Option<DateTime<Utc>> {
    let date = NaiveDate::from_ymd_opt(
        digits(text.get(0..4)?, 4, 4)? as i32,
        digits(text.get(5..7)?, 2, 2)?,
        digits(text.get(8..10)?, 2, 2)?,
    )?;
    let rest = text.get(10..)?;
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset_seconds) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        (&rest[..at], parse_offset(&rest[at..])?)
    } else {
        (rest, 0)
    };
    let local = date.and_time(parse_clock(clock.trim())?);
    let zone = FixedOffset::east_opt(offset_seconds)?;
    Some(
        zone.from_local_datetime(&local)
            .single()?
            .with_timezone(&Utc),
    )
}

/// Converts `±HH`, `±HHMM` or `±HH:MM` to seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let body = text.get(1..)?.replacen(':', "", 1);
    let (hours, minutes) = match body.len() {
        2 => (digits(&body, 2, 2)?, 0),
        4 => (digits(body.get(..2)?, 2, 2)?, digits(body.get(2..)?, 2, 2)?),
        _ => return None,
    };
    (hours <= 23 && minutes <= 59).then(|| sign * (hours * 3600 + minutes * 60) as i32)
}

/// Parses `A<sep>B<sep>YYYY` with an optional clock after whitespace. `month_first` is
/// true when A is the month.
fn parse_numeric_date(text: &str, sep: char, month_first: bool) -> Option<DateTime<Utc>> {
    let (date, clock) = match text.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((date, clock)) => (date, Some(clock.trim())),
        None => (text, None),
    };
    let mut parts = date.split(sep);
    let (a, b, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (a, b, year) = (digits(a, 1, 2)?, digits(b, 1, 2)?, digits(year, 4, 4)?);
    let (month, day) = if month_first { (a, b) } else { (b, a) };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let clock = match clock {
        Some(clock) => parse_clock(clock)?,
        None => NaiveTime::MIN,
    };
    Some(date.and_time(clock).and_utc())
}

/// Parses `H:MM`, `H:MM:SS` or `H:MM:SS.fff`.
fn parse_clock(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

/// Parses a string of `min..=max` ASCII digits.
fn digits(text: &str, min: usize, max: usize) -> Option<u32> {
    ((min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const HEADER: &str = "date,open,high,low,close,volume\n";

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_time(NaiveTime::MIN)
            .and_utc()
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
    }

    fn write_file(dir: &tempfile::TempDir, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn plain(path: &Path) -> ReplayInput {
        ReplayInput {
            symbol: None,
            path: path.to_path_buf(),
        }
    }

    fn with_symbol(symbol: &str, path: &Path) -> ReplayInput {
        ReplayInput {
            symbol: Some(Symbol::new(symbol)),
            path: path.to_path_buf(),
        }
    }

    /// Loads `content` written as `name` and returns the file with the warnings logged.
    fn load_text(name: &str, content: &str) -> (PriceFile, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, name, content);
        let (result, warnings) = capture_warnings(|| load_price_file(&plain(&path)));
        (result.unwrap(), warnings)
    }

    /// Loads `content` written as `name`, expects an error and returns its message and the path.
    fn load_error(name: &str, content: impl AsRef<[u8]>) -> (PriceFileError, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, name, content);
        let err = load_price_file(&plain(&path)).unwrap_err();
        let message = err.to_string();
        (err, message, path.display().to_string())
    }

    struct Capture(Arc<Mutex<Vec<String>>>);

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "message" {
                        let _ = write!(self.0, "{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", event.metadata().level(), message.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    fn capture_warnings<R>(run: impl FnOnce() -> R) -> (R, Vec<String>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let result = tracing::subscriber::with_default(Capture(seen.clone()), run);
        let warnings = seen.lock().unwrap().clone();
        (result, warnings)
    }

    // ReplayInput

    #[test]
    fn replay_input_with_symbol() {
        let input = ReplayInput::parse("spy=data/a b.csv").unwrap();
        assert_eq!(input.symbol, Some(Symbol::new("SPY")));
        assert_eq!(input.path, PathBuf::from("data/a b.csv"));
        for (arg, symbol) in [
            ("BRK.B=x.csv", "BRK.B"),
            ("^GSPC=x.csv", "^GSPC"),
            ("BTC-USD=x.csv", "BTC-USD"),
            ("SPY_D=x.csv", "SPY_D"),
        ] {
            let input = ReplayInput::parse(arg).unwrap();
            assert_eq!(input.symbol, Some(Symbol::new(symbol)), "{arg}");
            assert_eq!(input.path, PathBuf::from("x.csv"), "{arg}");
        }
    }

    #[test]
    fn replay_input_without_symbol() {
        for arg in [
            "a/b.csv",
            "./k=v.csv",
            "data/x=y/p.csv",
            "=p.csv",
            "/tmp/a=b",
        ] {
            let input = ReplayInput::parse(arg).unwrap();
            assert_eq!(input.symbol, None, "{arg}");
            assert_eq!(input.path, PathBuf::from(arg), "{arg}");
        }
    }

    #[test]
    fn replay_input_empty_path_fails() {
        assert!(ReplayInput::parse("").unwrap_err().contains("SYMBOL=PATH"));
        assert!(ReplayInput::parse("   ").is_err());
        let err = ReplayInput::parse("SPY=").unwrap_err();
        assert!(err.contains("SPY="), "{err}");
        assert!(err.contains("empty"), "{err}");
    }

    // Columns and symbols

    #[test]
    fn columns_by_name_in_any_order_and_case() {
        let (file, warnings) = load_text(
            "msft.csv",
            " Close ,Extra,VOLUME,Low, High ,Open,DateTime\n\
             10,x,100,9,11,9.5,2020-01-02\n\
             11,y,,10,12,10.5,2020-01-03\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(file.rows, 2);
        assert_eq!(file.symbols, vec![Symbol::new("MSFT")]);
        let bar = &file.bars[0];
        assert_eq!(bar.symbol, Symbol::new("MSFT"));
        assert_eq!(bar.time, day(2020, 1, 2));
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close),
            (dec("9.5"), dec("11"), dec("9"), dec("10"))
        );
        assert_eq!(bar.volume, Some(dec("100")));
        assert_eq!(file.bars[1].volume, None);
    }

    #[test]
    fn date_column_aliases() {
        for name in ["date", "Datetime", "TIME", "timestamp"] {
            let (file, _) = load_text(
                "x.csv",
                &format!("{name},open,high,low,close\n2021-05-06,1,2,1,2\n"),
            );
            assert_eq!(file.bars[0].time, day(2021, 5, 6), "{name}");
        }
    }

    #[test]
    fn index_column_and_float_volume() {
        let (file, _) = load_text(
            "spy_d.csv",
            ",date,open,high,low,close,volume\n0,1999-11-01,136.5,137.0,135.5625,135.5625,4006500.0\n",
        );
        assert_eq!(file.symbols, vec![Symbol::new("SPY_D")]);
        assert_eq!(file.bars[0].volume, Some(dec("4006500")));
        assert_eq!(file.bars[0].low, dec("135.5625"));
    }

    #[test]
    fn symbol_prefix_overrides_stem() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            "prices.csv",
            format!("{HEADER}2020-01-02,1,2,1,2,5\n"),
        );
        let file = load_price_file(&with_symbol("qqq", &path)).unwrap();
        assert_eq!(file.symbols, vec![Symbol::new("QQQ")]);
        assert_eq!(file.bars[0].symbol, Symbol::new("QQQ"));
    }

    #[test]
    fn ticker_column_sorted_by_time_symbol() {
        let (file, _) = load_text(
            "long.csv",
            "Ticker,Date,Open,High,Low,Close\n\
             msft,2020-01-03,2,3,1,2\n\
             AAPL,2020-01-03,2,3,1,2\n\
             MSFT,2020-01-02,2,3,1,2\n\
             AAPL,2020-01-02,2,3,1,2\n",
        );
        assert_eq!(file.symbols, vec![Symbol::new("AAPL"), Symbol::new("MSFT")]);
        let order: Vec<(DateTime<Utc>, &str)> = file
            .bars
            .iter()
            .map(|b| (b.time, b.symbol.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                (day(2020, 1, 2), "AAPL"),
                (day(2020, 1, 2), "MSFT"),
                (day(2020, 1, 3), "AAPL"),
                (day(2020, 1, 3), "MSFT"),
            ]
        );
    }

    #[test]
    fn empty_ticker_row_skipped() {
        let (file, _) = load_text(
            "long.csv",
            "symbol,date,open,high,low,close\nIBM,2020-01-02,2,3,1,2\n,2020-01-03,2,3,1,2\n",
        );
        assert_eq!((file.bars.len(), file.skipped_rows), (1, 1));
    }

    #[test]
    fn symbol_prefix_filters_ticker_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            "long.csv",
            "Ticker,Date,Open,High,Low,Close\n\
             AAPL,2020-01-02,2,3,1,2\n\
             MSFT,2020-01-02,2,3,1,2\n\
             MSFT,2020-01-03,x,3,1,2\n\
             AAPL,2020-01-03,2,3,1,2\n",
        );
        let file = load_price_file(&with_symbol("msft", &path)).unwrap();
        assert_eq!(file.symbols, vec![Symbol::new("MSFT")]);
        assert_eq!(file.bars.len(), 1);
        assert_eq!(file.rows, 4);
        assert_eq!(file.skipped_rows, 1);
    }

    #[test]
    fn symbol_prefix_not_in_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            "long.csv",
            "Ticker,Date,Open,High,Low,Close\nAAPL,2020-01-02,2,3,1,2\nibm,2020-01-02,2,3,1,2\n",
        );
        let err = load_price_file(&with_symbol("TSLA", &path)).unwrap_err();
        assert!(matches!(err, PriceFileError::SymbolNotInFile { .. }));
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("TSLA"), "{message}");
        assert!(message.contains("AAPL, IBM"), "{message}");
    }

    // Adjusted close

    #[test]
    fn adjusted_close_scales_all_prices() {
        let (file, _) = load_text(
            "adj.csv",
            "Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,12,14,9,10,5,100\n",
        );
        let bar = &file.bars[0];
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close),
            (dec("6"), dec("7"), dec("4.5"), dec("5"))
        );
        assert_eq!(bar.volume, Some(dec("100")));
    }

    #[test]
    fn adjusted_close_aliases() {
        for name in ["adj_close", "AdjClose", "Adjusted Close", " adj close "] {
            let (file, _) = load_text(
                "adj.csv",
                &format!("date,open,high,low,close,{name}\n2020-01-02,4,4,2,2,1\n"),
            );
            assert_eq!(file.bars[0].close, dec("1"), "{name}");
            assert_eq!(file.bars[0].open, dec("2"), "{name}");
        }
    }

    #[test]
    fn adjusted_prices_round_half_even() {
        let (file, _) = load_text(
            "adj.csv",
            "date,open,high,low,close,adj close\n\
             2020-01-02,20.00000005,24,2,2,1\n\
             2020-01-03,20.00000015,24,2,2,1\n\
             2020-01-06,2,3,1,3,1\n",
        );
        assert_eq!(file.bars[0].open, dec("10.00000002"));
        assert_eq!(file.bars[1].open, dec("10.00000008"));
        assert_eq!(file.bars[2].high, dec("1"));
        assert_eq!(file.bars[2].open, dec("0.66666667"));
        assert_eq!(file.bars[2].low, dec("0.33333333"));
    }

    #[test]
    fn bad_adjusted_close_skips_row() {
        let (file, warnings) = load_text(
            "adj.csv",
            "date,open,high,low,close,adj close\n2020-01-02,2,3,1,2,null\n2020-01-03,2,3,1,2,2\n",
        );
        assert_eq!((file.bars.len(), file.skipped_rows), (1, 1));
        assert!(warnings[0].contains("adj close \"null\""), "{warnings:?}");
    }

    // Dates

    #[test]
    fn date_forms() {
        let cases = [
            ("2020-03-04", day(2020, 3, 4)),
            (" 2020-03-04 ", day(2020, 3, 4)),
            ("2020-03-04T09:30:00", at(2020, 3, 4, 9, 30, 0)),
            ("2020-03-04 09:30:00", at(2020, 3, 4, 9, 30, 0)),
            ("2020-03-04T09:30", at(2020, 3, 4, 9, 30, 0)),
            ("2020-03-04T09:30:00Z", at(2020, 3, 4, 9, 30, 0)),
            ("2020-03-04 09:30:00+00:00", at(2020, 3, 4, 9, 30, 0)),
            ("2020-03-04T09:30:00-05:00", at(2020, 3, 4, 14, 30, 0)),
            ("2020-03-04T01:30:00+0200", at(2020, 3, 3, 23, 30, 0)),
            (
                "2020-03-04T09:30:00.250Z",
                at(2020, 3, 4, 9, 30, 0) + chrono::TimeDelta::milliseconds(250),
            ),
            ("3/4/2020", day(2020, 3, 4)),
            ("03/04/2020", day(2020, 3, 4)),
            ("12/31/2019 9:30", at(2019, 12, 31, 9, 30, 0)),
            ("12/31/2019 16:00:05", at(2019, 12, 31, 16, 0, 5)),
            ("4.3.2020", day(2020, 3, 4)),
            ("31.12.2019 09:30", at(2019, 12, 31, 9, 30, 0)),
            ("31.12.2019 09:30:15", at(2019, 12, 31, 9, 30, 15)),
            (
                "31.12.2019 09:30:15.500",
                at(2019, 12, 31, 9, 30, 15) + chrono::TimeDelta::milliseconds(500),
            ),
            ("1583280000", day(2020, 3, 4)),
            ("0", day(1970, 1, 1)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_time(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn bad_dates_are_rejected() {
        for text in [
            "",
            "yesterday",
            "2020-02-30",
            "2020-13-01",
            "2020-1-5",
            "2020-03-04X09:30",
            "2020-03-04T25:00",
            "2020-03-04T09:30+99:00",
            "13/45/2020",
            "1/2/20",
            "1.2.20",
            "1.2.3.2020",
            "1583280000.5",
            "1583280000000",
            "2020/03/04",
            "é020-03-04",
            "2020-03-0é",
        ] {
            assert_eq!(parse_time(text), None, "{text}");
        }
    }

    #[test]
    fn rows_in_any_order_are_sorted() {
        let (file, _) = load_text(
            "x.csv",
            &format!("{HEADER}2020-01-06,1,2,1,2,1\n2020-01-02,1,2,1,2,1\n2020-01-03,1,2,1,2,1\n"),
        );
        let times: Vec<_> = file.bars.iter().map(|b| b.time).collect();
        assert_eq!(
            times,
            vec![day(2020, 1, 2), day(2020, 1, 3), day(2020, 1, 6)]
        );
    }

    #[test]
    fn mixed_date_forms_in_one_file() {
        let (file, _) = load_text(
            "x.csv",
            &format!("{HEADER}1/2/2020,1,2,1,2,1\n3.1.2020,1,2,1,2,1\n1578268800,1,2,1,2,1\n"),
        );
        let times: Vec<_> = file.bars.iter().map(|b| b.time).collect();
        assert_eq!(
            times,
            vec![day(2020, 1, 2), day(2020, 1, 3), day(2020, 1, 6)]
        );
    }

    // Prices

    #[test]
    fn decimal_forms() {
        assert_eq!(parse_decimal("4006500.0"), Some(dec("4006500")));
        assert_eq!(parse_decimal("1e3"), Some(dec("1000")));
        assert_eq!(parse_decimal("1.5E+2"), Some(dec("150")));
        assert_eq!(parse_decimal("2.5e-4"), Some(dec("0.00025")));
        assert_eq!(parse_decimal(" 118.624741 "), Some(dec("118.624741")));
        for text in ["", "null", "NaN", "inf", "1,5", "abc", "1e"] {
            assert_eq!(parse_decimal(text), None, "{text}");
        }
    }

    #[test]
    fn scientific_prices_in_a_file() {
        let (file, _) = load_text(
            "x.csv",
            &format!("{HEADER}2020-01-02,1e3,1.1E3,9.5e2,1e3,2e6\n"),
        );
        let bar = &file.bars[0];
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close, bar.volume),
            (
                dec("1000"),
                dec("1100"),
                dec("950"),
                dec("1000"),
                Some(dec("2000000"))
            )
        );
    }

    #[test]
    fn bad_volume_is_dropped_not_skipped() {
        let (file, _) = load_text(
            "x.csv",
            &format!("{HEADER}2020-01-02,1,2,1,2,null\n2020-01-03,1,2,1,2,-5\n"),
        );
        assert_eq!(file.skipped_rows, 0);
        assert!(file.bars.iter().all(|b| b.volume.is_none()));
    }

    // Skipped rows

    #[test]
    fn bad_rows_skipped_with_one_warning() {
        let (file, warnings) = load_text(
            "bad.csv",
            &format!(
                "{HEADER}\
                 2020-01-02,1,2,1,2,1\n\
                 2020-01-03,null,null,null,null,null\n\
                 2020-01-06,,2,1,2,1\n\
                 2020-01-07,1,abc,1,2,1\n\
                 2020-01-08,1,2,0,2,1\n\
                 2020-01-09,1,2,1,-2,1\n\
                 not-a-date,1,2,1,2,1\n\
                 2020-01-10,1,2\n\
                 2020-01-13,1,2,1,2,1\n"
            ),
        );
        assert_eq!(file.rows, 9);
        assert_eq!(file.skipped_rows, 7);
        assert_eq!(file.bars.len(), 2);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert!(warning.starts_with("WARN"), "{warning}");
        assert!(warning.contains("bad.csv"), "{warning}");
        assert!(warning.contains("skipped 7 of 9"), "{warning}");
        for expected in [
            "line 3 (2020-01-03): open \"null\" is not a number",
            "line 4 (2020-01-06): open is empty",
            "line 5 (2020-01-07): high \"abc\" is not a number",
            "line 6 (2020-01-08): low \"0\" is not positive",
            "line 7 (2020-01-09): close \"-2\" is not positive",
            "and 2 more",
        ] {
            assert!(
                warning.contains(expected),
                "{expected} missing from {warning}"
            );
        }
        assert!(!warning.contains("line 8"), "{warning}");
    }

    #[test]
    fn bad_date_and_short_row_reasons() {
        let (file, warnings) = load_text(
            "bad.csv",
            &format!(
                "{HEADER}2020-01-02,1,2,1,2,1\nnot-a-date,1,2,1,2,1\n,1,2,1,2,1\n2020-01-10,1,2\n"
            ),
        );
        assert_eq!(file.skipped_rows, 3);
        let warning = &warnings[0];
        assert!(
            warning.contains("line 3 (not-a-date): date \"not-a-date\" has an unknown format"),
            "{warning}"
        );
        assert!(warning.contains("line 4: date is empty"), "{warning}");
        assert!(
            warning.contains("line 5 (2020-01-10): has 3 fields, the header has 6"),
            "{warning}"
        );
    }

    #[test]
    fn clean_file_logs_nothing() {
        let (file, warnings) = load_text("x.csv", &format!("{HEADER}2020-01-02,1,2,1,2,1\n"));
        assert_eq!(
            (file.skipped_rows, file.widened_rows, file.possible_splits),
            (0, 0, 0)
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    // Widened rows

    #[test]
    fn widening_covers_open_and_close() {
        let (file, warnings) = load_text(
            "wide.csv",
            &format!(
                "{HEADER}\
                 2020-01-02,0.9,2,1,1.5,1\n\
                 2020-01-03,1.5,2,1,2.1,1\n\
                 2020-01-06,1.5,2,1,1.8,1\n\
                 2020-01-07,2.2,1.8,1.9,2.2,1\n"
            ),
        );
        assert_eq!(file.widened_rows, 3);
        assert_eq!(file.skipped_rows, 0);
        let b = &file.bars;
        assert_eq!((b[0].low, b[0].high), (dec("0.9"), dec("2")));
        assert_eq!((b[1].low, b[1].high), (dec("1"), dec("2.1")));
        assert_eq!((b[2].low, b[2].high), (dec("1"), dec("2")));
        assert_eq!((b[3].low, b[3].high), (dec("1.9"), dec("2.2")));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert!(warning.contains("wide.csv"), "{warning}");
        assert!(warning.contains("3 rows"), "{warning}");
        assert!(
            warning.contains("line 2 (2020-01-02); line 3 (2020-01-03); line 5 (2020-01-07)"),
            "{warning}"
        );
    }

    // Possible splits

    #[test]
    fn large_moves_count_as_splits() {
        let (file, warnings) = load_text(
            "split.csv",
            &format!(
                "{HEADER}\
                 2020-01-02,100,100,100,100,1\n\
                 2020-01-03,50,50,50,50,1\n\
                 2020-01-06,70,70,70,70,1\n\
                 2020-01-07,42,42,42,42,1\n\
                 2020-01-08,58.8,58.8,58.8,58.8,1\n\
                 2020-01-09,82.33,82.33,82.33,82.33,1\n"
            ),
        );
        // -50% and +40.02% count; +40% and -40% exactly do not.
        assert_eq!(file.possible_splits, 2);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("SPLIT"), "{warnings:?}");
        assert!(warnings[0].contains("-50.0%"), "{warnings:?}");
        assert!(
            warnings[0].contains("from 2020-01-02 to 2020-01-03"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("split.csv, line 3"), "{warnings:?}");
        assert!(warnings[1].contains("+40.0%"), "{warnings:?}");
        assert!(warnings[1].contains("2020-01-09"), "{warnings:?}");
    }

    #[test]
    fn splits_are_tracked_per_symbol() {
        let (file, warnings) = load_text(
            "long.csv",
            "ticker,date,open,high,low,close\n\
             AAA,2020-01-02,10,10,10,10\n\
             BBB,2020-01-02,100,100,100,100\n\
             AAA,2020-01-03,11,11,11,11\n\
             BBB,2020-01-03,101,101,101,101\n\
             BBB,2020-01-06,300,300,300,300\n",
        );
        assert_eq!(file.possible_splits, 1);
        assert!(
            warnings[0].contains("BBB close moved +197.0%"),
            "{warnings:?}"
        );
    }

    // File shape tolerance

    #[test]
    fn crlf_bom_and_no_trailing_newline() {
        let mut content = b"\xEF\xBB\xBF".to_vec();
        content.extend_from_slice(
            b"Date,Open,High,Low,Close\r\n2020-01-02,1,2,1,2\r\n\r\n2020-01-03,1,2,1,2.5",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "crlf.csv", &content);
        let file = load_price_file(&plain(&path)).unwrap();
        assert_eq!((file.rows, file.bars.len(), file.skipped_rows), (2, 2, 0));
        assert_eq!(file.bars[1].close, dec("2.5"));
    }

    #[test]
    fn sha256_is_hex_of_file_bytes() {
        let content = format!("{HEADER}2020-01-02,1,2,1,2,1\n");
        let (file, _) = load_text("x.csv", &content);
        let expected: String = Sha256::digest(content.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(file.sha256, expected);
        assert_eq!(file.sha256.len(), 64);
    }

    // Errors

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.csv");
        let err = load_price_file(&plain(&path)).unwrap_err();
        assert!(matches!(err, PriceFileError::Missing { .. }));
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("check the path"), "{message}");
    }

    #[test]
    fn directory_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_price_file(&plain(dir.path())).unwrap_err();
        assert!(matches!(err, PriceFileError::Unreadable { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        for content in ["", "\u{feff}", " \n\r\n"] {
            let (err, message, path) = load_error("empty.csv", content);
            assert!(matches!(err, PriceFileError::Empty { .. }), "{err:?}");
            assert!(message.contains(&path), "{message}");
            assert!(message.contains("header row"), "{message}");
        }
    }

    #[test]
    fn header_only_is_an_error() {
        let (err, message, path) = load_error("head.csv", "Date,Open,High,Low,Close\r\n");
        assert!(matches!(err, PriceFileError::NoDataRows { .. }), "{err:?}");
        assert!(message.contains(&path), "{message}");
        assert!(message.contains("\"Date\", \"Open\""), "{message}");
    }

    #[test]
    fn no_date_column_is_an_error() {
        let (err, message, path) = load_error("nodate.csv", "day,open,high,low,close\nx,1,2,1,2\n");
        assert!(
            matches!(err, PriceFileError::NoDateColumn { .. }),
            "{err:?}"
        );
        assert!(message.contains(&format!("{path}, line 1")), "{message}");
        assert!(
            message.contains("[\"day\", \"open\", \"high\", \"low\", \"close\"]"),
            "{message}"
        );
        assert!(
            message.contains("add a header row with date, open, high, low, close"),
            "{message}"
        );
    }

    #[test]
    fn headerless_file_is_an_error() {
        let (err, message, _) = load_error("raw.csv", "2020-01-02,1,2,1,2\n");
        assert!(
            matches!(err, PriceFileError::NoDateColumn { .. }),
            "{err:?}"
        );
        assert!(message.contains("\"2020-01-02\""), "{message}");
    }

    #[test]
    fn missing_price_columns_are_named() {
        let (err, message, path) =
            load_error("nohl.csv", "Date,Open,Close,Volume\n2020-01-02,1,2,3\n");
        assert!(
            matches!(err, PriceFileError::MissingPriceColumns { .. }),
            "{err:?}"
        );
        assert!(message.contains(&format!("{path}, line 1")), "{message}");
        assert!(message.contains("missing high, low columns"), "{message}");
        assert!(
            message.contains("[\"Date\", \"Open\", \"Close\", \"Volume\"]"),
            "{message}"
        );
    }

    #[test]
    fn no_valid_row_is_an_error() {
        let (err, message, path) = load_error(
            "allbad.csv",
            "date,open,high,low,close\n2020-01-02,null,null,null,null\n2020-01-03,1,2,1,0\n",
        );
        assert!(
            matches!(err, PriceFileError::NoValidRows { rows: 2, .. }),
            "{err:?}"
        );
        assert!(message.contains(&path), "{message}");
        assert!(
            message.contains("line 2 (2020-01-02): open \"null\" is not a number"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_in_file_names_lines() {
        let (err, message, path) = load_error(
            "dup.csv",
            format!("{HEADER}2020-01-02,1,2,1,2,1\n2020-01-03,1,2,1,2,1\n2020-01-02T00:00:00Z,1,2,1,2,1\n"),
        );
        assert!(
            matches!(
                err,
                PriceFileError::DuplicateBar {
                    first_line: 2,
                    second_line: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(message.contains(&path), "{message}");
        assert!(message.contains("lines 2 and 4"), "{message}");
        assert!(
            message.contains("DUP has two bars at 2020-01-02"),
            "{message}"
        );
    }

    #[test]
    fn long_format_duplicate_per_symbol() {
        let content =
            "ticker,date,open,high,low,close\nA,2020-01-02,1,2,1,2\nB,2020-01-02,1,2,1,2\n";
        let (file, _) = load_text("long.csv", content);
        assert_eq!(file.bars.len(), 2);
        let (_, message, _) =
            load_error("long.csv", format!("{content}a,2020-01-02 00:00,1,2,1,2\n"));
        assert!(message.contains("A has two bars"), "{message}");
        assert!(message.contains("lines 2 and 4"), "{message}");
    }

    #[test]
    fn malformed_record_names_its_line() {
        let mut content =
            format!("{HEADER}2020-01-02,1,2,1,2,1\n2020-01-03,1,2,1,2,1\n").into_bytes();
        content.extend_from_slice(b"2020-01-06,1,2,1,\xFF\xFE,1\n");
        let (err, message, path) = load_error("bin.csv", content);
        assert!(
            matches!(err, PriceFileError::Csv { line: 4, .. }),
            "{err:?}"
        );
        assert!(message.contains(&format!("{path}, line 4")), "{message}");
        assert!(message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn unclosed_quote_names_its_line() {
        let (err, message, path) = load_error(
            "quote.csv",
            format!("{HEADER}2020-01-02,1,2,1,2,1\n2020-01-03,\"1,2,1,2,1\n2020-01-06,1,2,1,2,1\n"),
        );
        assert!(
            matches!(err, PriceFileError::UnclosedQuote { line: 3, .. }),
            "{err:?}"
        );
        assert!(message.contains(&format!("{path}, line 3")), "{message}");
        assert!(message.contains("balance the quotes"), "{message}");
    }

    #[test]
    fn quoted_fields_without_line_breaks_load() {
        let (file, _) = load_text(
            "quoted.csv",
            "\"Date\",\"Open\",\"High\",\"Low\",\"Close\"\n\"2020-01-02\",\"1\",\"2\",\"1\",\"2\"\n",
        );
        assert_eq!(file.bars.len(), 1);
        assert_eq!(file.bars[0].high, dec("2"));
    }

    #[test]
    fn malformed_header_names_line_1() {
        let (err, message, path) = load_error("bin.csv", b"Date,Op\xFFen\n2020-01-02,1\n");
        assert!(
            matches!(err, PriceFileError::Csv { line: 1, .. }),
            "{err:?}"
        );
        assert!(message.contains(&format!("{path}, line 1")), "{message}");
    }

    // load_replay

    #[test]
    fn replay_merges_files_into_steps() {
        let dir = tempfile::tempdir().unwrap();
        let spy = write_file(
            &dir,
            "spy.csv",
            format!("{HEADER}2020-01-03,1,2,1,2,1\n2020-01-02,1,2,1,2,1\n"),
        );
        let btc = write_file(
            &dir,
            "BTC-USD.csv",
            format!("{HEADER}2020-01-04,1,2,1,2,1\n2020-01-03,1,2,1,2,1\n2020-01-02,1,2,1,2,1\n"),
        );
        let aapl = write_file(&dir, "data.csv", format!("{HEADER}2020-01-02,1,2,1,2,1\n"));

        let data = load_replay(&[plain(&spy), plain(&btc), with_symbol("aapl", &aapl)]).unwrap();

        assert_eq!(data.bar_count, 6);
        assert_eq!(data.files.len(), 3);
        assert!(data.files.iter().all(|f| f.bars.is_empty()));
        assert_eq!(data.files[1].symbols, vec![Symbol::new("BTC-USD")]);
        assert_eq!(data.files[1].rows, 3);

        let shape: Vec<(DateTime<Utc>, Vec<&str>)> = data
            .steps
            .iter()
            .map(|(t, bars)| (*t, bars.iter().map(|b| b.symbol.as_str()).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (day(2020, 1, 2), vec!["AAPL", "BTC-USD", "SPY"]),
                (day(2020, 1, 3), vec!["BTC-USD", "SPY"]),
                (day(2020, 1, 4), vec!["BTC-USD"]),
            ]
        );
        assert!(data
            .steps
            .iter()
            .all(|(t, bars)| bars.iter().all(|b| b.time == *t)));
    }

    #[test]
    fn replay_duplicate_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_file(
            &dir,
            "a.csv",
            format!("{HEADER}2020-01-02,1,2,1,2,1\n2020-01-03,1,2,1,2,1\n"),
        );
        let b = write_file(
            &dir,
            "b.csv",
            format!("{HEADER}2020-01-06,1,2,1,2,1\n2020-01-03,1,2,1,2,1\n"),
        );
        let err = load_replay(&[with_symbol("SPY", &a), with_symbol("SPY", &b)]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("SPY has two bars at 2020-01-03"),
            "{message}"
        );
        assert!(
            message.contains(&format!("{} line 3", a.display())),
            "{message}"
        );
        assert!(
            message.contains(&format!("{} line 3", b.display())),
            "{message}"
        );
        // Same dates under different symbols are fine.
        let data = load_replay(&[plain(&a), plain(&b)]).unwrap();
        assert_eq!(data.steps.len(), 3);
        assert_eq!(data.steps[1].1.len(), 2);
    }

    #[test]
    fn replay_stops_at_first_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_file(&dir, "a.csv", format!("{HEADER}2020-01-02,1,2,1,2,1\n"));
        let err = load_replay(&[plain(&a), plain(&dir.path().join("missing.csv"))]).unwrap_err();
        assert!(matches!(err, PriceFileError::Missing { .. }), "{err:?}");
    }

    #[test]
    fn replay_without_inputs_is_empty() {
        let data = load_replay(&[]).unwrap();
        assert!(data.files.is_empty());
        assert!(data.steps.is_empty());
        assert_eq!(data.bar_count, 0);
    }

    #[test]
    fn twelve_thousand_rows_load() {
        let mut content = String::from("Ticker,Date,Open,High,Low,Close,Volume,Adj Close\n");
        let start = day(2000, 1, 1);
        for i in 0..12_000i64 {
            let date = (start + chrono::TimeDelta::days(i / 4)).format("%Y-%m-%d");
            let ticker = ["AAA", "BBB", "CCC", "DDD"][(i % 4) as usize];
            let _ = writeln!(content, "{ticker},{date},10.5,11.25,10.0,11.0,1000,5.5");
        }
        let started = std::time::Instant::now();
        let (file, _) = load_text("big.csv", &content);
        assert_eq!(file.bars.len(), 12_000);
        assert_eq!(file.bars[0].close, dec("5.5"));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    // Real files

    fn shared_data() -> Option<PathBuf> {
        let dir = std::env::var_os("NEOLIGHT_SHARED_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
            });
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!(
                "skipping: shared data directory {} not found (set NEOLIGHT_SHARED_DATA)",
                dir.display()
            );
            None
        }
    }

    fn real_file(relative: &str) -> Option<PathBuf> {
        let path = shared_data()?.join(relative);
        if path.is_file() {
            Some(path)
        } else {
            eprintln!("skipping: {} not found", path.display());
            None
        }
    }

    fn near(value: Decimal, expected: &str) -> bool {
        (value - dec(expected)).abs() <= dec("0.000001")
    }

    #[test]
    fn real_mplfinance_spy() {
        let Some(path) = real_file("prices/mplfinance/yahoofinance-SPY-20080101-20180101.csv")
        else {
            return;
        };
        let (file, warnings) = capture_warnings(|| load_price_file(&with_symbol("SPY", &path)));
        let file = file.unwrap();
        assert_eq!(file.rows, 2519);
        assert_eq!(file.bars.len(), 2519);
        assert_eq!(file.skipped_rows, 0);
        assert!(file.widened_rows >= 2, "{}", file.widened_rows);
        assert_eq!(file.symbols, vec![Symbol::new("SPY")]);
        let (first, last) = (&file.bars[0], file.bars.last().unwrap());
        assert_eq!(first.time, day(2007, 12, 31));
        assert_eq!(last.time, day(2017, 12, 29));
        assert!(near(first.close, "118.624741"), "{}", first.close);
        // 147.100006 * 118.624741 / 146.210007
        assert_eq!(first.open, dec("119.34682496"));
        assert_eq!(first.volume, Some(dec("108126800")));
        assert_eq!(last.close, dec("266.859985"));
        let widened = warnings
            .iter()
            .find(|w| w.contains("widened"))
            .expect("widened warning");
        assert!(widened.contains("2015-03-05"), "{widened}");
        assert!(widened.contains("2015-03-30"), "{widened}");
        assert_eq!(file.sha256.len(), 64);
    }

    #[test]
    fn real_mplfinance_aapl() {
        let Some(path) = real_file("prices/mplfinance/yahoofinance-AAPL-20040819-20180120.csv")
        else {
            return;
        };
        let file = load_price_file(&plain(&path)).unwrap();
        assert_eq!(file.rows, 3379);
        assert_eq!(file.bars.len(), 3379);
        assert_eq!(
            file.symbols,
            vec![Symbol::new("YAHOOFINANCE-AAPL-20040819-20180120")]
        );
        assert_eq!(file.bars[0].time, day(2004, 8, 19));
        assert_eq!(file.bars.last().unwrap().time, day(2018, 1, 19));
        assert!(
            near(file.bars[0].close, "1.966391"),
            "{}",
            file.bars[0].close
        );
        // The adjusted close has no one-bar move over 40%.
        assert_eq!(file.possible_splits, 0);
    }

    #[test]
    fn real_bokeh_stocks_long_format() {
        let Some(path) = real_file("prices/bokeh-sampledata/stocks.csv") else {
            return;
        };
        let file = load_price_file(&plain(&path)).unwrap();
        assert_eq!(file.rows, 12154);
        // The AAPL adjusted close falls 52% from 2000-09-28 to 2000-09-29 in this file.
        assert_eq!(file.possible_splits, 1);
        assert_eq!(file.bars.len() + file.skipped_rows, 12154);
        let names: Vec<&str> = file.symbols.iter().map(Symbol::as_str).collect();
        assert_eq!(names, vec!["AAPL", "FB", "GOOG", "IBM", "MSFT"]);
        let first_aapl = file
            .bars
            .iter()
            .find(|b| b.symbol.as_str() == "AAPL")
            .unwrap();
        assert_eq!(first_aapl.time, day(2000, 3, 1));
        assert!(
            near(first_aapl.close, "4.186662803811"),
            "{}",
            first_aapl.close
        );

        let msft = load_price_file(&with_symbol("MSFT", &path)).unwrap();
        assert_eq!(msft.rows, 12154);
        assert_eq!(msft.bars.len(), 3270);
        assert_eq!(msft.symbols, vec![Symbol::new("MSFT")]);
        assert_eq!(msft.bars.last().unwrap().time, day(2013, 3, 1));
        assert!(near(msft.bars.last().unwrap().close, "24.684342419163"));

        let err = load_price_file(&with_symbol("TSLA", &path)).unwrap_err();
        assert!(
            err.to_string().contains("AAPL, FB, GOOG, IBM, MSFT"),
            "{err}"
        );
    }

    #[test]
    fn real_pandas_ta_spy_d() {
        let Some(path) = real_file("prices/pandas-ta/SPY_D.csv") else {
            return;
        };
        let file = load_price_file(&plain(&path)).unwrap();
        assert_eq!(file.rows, 5241);
        assert_eq!(file.bars.len(), 5241);
        assert_eq!(file.symbols, vec![Symbol::new("SPY_D")]);
        let (first, last) = (&file.bars[0], file.bars.last().unwrap());
        assert_eq!(first.time, day(1999, 11, 1));
        assert_eq!(first.volume, Some(dec("4006500")));
        assert_eq!(first.close, dec("135.5625"));
        assert_eq!(last.time, day(2020, 8, 28));
        assert_eq!(last.close, dec("350.58"));
    }

    #[test]
    fn real_btc_usd_skips_null_rows() {
        let Some(path) = real_file("prices/crypto/yahoo-btc-usd/BTC-USD.csv") else {
            return;
        };
        let (file, warnings) = capture_warnings(|| load_price_file(&plain(&path)));
        let file = file.unwrap();
        assert_eq!(file.rows, 2534);
        assert_eq!(file.skipped_rows, 4);
        assert_eq!(file.bars.len(), 2530);
        assert_eq!(file.symbols, vec![Symbol::new("BTC-USD")]);
        assert_eq!(file.bars[0].time, day(2014, 9, 17));
        assert_eq!(file.bars.last().unwrap().time, day(2021, 8, 24));
        let skipped: Vec<&String> = warnings.iter().filter(|w| w.contains("skipped")).collect();
        assert_eq!(skipped.len(), 1, "{warnings:?}");
        for date in ["2020-04-17", "2020-10-09", "2020-10-12", "2020-10-13"] {
            assert!(
                skipped[0].contains(date),
                "{date} missing from {}",
                skipped[0]
            );
        }
        assert!(skipped[0].contains("BTC-USD.csv"), "{}", skipped[0]);
        assert!(skipped[0].contains("line 2041"), "{}", skipped[0]);
    }

    #[test]
    fn real_replay_merge_and_overlap() {
        let (Some(spy), Some(btc)) = (
            real_file("prices/mplfinance/yahoofinance-SPY-20080101-20180101.csv"),
            real_file("prices/crypto/yahoo-btc-usd/BTC-USD.csv"),
        ) else {
            return;
        };
        let data = load_replay(&[with_symbol("SPY", &spy), plain(&btc)]).unwrap();
        assert_eq!(data.bar_count, 2519 + 2530);
        assert!(data.steps.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(data
            .steps
            .iter()
            .any(|(_, bars)| bars.len() == 2 && bars[0].symbol.as_str() == "BTC-USD"));

        let err = load_replay(&[with_symbol("SPY", &spy), with_symbol("SPY", &spy)]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("price file {} is given twice", spy.display())),
            "{message}"
        );
        assert!(message.contains("SPY at 2007-12-31, line 2"), "{message}");
    }
}
