//! Rendering of every report, and only here: a table for people, JSON (one
//! document, or one object per line for streams) and RFC 4180 CSV. The JSON
//! shapes and CSV headers are documented in the README and stay stable.

use std::collections::HashMap;
use std::io::{self, Write};

use linkgraph_core::format_rfc3339_ms;
use linkgraph_store::{Backlink, LostReason, RefDomain};
use serde::Serialize;

use crate::overview::Summary;
use crate::ranks::Domains;
use crate::reports::{Anchors, BrokenLink, Direction, Intersect, Outlinks, Pages};
use crate::risk::Risk;
use crate::velocity::Velocity;

/// Output format of a report that is one document (refdomains, velocity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// Output format of `backlinks`, a stream of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BacklinksFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// The columns of each table report, as its CSV header names them and its
/// JSON rows carry them (the API sorts by these names).
pub const REFDOMAIN_COLUMNS: &[&str] = &[
    "domain",
    "links",
    "follow_links",
    "first_seen",
    "last_seen",
    "lost_at",
    "authority",
];
/// See [`REFDOMAIN_COLUMNS`].
pub const BACKLINK_COLUMNS: &[&str] = &[
    "source_url",
    "target_url",
    "anchor",
    "rel",
    "placement",
    "kind",
    "first_seen",
    "last_seen",
    "lost_at",
    "lost_reason",
];
/// See [`REFDOMAIN_COLUMNS`].
pub const ANCHOR_COLUMNS: &[&str] = &[
    "anchor",
    "kind",
    "links",
    "refdomains",
    "follow_links",
    "first_seen",
    "last_seen",
];
/// See [`REFDOMAIN_COLUMNS`].
pub const PAGE_COLUMNS: &[&str] = &["url", "links", "refdomains", "follow_links", "http_status"];
/// See [`REFDOMAIN_COLUMNS`].
pub const OUTLINK_COLUMNS: &[&str] = &["domain", "links", "follow_links"];
/// See [`REFDOMAIN_COLUMNS`].
pub const DOMAIN_RANK_COLUMNS: &[&str] = &[
    "domain",
    "authority",
    "pagerank",
    "harmonic",
    "trust",
    "referring_domains",
];

#[derive(Serialize)]
struct RefdomainJson<'a> {
    domain: &'a str,
    links: u64,
    follow_links: u64,
    first_seen: String,
    last_seen: String,
    lost_at: Option<String>,
    authority: Option<f64>,
}

#[derive(Serialize)]
struct RefdomainsJson<'a> {
    target: &'a str,
    referring_domains: usize,
    domains: Vec<RefdomainJson<'a>>,
}

/// Authority of referring domains from the last rank run (`None`: `rank`
/// never ran).
pub type Authorities = HashMap<String, f64>;

/// A domain's authority, rounded to one decimal as every report shows it.
fn authority_of(a: Option<&Authorities>, domain: &str) -> Option<f64> {
    a?.get(domain).map(|x| (x * 10.0).round() / 10.0)
}

fn refdomains_doc<'a>(
    target: &'a str,
    rows: &'a [RefDomain],
    total: usize,
    authority: Option<&Authorities>,
) -> RefdomainsJson<'a> {
    RefdomainsJson {
        target,
        referring_domains: total,
        domains: rows
            .iter()
            .map(|r| RefdomainJson {
                domain: &r.domain,
                links: r.links,
                follow_links: r.follow_links,
                first_seen: format_rfc3339_ms(r.first_seen_ms),
                last_seen: format_rfc3339_ms(r.last_seen_ms),
                lost_at: r.lost_at_ms.map(format_rfc3339_ms),
                authority: authority_of(authority, &r.domain),
            })
            .collect(),
    }
}

/// The documented JSON document of a refdomains report whose `rows` may be
/// the first of `total`.
pub fn refdomains_json(
    target: &str,
    rows: &[RefDomain],
    total: usize,
    authority: Option<&Authorities>,
) -> serde_json::Value {
    serde_json::to_value(refdomains_doc(target, rows, total, authority)).unwrap_or_default()
}

/// Writes the referring domains of `target` (already sorted, most links first).
pub fn write_refdomains(
    out: &mut impl Write,
    target: &str,
    rows: &[RefDomain],
    total: usize,
    authority: Option<&Authorities>,
    format: Format,
) -> io::Result<()> {
    let shown =
        |d: &str| authority_of(authority, d).map_or_else(String::new, |a| format!("{a:.1}"));
    match format {
        Format::Json => {
            let doc = refdomains_doc(target, rows, total, authority);
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(out, "{}", REFDOMAIN_COLUMNS.join(","))?;
            for r in rows {
                write_csv_row(
                    out,
                    &[
                        &r.domain,
                        &r.links.to_string(),
                        &r.follow_links.to_string(),
                        &format_rfc3339_ms(r.first_seen_ms),
                        &format_rfc3339_ms(r.last_seen_ms),
                        &r.lost_at_ms.map(format_rfc3339_ms).unwrap_or_default(),
                        &shown(&r.domain),
                    ],
                )?;
            }
            Ok(())
        }
        Format::Table => {
            writeln!(out, "{total} referring domains link to {target}")?;
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let a = shown(&r.domain);
                    vec![
                        r.domain.clone(),
                        r.links.to_string(),
                        r.follow_links.to_string(),
                        format_rfc3339_ms(r.first_seen_ms),
                        format_rfc3339_ms(r.last_seen_ms),
                        if a.is_empty() { "-".into() } else { a },
                    ]
                })
                .collect();
            write_table(
                out,
                &[
                    "DOMAIN",
                    "LINKS",
                    "FOLLOW",
                    "FIRST SEEN",
                    "LAST SEEN",
                    "AUTHORITY",
                ],
                &body,
                &[1, 2, 5],
            )
        }
    }
}

#[derive(Serialize)]
struct BacklinkJson<'a> {
    source_url: &'a str,
    target_url: &'a str,
    anchor: &'a str,
    rel: Vec<&'static str>,
    placement: &'static str,
    kind: &'static str,
    first_seen: String,
    last_seen: String,
    lost_at: Option<String>,
    lost_reason: Option<&'static str>,
}

/// The documented JSON object of one backlink (a `backlinks` jsonl line).
pub fn backlink_json(b: &Backlink) -> serde_json::Value {
    serde_json::to_value(backlink_row(b)).unwrap_or_default()
}

fn backlink_row(b: &Backlink) -> BacklinkJson<'_> {
    let l = &b.link;
    BacklinkJson {
        source_url: &l.source_url,
        target_url: &l.target_url,
        anchor: &l.anchor,
        rel: l.rel.names(),
        placement: l.placement.as_str(),
        kind: l.kind.as_str(),
        first_seen: format_rfc3339_ms(b.first_seen_ms),
        last_seen: format_rfc3339_ms(b.last_seen_ms),
        lost_at: b.lost_at_ms.map(format_rfc3339_ms),
        lost_reason: b.lost_reason.map(LostReason::as_str),
    }
}

/// Writes the header of a backlinks report (CSV only has one).
pub fn write_backlinks_header(out: &mut impl Write, format: BacklinksFormat) -> io::Result<()> {
    if format == BacklinksFormat::Csv {
        writeln!(out, "{}", BACKLINK_COLUMNS.join(","))?;
    }
    Ok(())
}

/// Writes one page of backlinks. Tables are aligned per page.
pub fn write_backlinks(
    out: &mut impl Write,
    rows: &[Backlink],
    format: BacklinksFormat,
) -> io::Result<()> {
    match format {
        BacklinksFormat::Jsonl => {
            for b in rows {
                serde_json::to_writer(&mut *out, &backlink_row(b))?;
                writeln!(out)?;
            }
            Ok(())
        }
        BacklinksFormat::Csv => {
            for b in rows {
                let l = &b.link;
                write_csv_row(
                    out,
                    &[
                        &l.source_url,
                        &l.target_url,
                        &l.anchor,
                        &l.rel.names().join(" "),
                        l.placement.as_str(),
                        l.kind.as_str(),
                        &format_rfc3339_ms(b.first_seen_ms),
                        &format_rfc3339_ms(b.last_seen_ms),
                        &b.lost_at_ms.map(format_rfc3339_ms).unwrap_or_default(),
                        b.lost_reason.map_or("", LostReason::as_str),
                    ],
                )?;
            }
            Ok(())
        }
        BacklinksFormat::Table => {
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|b| {
                    let l = &b.link;
                    let rel = l.rel.names().join(",");
                    vec![
                        l.source_url.clone(),
                        l.target_url.clone(),
                        ellipsize(&l.anchor, 40),
                        if rel.is_empty() { "follow".into() } else { rel },
                        l.placement.as_str().into(),
                        format_rfc3339_ms(b.first_seen_ms),
                    ]
                })
                .collect();
            write_table(
                out,
                &[
                    "SOURCE",
                    "TARGET",
                    "ANCHOR",
                    "REL",
                    "PLACEMENT",
                    "FIRST SEEN",
                ],
                &body,
                &[],
            )
        }
    }
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn write_table(
    out: &mut impl Write,
    head: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
) -> io::Result<()> {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i].saturating_sub(c.chars().count());
                if right.contains(&i) {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        parts.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(head.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Writes one RFC 4180 row: fields with a comma, quote or line break are quoted.
pub fn write_csv_row(out: &mut impl Write, fields: &[&str]) -> io::Result<()> {
    let cells: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                (*f).to_owned()
            }
        })
        .collect();
    writeln!(out, "{}", cells.join(","))
}

#[derive(Serialize)]
struct PointJson {
    start: String,
    new_links: u64,
    lost_links: u64,
    new_refdomains: u64,
    lost_refdomains: u64,
    discovered_links: u64,
    discovered_refdomains: u64,
    changed_links: u64,
}

#[derive(Serialize)]
struct SpikeJson {
    start: String,
    new_refdomains: u64,
    baseline: f64,
    score: f64,
}

#[derive(Serialize)]
struct VelocityJson<'a> {
    target: &'a str,
    bucket: &'static str,
    include_discovered: bool,
    series: Vec<PointJson>,
    spikes: Vec<SpikeJson>,
}

/// The documented JSON document of a velocity report.
pub fn velocity_json(v: &Velocity) -> serde_json::Value {
    let t = format_rfc3339_ms;
    let doc = VelocityJson {
        target: &v.target,
        bucket: v.bucket.as_str(),
        include_discovered: v.include_discovered,
        series: v
            .series
            .iter()
            .map(|p| PointJson {
                start: t(p.start_ms),
                new_links: p.new_links,
                lost_links: p.lost_links,
                new_refdomains: p.new_refdomains,
                lost_refdomains: p.lost_refdomains,
                discovered_links: p.discovered_links,
                discovered_refdomains: p.discovered_refdomains,
                changed_links: p.changed_links,
            })
            .collect(),
        spikes: v
            .spikes
            .iter()
            .map(|s| SpikeJson {
                start: t(s.start_ms),
                new_refdomains: s.new_refdomains,
                baseline: s.baseline,
                score: s.score,
            })
            .collect(),
    };
    serde_json::to_value(doc).unwrap_or(serde_json::Value::Null)
}

/// Writes a velocity report; spikes are marked in the table and the CSV.
pub fn write_velocity(out: &mut impl Write, v: &Velocity, format: Format) -> io::Result<()> {
    let spike_at = |start: i64| v.spikes.iter().find(|s| s.start_ms == start);
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &velocity_json(v))?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(
                out,
                "start,new_links,lost_links,new_refdomains,lost_refdomains,spike,\
                 discovered_links,discovered_refdomains,changed_links"
            )?;
            for p in &v.series {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{}",
                    format_rfc3339_ms(p.start_ms),
                    p.new_links,
                    p.lost_links,
                    p.new_refdomains,
                    p.lost_refdomains,
                    spike_at(p.start_ms).is_some(),
                    p.discovered_links,
                    p.discovered_refdomains,
                    p.changed_links
                )?;
            }
            Ok(())
        }
        Format::Table => {
            writeln!(
                out,
                "link velocity of {} per {}",
                v.target,
                v.bucket.as_str()
            )?;
            if v.include_discovered {
                writeln!(out, "(new includes discovered)")?;
            }
            writeln!(
                out,
                "{:<10}  {:>9}  {:>10}  {:>14}  {:>15}  {:>16}  {:>21}  {:>7}",
                "START",
                "NEW LINKS",
                "LOST LINKS",
                "NEW REFDOMAINS",
                "LOST REFDOMAINS",
                "DISCOVERED LINKS",
                "DISCOVERED REFDOMAINS",
                "CHANGED"
            )?;
            for p in &v.series {
                let mark = match spike_at(p.start_ms) {
                    Some(s) => format!(
                        "  <- spike (baseline {:.1}, score {:.1})",
                        s.baseline, s.score
                    ),
                    None => String::new(),
                };
                let day = format_rfc3339_ms(p.start_ms);
                writeln!(
                    out,
                    "{:<10}  {:>9}  {:>10}  {:>14}  {:>15}  {:>16}  {:>21}  {:>7}{mark}",
                    day.get(..10).unwrap_or(&day),
                    p.new_links,
                    p.lost_links,
                    p.new_refdomains,
                    p.lost_refdomains,
                    p.discovered_links,
                    p.discovered_refdomains,
                    p.changed_links
                )?;
            }
            Ok(())
        }
    }
}

/// Writes a one-document report: `doc` as JSON, or `rows` under `head` as
/// CSV or a table (with `title` above it; `right` columns right-aligned).
fn write_doc(
    out: &mut impl Write,
    format: Format,
    doc: &impl Serialize,
    (title, head, right): (&str, &[&str], &[usize]),
    rows: Vec<Vec<String>>,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, doc)?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(out, "{}", head.join(","))?;
            for r in &rows {
                let cells: Vec<&str> = r.iter().map(String::as_str).collect();
                write_csv_row(out, &cells)?;
            }
            Ok(())
        }
        Format::Table => {
            writeln!(out, "{title}")?;
            let upper: Vec<String> = head.iter().map(|h| h.to_uppercase()).collect();
            let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
            write_table(out, &upper, &rows, right)
        }
    }
}

#[derive(Serialize)]
struct DomainJson<'a> {
    domain: &'a str,
    authority: f64,
    pagerank: f64,
    harmonic: f64,
    trust: Option<f64>,
    referring_domains: u64,
}

#[derive(Serialize)]
struct DomainsJson<'a> {
    computed_at: String,
    nodes: u64,
    arcs: u64,
    harmonic_method: &'a str,
    total: usize,
    domains: Vec<DomainJson<'a>>,
}

/// The documented JSON document of a `domains` report.
pub fn domains_json(r: &Domains) -> serde_json::Value {
    serde_json::to_value(domains_doc(r)).unwrap_or_default()
}

fn domains_doc(r: &Domains) -> DomainsJson<'_> {
    DomainsJson {
        computed_at: format_rfc3339_ms(r.run.computed_at_ms),
        nodes: r.run.nodes,
        arcs: r.run.arcs,
        harmonic_method: &r.run.harmonic_method,
        total: r.total,
        domains: r
            .rows
            .iter()
            .map(|d| DomainJson {
                domain: &d.domain,
                authority: d.authority,
                pagerank: d.pagerank,
                harmonic: d.harmonic,
                trust: d.trust,
                referring_domains: d.referring_domains,
            })
            .collect(),
    }
}

/// Writes a `domains` report: JSON and CSV carry full precision, the table
/// rounds for reading.
pub fn write_domains(out: &mut impl Write, r: &Domains, format: Format) -> io::Result<()> {
    let table = format == Format::Table;
    let rows = r
        .rows
        .iter()
        .map(|d| {
            let num = |x: f64, digits: usize| {
                if table {
                    format!("{x:.digits$}")
                } else {
                    x.to_string()
                }
            };
            vec![
                d.domain.clone(),
                num(d.authority, 1),
                if table {
                    format!("{:.3e}", d.pagerank)
                } else {
                    d.pagerank.to_string()
                },
                num(d.harmonic, 3),
                d.trust
                    .map(|t| {
                        if table {
                            format!("{t:.3e}")
                        } else {
                            t.to_string()
                        }
                    })
                    .unwrap_or_default(),
                d.referring_domains.to_string(),
            ]
        })
        .collect();
    let title = format!(
        "{} domains ranked at {} ({} dofollow arcs; harmonic: {})",
        r.total,
        format_rfc3339_ms(r.run.computed_at_ms),
        r.run.arcs,
        r.run.harmonic_method
    );
    let spec = (title.as_str(), DOMAIN_RANK_COLUMNS, &[1, 2, 3, 4, 5][..]);
    write_doc(out, format, &domains_doc(r), spec, rows)
}

fn opt(v: Option<u32>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Writes an anchors report.
pub fn write_anchors(out: &mut impl Write, r: &Anchors, format: Format) -> io::Result<()> {
    let rows = r
        .anchors
        .iter()
        .map(|a| {
            let anchor = match format {
                Format::Table => ellipsize(&a.anchor, 60),
                _ => a.anchor.clone(),
            };
            vec![
                anchor,
                a.kind.as_str().to_owned(),
                a.links.to_string(),
                a.refdomains.to_string(),
                a.follow_links.to_string(),
                a.first_seen.clone(),
                a.last_seen.clone(),
            ]
        })
        .collect();
    let title = format!("anchor texts of the backlinks of {}", r.target);
    write_doc(out, format, r, (&title, ANCHOR_COLUMNS, &[2, 3, 4]), rows)
}

/// Writes a domain's summary: the headline figures, then each mix's links
/// and referring domains (`rel.nofollow.links`), one figure a row.
pub fn write_summary(out: &mut impl Write, r: &Summary, format: Format) -> io::Result<()> {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let mut rows = vec![
        vec!["referring_domains".into(), r.referring_domains.to_string()],
        vec!["backlinks".into(), r.backlinks.to_string()],
        vec!["follow_links".into(), r.follow_links.to_string()],
        vec!["follow_share".into(), pct(r.follow_share)],
        vec!["new_refdomains".into(), r.new_refdomains.to_string()],
        vec!["lost_refdomains".into(), r.lost_refdomains.to_string()],
        vec![
            "discovered_refdomains".into(),
            r.discovered_refdomains.to_string(),
        ],
        vec![
            "authority".into(),
            r.authority
                .map_or_else(|| "not computed yet".into(), |a| format!("{a:.1}")),
        ],
    ];
    for (section, mix) in [
        ("rel", &r.rel),
        ("placement", &r.placement),
        ("anchor", &r.anchor_mix),
    ] {
        for (name, s) in mix {
            rows.push(vec![format!("{section}.{name}.links"), s.links.to_string()]);
            rows.push(vec![
                format!("{section}.{name}.refdomains"),
                s.refdomains.to_string(),
            ]);
        }
    }
    let title = format!(
        "link profile of {} (recent: {} to {})",
        r.target, r.recent_from, r.recent_to
    );
    write_doc(out, format, r, (&title, &["figure", "value"], &[1]), rows)
}

/// Writes a risk report: one row per signal (`domain,score,kind,detail`)
/// in CSV and in the table, by score desc then domain.
pub fn write_risk(out: &mut impl Write, r: &Risk, format: Format) -> io::Result<()> {
    let rows = r
        .domains
        .iter()
        .flat_map(|d| {
            d.signals.iter().map(|s| {
                vec![
                    d.domain.clone(),
                    d.score.to_string(),
                    s.kind.as_str().to_owned(),
                    s.detail.clone(),
                ]
            })
        })
        .collect();
    let title = format!(
        "{} referring domains of {} carry risk signals",
        r.domains.len(),
        r.target
    );
    let head = ["domain", "score", "kind", "detail"];
    write_doc(out, format, r, (&title, &head, &[1]), rows)?;
    if format == Format::Table {
        for n in &r.notes {
            writeln!(out, "note: {n}")?;
        }
    }
    Ok(())
}

/// Writes a top linked pages report.
pub fn write_pages(out: &mut impl Write, r: &Pages, format: Format) -> io::Result<()> {
    let rows = r
        .pages
        .iter()
        .map(|p| {
            vec![
                p.url.clone(),
                p.links.to_string(),
                p.refdomains.to_string(),
                p.follow_links.to_string(),
                opt(p.http_status),
            ]
        })
        .collect();
    let title = format!("pages of {} by referring domains", r.target);
    write_doc(out, format, r, (&title, PAGE_COLUMNS, &[1, 2, 3, 4]), rows)
}

/// Writes a linked-domains (outlinks) report.
pub fn write_outlinks(out: &mut impl Write, r: &Outlinks, format: Format) -> io::Result<()> {
    let rows = r
        .domains
        .iter()
        .map(|d| {
            vec![
                d.domain.clone(),
                d.links.to_string(),
                d.follow_links.to_string(),
            ]
        })
        .collect();
    let title = format!("{} links to {} domains", r.source, r.linked_domains);
    write_doc(out, format, r, (&title, OUTLINK_COLUMNS, &[1, 2]), rows)
}

/// Writes a link intersect report: one links column per target.
pub fn write_intersect(out: &mut impl Write, r: &Intersect, format: Format) -> io::Result<()> {
    let rows = r
        .domains
        .iter()
        .map(|d| {
            let mut row = vec![d.domain.clone(), d.targets_linked.to_string()];
            row.extend(
                r.targets
                    .iter()
                    .map(|t| d.links.get(t).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    let mut head = vec!["domain".to_owned(), "targets_linked".to_owned()];
    head.extend(r.targets.iter().map(|t| format!("links:{t}")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let right: Vec<usize> = (1..head.len()).collect();
    let title = format!(
        "{} domains link to {}{}",
        r.domains.len(),
        r.targets.join(", "),
        if r.exclude.is_empty() {
            String::new()
        } else {
            format!(" but not to {}", r.exclude.join(", "))
        }
    );
    write_doc(out, format, r, (&title, &head, &right), rows)
}

/// The documented JSON object of one broken link.
pub fn broken_json(b: &BrokenLink, direction: Direction) -> serde_json::Value {
    let l = &b.backlink.link;
    match direction {
        Direction::Inbound => serde_json::json!({
            "source_url": l.source_url,
            "target_url": l.target_url,
            "anchor": l.anchor,
            "rel": l.rel.names(),
            "placement": l.placement.as_str(),
            "http_status": b.http_status,
            "first_seen": format_rfc3339_ms(b.backlink.first_seen_ms),
            "last_seen": format_rfc3339_ms(b.backlink.last_seen_ms),
        }),
        Direction::Outbound => serde_json::json!({
            "source_url": l.source_url,
            "target_url": l.target_url,
            "anchor": l.anchor,
            "http_status": b.http_status,
        }),
    }
}

fn broken_head(direction: Direction) -> &'static [&'static str] {
    match direction {
        Direction::Inbound => &[
            "source_url",
            "target_url",
            "anchor",
            "rel",
            "placement",
            "http_status",
            "first_seen",
            "last_seen",
        ],
        Direction::Outbound => &["source_url", "target_url", "anchor", "http_status"],
    }
}

/// Writes the header of a broken-links report (CSV only has one).
pub fn write_broken_header(
    out: &mut impl Write,
    direction: Direction,
    format: BacklinksFormat,
) -> io::Result<()> {
    if format == BacklinksFormat::Csv {
        writeln!(out, "{}", broken_head(direction).join(","))?;
    }
    Ok(())
}

/// Writes broken links. Tables are aligned per call.
pub fn write_broken(
    out: &mut impl Write,
    rows: &[BrokenLink],
    direction: Direction,
    format: BacklinksFormat,
) -> io::Result<()> {
    if format == BacklinksFormat::Jsonl {
        for b in rows {
            serde_json::to_writer(&mut *out, &broken_json(b, direction))?;
            writeln!(out)?;
        }
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|b| {
            let l = &b.backlink.link;
            let mut r = vec![
                l.source_url.clone(),
                l.target_url.clone(),
                if format == BacklinksFormat::Table {
                    ellipsize(&l.anchor, 40)
                } else {
                    l.anchor.clone()
                },
            ];
            if direction == Direction::Inbound {
                r.push(l.rel.names().join(" "));
                r.push(l.placement.as_str().into());
            }
            r.push(b.http_status.to_string());
            if direction == Direction::Inbound {
                r.push(format_rfc3339_ms(b.backlink.first_seen_ms));
                r.push(format_rfc3339_ms(b.backlink.last_seen_ms));
            }
            r
        })
        .collect();
    if format == BacklinksFormat::Csv {
        for r in &cells {
            let r: Vec<&str> = r.iter().map(String::as_str).collect();
            write_csv_row(out, &r)?;
        }
        return Ok(());
    }
    let head: Vec<String> = broken_head(direction)
        .iter()
        .map(|h| h.to_uppercase())
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    write_table(out, &head, &cells, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkgraph_core::{Link, LinkKind, Placement, Rel};

    fn rd(domain: &str, links: u64) -> RefDomain {
        RefDomain {
            domain: domain.into(),
            links,
            follow_links: links - 1,
            first_seen_ms: 0,
            last_seen_ms: 86_400_000,
            lost_at_ms: None,
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut buf = Vec::new();
        f(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(buf).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn refdomains_json_has_the_documented_shape() {
        let rows = [rd("a.com", 3), rd("b.org", 1)];
        let s = text(|o| write_refdomains(o, "t.com", &rows, rows.len(), None, Format::Json));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["target"], "t.com");
        assert_eq!(v["referring_domains"], 2);
        assert_eq!(v["domains"][0]["domain"], "a.com");
        assert_eq!(v["domains"][0]["links"], 3);
        assert_eq!(v["domains"][0]["follow_links"], 2);
        assert_eq!(v["domains"][0]["first_seen"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["domains"][1]["last_seen"], "1970-01-02T00:00:00.000Z");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let s = text(|o| write_csv_row(o, &["plain", "a,b", "say \"hi\"", "two\nlines"]));
        assert_eq!(s, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\n");
    }

    #[test]
    fn backlinks_jsonl_has_rel_array_and_placement() {
        let b = Backlink {
            link: Link {
                source_url: "http://s.com/".into(),
                target_url: "http://t.com/".into(),
                anchor: "a, \"b\"".into(),
                rel: Rel::NOFOLLOW | Rel::UGC,
                placement: Placement::Comment,
                kind: LinkKind::Link,
            },
            first_seen_ms: 0,
            last_seen_ms: 0,
            lost_at_ms: Some(86_400_000),
            lost_reason: Some(LostReason::PageGone),
        };
        let s = text(|o| write_backlinks(o, std::slice::from_ref(&b), BacklinksFormat::Jsonl));
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["rel"], serde_json::json!(["nofollow", "ugc"]));
        assert_eq!(v["placement"], "comment");
        assert_eq!(v["anchor"], "a, \"b\"");
        assert_eq!(v["lost_at"], "1970-01-02T00:00:00.000Z");
        assert_eq!(v["lost_reason"], "page_gone");
        let csv = text(|o| {
            write_backlinks_header(o, BacklinksFormat::Csv)?;
            write_backlinks(o, std::slice::from_ref(&b), BacklinksFormat::Csv)
        });
        let widths: Vec<usize> = csv.lines().map(|l| l.matches(',').count()).collect();
        assert_eq!(
            widths,
            vec![9, 10],
            "header and row have the same columns (the quoted anchor holds one comma)"
        );
        let table = text(|o| write_backlinks(o, &[b], BacklinksFormat::Table));
        assert!(table.lines().count() == 2 && table.contains("nofollow,ugc"));
    }
}
