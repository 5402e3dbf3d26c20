//! A model of the CQL semantics the Scylla store relies on, so the shared
//! conformance suite can run the store's real logic (plans, transitions,
//! fan-out reads, merging, aggregation) without a server. It interprets the
//! statements' own CQL text against the tables of `schema.cql`:
//!
//! * every cell carries its write timestamp; a write wins when its timestamp
//!   is higher (on a tie, the larger value), as in Cassandra and Scylla;
//! * a row deletion at timestamp T shadows cells written at T or before;
//! * `INSERT` writes a row marker, so the row lives without regular cells;
//!   `UPDATE` does not;
//! * static columns belong to the partition; a partition with live statics
//!   and no live rows reads as one row of statics when the query does not
//!   restrict clustering columns;
//! * rows come back in clustering order; `=`, `>`, `>=`, `<`, tuple `>` and
//!   `LIMIT` restrict them.
//!
//! It is a test double of the server, not of the store: it never stands in
//! for the live suite, which runs when `LINKGRAPH_SCYLLA_URI` is set.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use scylla::value::CqlValue;

use super::plan::{self, Stmt, Write};
use super::{CqlExecutor, CqlRow, SCHEMA};
use crate::StoreError;

/// A comparable form of the values the schema uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum K {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

fn k(v: &CqlValue) -> K {
    match v {
        CqlValue::Int(i) => K::Int(i64::from(*i)),
        CqlValue::BigInt(i) => K::Int(*i),
        CqlValue::Text(s) => K::Text(s.clone()),
        CqlValue::Blob(b) => K::Bytes(b.clone()),
        // Ordered as Scylla compares doubles' cells on a timestamp tie
        // (by their bytes); the schema never keys on a double.
        CqlValue::Double(f) => K::Bytes(f.to_be_bytes().to_vec()),
        other => panic!("the model does not know {other:?}"),
    }
}

#[derive(Debug, Clone)]
struct Cell {
    v: CqlValue,
    ts: i64,
}

fn put(cells: &mut HashMap<String, Cell>, col: &str, v: CqlValue, ts: i64) {
    match cells.get(col) {
        Some(c) if c.ts > ts || (c.ts == ts && k(&c.v) >= k(&v)) => {}
        _ => {
            cells.insert(col.to_owned(), Cell { v, ts });
        }
    }
}

#[derive(Debug, Default)]
struct Row {
    cells: HashMap<String, Cell>,
    marker: Option<i64>,
    tombstone: Option<i64>,
}

impl Row {
    fn live_cell(&self, col: &str) -> Option<&CqlValue> {
        let c = self.cells.get(col)?;
        (self.tombstone.is_none_or(|t| c.ts > t)).then_some(&c.v)
    }
    fn is_live(&self) -> bool {
        let shadowed = |ts: i64| self.tombstone.is_some_and(|t| ts <= t);
        self.marker.is_some_and(|m| !shadowed(m)) || self.cells.values().any(|c| !shadowed(c.ts))
    }
}

#[derive(Debug, Default)]
struct Partition {
    statics: HashMap<String, Cell>,
    rows: BTreeMap<Vec<K>, Row>,
}

#[derive(Debug)]
struct Table {
    pk: Vec<String>,
    ck: Vec<String>,
    statics: HashSet<String>,
    data: BTreeMap<Vec<K>, Partition>,
}

/// The CQL model: tables from schema.cql, in memory.
pub struct CqlModel {
    tables: Mutex<HashMap<String, Table>>,
}

/// CQL split into words, parentheses and commas (shared with the statement tests).
pub(super) fn tokens(cql: &str) -> Vec<String> {
    cql.replace('(', " ( ")
        .replace(')', " ) ")
        .replace(',', " , ")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

impl CqlModel {
    /// Empty tables of the schema.
    /// Drops every row of `table` (TRUNCATE), e.g. to stand for a keyspace
    /// made before the table existed.
    pub fn truncate(&self, table: &str) {
        if let Some(t) = self.tables.lock().unwrap().get_mut(table) {
            t.data.clear();
        }
    }

    pub fn new() -> Self {
        let mut tables = HashMap::new();
        for stmt in plan::schema_statements(SCHEMA, "linkgraph", 1) {
            let Some(rest) = stmt.strip_prefix("CREATE TABLE IF NOT EXISTS ") else {
                continue;
            };
            let (name, body) = rest.split_once('(').unwrap();
            let mut t = Table {
                pk: Vec::new(),
                ck: Vec::new(),
                statics: HashSet::new(),
                data: BTreeMap::new(),
            };
            for line in body.lines().map(str::trim) {
                if let Some(keys) = line.strip_prefix("PRIMARY KEY") {
                    let toks = tokens(keys);
                    // `( ( a , b ) , c , d )` or `( a , b )`
                    let inner: Vec<&String> = toks[1..toks.len() - 1].iter().collect();
                    let mut parts = inner.into_iter().filter(|t| *t != ",");
                    if let Some(first) = parts.next() {
                        if first == "(" {
                            for p in parts.by_ref() {
                                if p == ")" {
                                    break;
                                }
                                t.pk.push(p.clone());
                            }
                        } else {
                            t.pk.push(first.clone());
                        }
                    }
                    t.ck.extend(parts.filter(|p| *p != ")").cloned());
                    continue;
                }
                let words: Vec<&str> = line.trim_end_matches(',').split_whitespace().collect();
                match words.as_slice() {
                    [col, _ty, "PRIMARY", "KEY"] => t.pk.push((*col).to_owned()),
                    [col, _ty, "STATIC"] => {
                        t.statics.insert((*col).to_owned());
                    }
                    _ => {}
                }
            }
            assert!(!t.pk.is_empty(), "{name}: no primary key");
            tables.insert(name.trim().to_owned(), t);
        }
        CqlModel {
            tables: Mutex::new(tables),
        }
    }

    fn apply(&self, w: &Write) {
        let toks = tokens(w.stmt.cql());
        let mut vals = w.values.iter().cloned();
        let mut next = || vals.next().unwrap();
        let mut tables = self.tables.lock().unwrap();
        let mut ts = 1;
        let mut set: Vec<(String, CqlValue)> = Vec::new();
        let mut key: HashMap<String, CqlValue> = HashMap::new();
        let mut marker = false;
        let mut delete = false;
        let table: String;
        match toks[0].as_str() {
            "INSERT" => {
                table = toks[2].clone();
                let close = toks.iter().position(|t| t == ")").unwrap();
                let cols: Vec<String> = toks[4..close]
                    .iter()
                    .filter(|t| *t != ",")
                    .cloned()
                    .collect();
                for c in cols {
                    set.push((c, next()));
                }
                if w.stmt.cql().contains("USING TIMESTAMP ?") {
                    ts = match next() {
                        CqlValue::BigInt(t) => t,
                        other => panic!("timestamp {other:?}"),
                    };
                }
                marker = true;
                let t = &tables[&table];
                for c in t.pk.iter().chain(&t.ck) {
                    let i = set.iter().position(|(n, _)| n == c).unwrap();
                    key.insert(c.clone(), set.remove(i).1);
                }
            }
            "UPDATE" | "DELETE" => {
                delete = toks[0] == "DELETE";
                let at = |kw: &str| toks.iter().position(|t| t == kw).unwrap();
                table = if delete {
                    toks[at("FROM") + 1].clone()
                } else {
                    toks[1].clone()
                };
                ts = match next() {
                    CqlValue::BigInt(t) => t,
                    other => panic!("timestamp {other:?}"),
                };
                let wh = at("WHERE");
                if !delete {
                    let assigns = &toks[at("SET") + 1..wh];
                    for a in assigns.split(|t| t == ",") {
                        let v = if a[2] == "?" {
                            next()
                        } else {
                            CqlValue::BigInt(a[2].parse().unwrap())
                        };
                        set.push((a[0].clone(), v));
                    }
                }
                for c in toks[wh + 1..].split(|t| t == "AND") {
                    key.insert(c[0].clone(), next());
                }
            }
            other => panic!("not a write: {other}"),
        }
        let t = tables.get_mut(&table).unwrap();
        let pk: Vec<K> = t.pk.iter().map(|c| k(&key[c])).collect();
        let part = t.data.entry(pk).or_default();
        let ck: Vec<K> = t.ck.iter().filter_map(|c| key.get(c).map(k)).collect();
        let has_ck = ck.len() == t.ck.len() && !t.ck.is_empty();
        for (col, v) in set {
            // Int columns bound as literals arrive as BigInt: keep the type.
            let v = match &v {
                CqlValue::BigInt(i) if is_int_col(&table, &col) => {
                    CqlValue::Int(i32::try_from(*i).unwrap())
                }
                _ => v,
            };
            if t.statics.contains(&col) {
                put(&mut part.statics, &col, v, ts);
            } else {
                let row = part.rows.entry(ck.clone()).or_default();
                put(&mut row.cells, &col, v, ts);
            }
        }
        if marker && (has_ck || t.ck.is_empty()) {
            let row = part.rows.entry(ck.clone()).or_default();
            row.marker = Some(row.marker.map_or(ts, |m| m.max(ts)));
        }
        if delete {
            let row = part.rows.entry(ck).or_default();
            row.tombstone = Some(row.tombstone.map_or(ts, |d| d.max(ts)));
        }
    }

    /// A whole-table read of a table with a one-column partition key, in
    /// partition-key order (the model's token order): `SELECT [DISTINCT]
    /// cols FROM t [WHERE token(pk) > token(?)] LIMIT ?`. DISTINCT gives one
    /// row per partition (its key and statics).
    fn scan(&self, toks: &[String], values: Vec<CqlValue>) -> Vec<CqlRow> {
        let mut vals = values.into_iter();
        let distinct = toks[1] == "DISTINCT";
        let from = toks.iter().position(|t| t == "FROM").unwrap();
        let cols: Vec<String> = toks[if distinct { 2 } else { 1 }..from]
            .iter()
            .filter(|t| *t != ",")
            .cloned()
            .collect();
        let tables = self.tables.lock().unwrap();
        let table = &toks[from + 1];
        let t = &tables[table];
        assert_eq!(
            t.pk.len(),
            1,
            "the model scans one-column partition keys only"
        );
        let after = toks
            .iter()
            .any(|x| x == "WHERE")
            .then(|| k(&vals.next().unwrap()));
        let limit = match vals.next() {
            Some(CqlValue::Int(n)) => usize::try_from(n).unwrap(),
            other => panic!("scan without a limit: {other:?}"),
        };
        let mut out = Vec::new();
        for (pk, part) in &t.data {
            if after.as_ref().is_some_and(|a| pk[0] <= *a) {
                continue;
            }
            let live = part.rows.values().any(|r| r.is_live()) || !part.statics.is_empty();
            if !live {
                continue;
            }
            let value = |c: &str| -> Option<CqlValue> {
                if t.pk[0] == c {
                    Some(from_k(&pk[0], table, c))
                } else if t.statics.contains(c) {
                    part.statics.get(c).map(|x| x.v.clone())
                } else if t.ck.is_empty() {
                    // A clustering-less table's one row.
                    part.rows.get(&Vec::new())?.live_cell(c).cloned()
                } else {
                    None
                }
            };
            if distinct || t.ck.is_empty() {
                out.push(cols.iter().map(|c| value(c)).collect());
            } else {
                panic!("the model scans DISTINCT or clustering-less tables only");
            }
            if out.len() == limit {
                break;
            }
        }
        out
    }

    fn select(&self, stmt: Stmt, values: Vec<CqlValue>) -> Vec<CqlRow> {
        let toks = tokens(stmt.cql());
        if toks[1] == "DISTINCT"
            || toks.iter().any(|t| t == "token")
            || !toks.iter().any(|t| t == "WHERE")
        {
            return self.scan(&toks, values);
        }
        let mut vals = values.into_iter();
        let from = toks.iter().position(|t| t == "FROM").unwrap();
        let cols: Vec<String> = toks[1..from]
            .iter()
            .filter(|t| *t != ",")
            .cloned()
            .collect();
        let table = &toks[from + 1];
        let tables = self.tables.lock().unwrap();
        let t = &tables[table];
        let wh = toks.iter().position(|t| t == "WHERE").unwrap();
        let end = toks.iter().position(|t| t == "LIMIT").unwrap_or(toks.len());
        let mut eq: HashMap<String, CqlValue> = HashMap::new();
        // (columns, op, values)
        let mut ranges: Vec<(Vec<String>, String, Vec<K>)> = Vec::new();
        for c in toks[wh + 1..end].split(|t| t == "AND") {
            if c[0] == "(" {
                let close = c.iter().position(|t| t == ")").unwrap();
                let names: Vec<String> =
                    c[1..close].iter().filter(|t| *t != ",").cloned().collect();
                let op = c[close + 1].clone();
                let vs: Vec<K> = names.iter().map(|_| k(&vals.next().unwrap())).collect();
                ranges.push((names, op, vs));
            } else if c[1] == "=" {
                eq.insert(c[0].clone(), vals.next().unwrap());
            } else {
                ranges.push((
                    vec![c[0].clone()],
                    c[1].clone(),
                    vec![k(&vals.next().unwrap())],
                ));
            }
        }
        let limit = if end < toks.len() {
            match vals.next() {
                Some(CqlValue::Int(n)) => usize::try_from(n).unwrap(),
                _ => toks[end + 1].parse().unwrap(),
            }
        } else {
            usize::MAX
        };
        let pk: Vec<K> = t.pk.iter().map(|c| k(&eq[c])).collect();
        let Some(part) = t.data.get(&pk) else {
            return Vec::new();
        };
        let ck_restricted = !ranges.is_empty() || t.ck.iter().any(|c| eq.contains_key(c));
        let col_of = |name: &str| t.ck.iter().position(|c| c == name);
        let mut out = Vec::new();
        for (ck, row) in &part.rows {
            if out.len() == limit {
                break;
            }
            if !row.is_live() {
                continue;
            }
            let eq_ok =
                t.ck.iter()
                    .enumerate()
                    .all(|(i, c)| eq.get(c).is_none_or(|v| k(v) == ck[i]));
            let range_ok = ranges.iter().all(|(names, op, vs)| {
                let got: Vec<K> = names
                    .iter()
                    .map(|n| ck[col_of(n).unwrap()].clone())
                    .collect();
                match op.as_str() {
                    ">" => got > *vs,
                    ">=" => got >= *vs,
                    "<" => got < *vs,
                    "<=" => got <= *vs,
                    other => panic!("operator {other}"),
                }
            });
            if !(eq_ok && range_ok) {
                continue;
            }
            out.push(
                cols.iter()
                    .map(|c| {
                        if let Some(i) = t.pk.iter().position(|p| p == c) {
                            Some(eq_value(&eq, &t.pk[i]))
                        } else if let Some(i) = col_of(c) {
                            Some(from_k(&ck[i], table, c))
                        } else if t.statics.contains(c) {
                            part.statics.get(c).map(|x| x.v.clone())
                        } else {
                            row.live_cell(c).cloned()
                        }
                    })
                    .collect(),
            );
        }
        if out.is_empty() && !ck_restricted && !part.statics.is_empty() {
            out.push(
                cols.iter()
                    .map(|c| part.statics.get(c).map(|x| x.v.clone()))
                    .collect(),
            );
        }
        out
    }
}

fn eq_value(eq: &HashMap<String, CqlValue>, col: &str) -> CqlValue {
    eq[col].clone()
}

/// Columns the schema declares `int` (the rest of the numbers are bigint).
fn is_int_col(table: &str, col: &str) -> bool {
    matches!(
        (table, col),
        (
            _,
            "rel"
                | "placement"
                | "kind"
                | "status"
                | "lost_reason"
                | "old_rel"
                | "old_placement"
                | "outcome"
                | "links"
                | "bucket"
                | "day"
                | "link_kind"
        ) | ("refdomain_pages", "follow_links")
    )
}

fn from_k(v: &K, table: &str, col: &str) -> CqlValue {
    match v {
        K::Text(s) => CqlValue::Text(s.clone()),
        K::Int(i) if is_int_col(table, col) => CqlValue::Int(i32::try_from(*i).unwrap()),
        K::Int(i) => CqlValue::BigInt(*i),
        K::Bytes(b) => CqlValue::Blob(b.clone()),
    }
}

#[async_trait]
impl CqlExecutor for CqlModel {
    async fn write(&self, group: Vec<Write>) -> Result<(), StoreError> {
        let first = group.first().map(|w| w.partition.clone());
        for w in &group {
            assert_eq!(
                Some(&w.partition),
                first.as_ref(),
                "a batch spans partitions"
            );
            self.apply(w);
        }
        Ok(())
    }

    async fn read(&self, stmt: Stmt, values: Vec<CqlValue>) -> Result<Vec<CqlRow>, StoreError> {
        Ok(self.select(stmt, values))
    }
}
