//! The sled ledger: order intents, fills and cancels in sequence order, snapshots that name the
//! last sequence they cover, and the time of the last durable step.

use std::path::Path;

use chrono::{DateTime, Utc};
use neolight_messages::{Fill, OrderRequest, PortfolioView, Quote, Symbol};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::portfolio::{Portfolio, Position};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerRecord {
    Intent { time: DateTime<Utc>, order: OrderRequest },
    Fill { fill: Fill },
    Cancel { time: DateTime<Utc>, client_order_id: String, reason: String },
}

/// Cash and positions after the record with sequence `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub cash: Decimal,
    pub equity: Decimal,
    pub realized_pnl: Decimal,
    pub fees: Decimal,
    /// (symbol, quantity)
    pub positions: Vec<(Symbol, Decimal)>,
}

impl Snapshot {
    pub fn of(view: &PortfolioView, seq: u64) -> Self {
        Snapshot {
            seq,
            time: view.time,
            cash: view.cash,
            equity: view.equity,
            realized_pnl: view.realized_pnl,
            fees: view.fees,
            positions: view.positions.iter().map(|p| (p.symbol.clone(), p.qty)).collect(),
        }
    }

    /// First difference in cash or positions from `portfolio`, if any.
    pub fn difference(&self, portfolio: &Portfolio) -> Option<String> {
        let mut expected = Portfolio::new(portfolio.initial_cash);
        expected.cash = self.cash;
        for (symbol, qty) in &self.positions {
            expected.positions.insert(
                symbol.clone(),
                Position { qty: *qty, cost_basis: Decimal::ZERO, last_price: Decimal::ZERO, last_price_time: self.time },
            );
        }
        expected.difference(portfolio)
    }
}

/// Everything read back from the ledger at start.
#[derive(Debug, Default)]
pub struct LedgerContents {
    pub records: Vec<(u64, LedgerRecord)>,
    pub last_snapshot: Option<Snapshot>,
    pub last_step_time: Option<DateTime<Utc>>,
}

pub struct Ledger {
    db: sled::Db,
    records: sled::Tree,
    quotes: sled::Tree,
    snapshots: sled::Tree,
    meta: sled::Tree,
    next_seq: u64,
}

const LAST_STEP_TIME: &[u8] = b"last_step_time";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("sled panicked while opening the store")]
    Panicked,
    #[error("ledger record {seq} is not valid JSON: {source}")]
    Decode { seq: u64, source: serde_json::Error },
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let db = sled::Config::new().path(path).flush_every_ms(Some(500)).open()?;
        let records = db.open_tree("ledger")?;
        let snapshots = db.open_tree("snapshots")?;
        let meta = db.open_tree("meta")?;
        let quotes = db.open_tree("quotes")?;
        let next_seq = match records.last()? {
            Some((key, _)) => u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8])) + 1,
            None => 1,
        };
        Ok(Ledger { db, records, quotes, snapshots, meta, next_seq })
    }

    pub fn read_all(&self) -> Result<LedgerContents, LedgerError> {
        let mut contents = LedgerContents::default();
        for entry in self.records.iter() {
            let (key, value) = entry?;
            let seq = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            let record = serde_json::from_slice(&value).map_err(|source| LedgerError::Decode { seq, source })?;
            contents.records.push((seq, record));
        }
        if let Some((key, value)) = self.snapshots.last()? {
            let seq = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            contents.last_snapshot =
                Some(serde_json::from_slice(&value).map_err(|source| LedgerError::Decode { seq, source })?);
        }
        if let Some(value) = self.meta.get(LAST_STEP_TIME)? {
            contents.last_step_time = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map(|t| t.with_timezone(&Utc));
        }
        Ok(contents)
    }

    /// Appends records without flushing; returns the sequence of the last one.
    pub fn append(&mut self, records: &[LedgerRecord]) -> Result<u64, LedgerError> {
        for record in records {
            let value = serde_json::to_vec(record).expect("ledger records serialize");
            self.records.insert(self.next_seq.to_be_bytes(), value)?;
            self.next_seq += 1;
        }
        Ok(self.next_seq - 1)
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), LedgerError> {
        let value = serde_json::to_vec(snapshot).expect("snapshots serialize");
        self.snapshots.insert(snapshot.seq.to_be_bytes(), value)?;
        Ok(())
    }

    pub fn set_last_step_time(&self, time: DateTime<Utc>) -> Result<(), LedgerError> {
        self.meta.insert(LAST_STEP_TIME, time.to_rfc3339().as_bytes())?;
        Ok(())
    }

    /// Stores the last quote per symbol; sled's background flush makes it durable within 500 ms.
    pub fn put_quotes(&self, quotes: &[Quote]) -> Result<(), LedgerError> {
        for quote in quotes {
            let value = serde_json::to_vec(quote).expect("quotes serialize");
            self.quotes.insert(quote.symbol.as_str().as_bytes(), value)?;
        }
        Ok(())
    }

    /// Reads the persisted quote cache; entries that do not decode are skipped.
    pub fn read_quotes(&self) -> Result<Vec<Quote>, LedgerError> {
        let mut out = Vec::new();
        for entry in self.quotes.iter() {
            let (_, value) = entry?;
            if let Ok(quote) = serde_json::from_slice::<Quote>(&value) {
                out.push(quote);
            }
        }
        Ok(out)
    }

    /// Makes every write so far durable; returns the bytes sled wrote.
    pub fn flush(&self) -> Result<usize, LedgerError> {
        Ok(self.db.flush()?)
    }
}
