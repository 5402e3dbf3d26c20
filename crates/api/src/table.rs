//! Sorting and keyset paging of a report's rows: any listed column, either
//! direction, ties broken by the row's unique key, and a cursor that names
//! the last row's key so the next page starts right after it (a row that
//! moves while a client pages is seen at most once, never a whole page
//! twice).

use std::cmp::Ordering;

use serde_json::{Value, json};

/// How one report's rows are sorted and paged.
pub(crate) struct Table {
    /// The array of rows in the report's JSON document.
    pub rows: &'static str,
    /// The fields that together identify a row (the last tie-breakers).
    pub unique: &'static [&'static str],
    /// The report's own order: (field, descending).
    pub default: &'static [(&'static str, bool)],
    /// The columns a client may sort by.
    pub columns: &'static [&'static str],
}

/// One sort key: a field and its direction.
type Key = (String, bool);

/// The full order of a request: the chosen column (or the report's
/// default), then the unique fields ascending.
pub(crate) struct Order(Vec<Key>);

impl Order {
    /// The order for `sort` (a column of `table`) and `desc`; `None` sorts
    /// as the report does.
    pub fn new(table: &Table, sort: Option<&str>, desc: bool) -> Result<Order, String> {
        let mut keys: Vec<Key> = match sort {
            None => table
                .default
                .iter()
                .map(|(f, d)| ((*f).to_owned(), *d))
                .collect(),
            Some(c) if table.columns.contains(&c) => vec![(c.to_owned(), desc)],
            Some(c) => {
                return Err(format!(
                    "cannot sort by {c:?} (sortable: {})",
                    table.columns.join(", ")
                ));
            }
        };
        for u in table.unique {
            if !keys.iter().any(|(f, _)| f == u) {
                keys.push(((*u).to_owned(), false));
            }
        }
        Ok(Order(keys))
    }

    /// The key of `row` under this order.
    fn key(&self, row: &Value) -> Vec<Value> {
        self.0.iter().map(|(f, _)| row[f].clone()).collect()
    }

    fn cmp_keys(&self, a: &[Value], b: &[Value]) -> Ordering {
        for ((_, desc), (x, y)) in self.0.iter().zip(a.iter().zip(b)) {
            let o = cmp_value(x, y);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.len().cmp(&b.len())
    }

    /// A label of the order, carried in cursors so that a cursor of one
    /// order is refused by another.
    fn label(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(f, d)| format!("{f}:{}", if *d { "desc" } else { "asc" }))
            .collect();
        parts.join(",")
    }

    /// Sorts `rows`, skips those up to `cursor` (a [`Page::next`] of the
    /// same order) and returns at most `limit` of the rest.
    pub fn page(
        &self,
        rows: Vec<Value>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, String> {
        // Each row's key is built once, not at every comparison.
        let mut keyed: Vec<(Vec<Value>, Value)> =
            rows.into_iter().map(|r| (self.key(&r), r)).collect();
        keyed.sort_by(|a, b| self.cmp_keys(&a.0, &b.0));
        let start = match cursor {
            None => 0,
            Some(c) => {
                let doc: Value =
                    serde_json::from_str(c).map_err(|_| "malformed cursor".to_owned())?;
                if doc["order"].as_str() != Some(&self.label()) {
                    return Err(
                        "the cursor belongs to another sort order: start again without it".into(),
                    );
                }
                let after: Vec<Value> = doc["after"]
                    .as_array()
                    .cloned()
                    .ok_or_else(|| "malformed cursor".to_owned())?;
                keyed.partition_point(|(k, _)| self.cmp_keys(k, &after) != Ordering::Greater)
            }
        };
        let rest = keyed.len().saturating_sub(start);
        let page: Vec<(Vec<Value>, Value)> = keyed.into_iter().skip(start).take(limit).collect();
        let next = (rest > page.len()).then(|| {
            let last = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
            json!({"order": self.label(), "after": last}).to_string()
        });
        Ok(Page {
            rows: page.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }
}

/// One page of sorted rows.
pub(crate) struct Page {
    /// The rows.
    pub rows: Vec<Value>,
    /// The cursor after the last row; `None` on the last page.
    pub next: Option<String>,
}

/// Orders JSON values: null, then booleans, numbers (numerically), strings,
/// arrays (by their joined strings), objects.
fn cmp_value(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            let join = |v: &[Value]| -> String {
                let parts: Vec<String> = v
                    .iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                    .collect();
                parts.join(" ")
            };
            join(x).cmp(&join(y))
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table = Table {
        rows: "domains",
        unique: &["domain"],
        default: &[("links", true)],
        columns: &["domain", "links", "lost_at"],
    };

    fn rows() -> Vec<Value> {
        (0..25)
            .map(|i| {
                let lost = if i % 3 == 0 {
                    Value::Null
                } else {
                    json!(format!("2026-01-{:02}", i))
                };
                json!({"domain": format!("d{i:02}.com"), "links": i % 4, "lost_at": lost})
            })
            .collect()
    }

    fn walk(order: &Order, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let p = order
                .page(rows(), cursor.as_deref(), limit)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(p.rows.len() <= limit);
            out.extend(p.rows);
            match p.next {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    #[test]
    fn every_order_pages_through_every_row_once_in_order() {
        for (sort, desc) in [
            (None, false),
            (Some("domain"), true),
            (Some("links"), false),
            (Some("lost_at"), true),
        ] {
            let order = Order::new(&T, sort, desc).unwrap_or_else(|e| panic!("{e}"));
            let whole = order
                .page(rows(), None, usize::MAX)
                .unwrap_or_else(|e| panic!("{e}"))
                .rows;
            for limit in [1, 4, 7, 25, 100] {
                assert_eq!(walk(&order, limit), whole, "{sort:?} {desc} {limit}");
            }
            let keys: Vec<Vec<Value>> = whole.iter().map(|r| order.key(r)).collect();
            assert!(
                keys.windows(2)
                    .all(|w| order.cmp_keys(&w[0], &w[1]) == Ordering::Less)
            );
        }
        let by_links = Order::new(&T, None, false).unwrap_or_else(|e| panic!("{e}"));
        let first = by_links
            .page(rows(), None, 3)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.rows[0]["links"], 3);
        assert_eq!(first.rows[0]["domain"], "d03.com");
    }

    #[test]
    fn bad_sorts_and_cursors_are_refused() {
        assert!(Order::new(&T, Some("nope"), false).is_err());
        let a = Order::new(&T, Some("domain"), false).unwrap_or_else(|e| panic!("{e}"));
        let b = Order::new(&T, Some("links"), false).unwrap_or_else(|e| panic!("{e}"));
        let next = a
            .page(rows(), None, 2)
            .ok()
            .and_then(|p| p.next)
            .unwrap_or_default();
        assert!(b.page(rows(), Some(&next), 2).is_err());
        assert!(a.page(rows(), Some("{"), 2).is_err());
    }
}
