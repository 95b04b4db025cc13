//! The append-only CSV mirrors: `state/fills.csv` (also the fill journal) and
//! `state/pnl_history.csv`.
//!
//! Every row is written with one `write` call, so a killed process leaves at most one torn last
//! line, which [`repair_torn_tail`] cuts at the next start.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use neolight_messages::{Fill, PortfolioView, Side, Symbol};
use rust_decimal::Decimal;
use tracing::warn;

pub const FILLS_HEADER: &str = "timestamp,client_order_id,symbol,side,qty,price,fee";
pub const PNL_HEADER: &str = "timestamp,equity,cash,positions_value,realized_pnl,unrealized_pnl,drawdown";

pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Cuts a last line that has no newline, and writes `header` into an empty file.
/// Returns the file's contents after the repair.
pub fn repair_torn_tail(path: &Path, header: &str) -> std::io::Result<String> {
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    if !text.is_empty() && !text.ends_with('\n') {
        let keep = text.rfind('\n').map_or(0, |i| i + 1);
        warn!(path = %path.display(), cut_bytes = text.len() - keep, "cut a torn last line left by an interrupted write");
        text.truncate(keep);
        file.set_len(keep as u64)?;
    }
    if text.is_empty() {
        file.seek(SeekFrom::Start(0))?;
        let line = format!("{header}\n");
        file.write_all(line.as_bytes())?;
        file.sync_all()?;
        text = line;
    }
    Ok(text)
}

/// Error in a row of one of the mirror files.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {problem}")]
pub struct RowError {
    pub path: PathBuf,
    pub line: usize,
    pub problem: String,
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// Parses the rows of a fills journal (header already checked by the caller).
pub fn parse_fills(path: &Path, text: &str) -> Result<Vec<Fill>, RowError> {
    let mut fills = Vec::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |problem: String| RowError { path: path.to_path_buf(), line: index + 1, problem };
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != 7 {
            return Err(bad(format!("expected 7 fields ({FILLS_HEADER}), found {}", cells.len())));
        }
        let decimal = |i: usize| Decimal::from_str(cells[i]).map_err(|_| bad(format!("invalid number {:?}", cells[i])));
        fills.push(Fill {
            timestamp: parse_time(cells[0]).ok_or_else(|| bad(format!("invalid timestamp {:?}", cells[0])))?,
            client_order_id: cells[1].to_string(),
            symbol: Symbol::new(cells[2]),
            side: Side::parse(cells[3]).ok_or_else(|| bad(format!("invalid side {:?}", cells[3])))?,
            qty: decimal(4)?,
            price: decimal(5)?,
            fee: decimal(6)?,
        });
    }
    Ok(fills)
}

pub fn fill_row(fill: &Fill) -> String {
    format!(
        "{},{},{},{},{},{},{}\n",
        format_time(fill.timestamp),
        fill.client_order_id,
        fill.symbol,
        fill.side,
        fill.qty.normalize(),
        fill.price.normalize(),
        fill.fee.normalize()
    )
}

pub fn pnl_row(view: &PortfolioView) -> String {
    format!(
        "{},{},{},{},{},{},{:.6}\n",
        format_time(view.time),
        view.equity.normalize(),
        view.cash.normalize(),
        view.positions_value.normalize(),
        view.realized_pnl.normalize(),
        view.unrealized_pnl.normalize(),
        view.drawdown
    )
}

/// Last timestamp in a PnL history, if any row exists.
pub fn last_pnl_time(path: &Path, text: &str) -> Result<Option<DateTime<Utc>>, RowError> {
    let Some((index, line)) = text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()).last() else {
        return Ok(None);
    };
    let cell = line.split(',').next().unwrap_or_default();
    parse_time(cell)
        .map(Some)
        .ok_or_else(|| RowError { path: path.to_path_buf(), line: index + 1, problem: format!("invalid timestamp {cell:?}") })
}

/// An append-only CSV file. Rows are buffered; `sync` writes them and fsyncs.
pub struct AppendFile {
    path: PathBuf,
    writer: BufWriter<File>,
    unflushed: bool,
}

impl AppendFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(AppendFile { path: path.to_path_buf(), writer: BufWriter::with_capacity(64 * 1024, file), unflushed: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffers one whole row; a full buffer is written before the row, never through it.
    pub fn push(&mut self, row: &str) -> std::io::Result<()> {
        self.writer.write_all(row.as_bytes())?;
        self.unflushed = true;
        Ok(())
    }

    /// Hands buffered rows to the OS without waiting for the disk.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.unflushed {
            self.writer.flush()?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// Writes buffered rows and waits until they are on disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        self.unflushed = false;
        self.writer.get_ref().sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn torn_tail_is_cut_and_rows_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fills.csv");
        std::fs::write(&path, format!("{FILLS_HEADER}\n2020-01-02T00:00:00Z,nl-a,SPY,buy,1.5,100.25,0.01\n2020-01-03T00:0")).unwrap();
        let text = repair_torn_tail(&path, FILLS_HEADER).unwrap();
        let fills = parse_fills(&path, &text).unwrap();
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].qty, dec!(1.5));
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("0.01\n"));
    }

    #[test]
    fn fill_row_round_trips_exactly() {
        let fill = Fill {
            timestamp: DateTime::from_timestamp(1_199_232_000, 0).unwrap(),
            client_order_id: "nl-1".into(),
            symbol: Symbol::new("SPY"),
            side: Side::Sell,
            qty: dec!(68.99855329),
            price: dec!(144.92999300),
            fee: dec!(0.99996),
        };
        let text = format!("{FILLS_HEADER}\n{}", fill_row(&fill));
        let parsed = parse_fills(Path::new("x"), &text).unwrap();
        assert_eq!(parsed, vec![fill]);
    }

    #[test]
    fn bad_row_names_file_and_line() {
        let text = format!("{FILLS_HEADER}\n2020-01-02T00:00:00Z,nl-a,SPY,hold,1,1,0\n");
        let err = parse_fills(Path::new("state/fills.csv"), &text).unwrap_err();
        assert_eq!(err.to_string(), "state/fills.csv:2: invalid side \"hold\"");
    }
}
