//! Domain ranks as reports: `domains` (every node of the domain graph,
//! ranked) and the authority column other reports carry. The ranks come from
//! `linkgraph rank` (crate `linkgraph-rank`), which documents the algorithms;
//! this module only reads what it stored.

use std::collections::HashMap;

use linkgraph_store::{DomainRank, RankRun};

use crate::{QueryError, Reader};

/// Rows per store read.
const PAGE: usize = 10_000;

/// How `domains` sorts (always descending, then by domain ascending).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DomainSort {
    /// Authority, then PageRank.
    #[default]
    Authority,
    /// Live referring domains.
    Refdomains,
    /// Trust (TrustRank), then authority.
    Trust,
}

impl DomainSort {
    /// The sort's name, as the API takes it.
    pub fn parse(s: &str) -> Option<DomainSort> {
        match s {
            "authority" => Some(DomainSort::Authority),
            "refdomains" | "referring_domains" => Some(DomainSort::Refdomains),
            "trust" => Some(DomainSort::Trust),
            _ => None,
        }
    }
}

/// The `domains` report.
#[derive(Debug, Clone)]
pub struct Domains {
    /// The run the ranks come from.
    pub run: RankRun,
    /// The first `limit` domains in the report's order.
    pub rows: Vec<DomainRank>,
    /// Every ranked domain.
    pub total: usize,
}

/// Orders `rows` by `sort`, descending, then by domain.
pub fn sort_domains(rows: &mut [DomainRank], sort: DomainSort) {
    let key = |r: &DomainRank| match sort {
        DomainSort::Authority => (r.authority, r.pagerank),
        DomainSort::Refdomains => (r.referring_domains as f64, r.authority),
        DomainSort::Trust => (r.trust.unwrap_or(0.0), r.authority),
    };
    rows.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then_with(|| a.domain.cmp(&b.domain))
    });
}

impl Reader {
    /// The last rank run, or an error that says to run `rank`.
    pub async fn rank_run(&self) -> Result<RankRun, QueryError> {
        self.store().rank_run().await?.ok_or_else(|| {
            QueryError::NoRanks(format!(
                "no domain ranks in {} yet: run `linkgraph rank` on it first",
                self.place()
            ))
        })
    }

    /// Every ranked domain, sorted by `sort`, the first `limit` of them.
    pub async fn domains(
        &self,
        sort: DomainSort,
        limit: Option<usize>,
    ) -> Result<Domains, QueryError> {
        let run = self.rank_run().await?;
        let (mut rows, mut after) = (Vec::new(), None);
        loop {
            let (page, next) = self.store().scan_ranks(after, PAGE).await?;
            rows.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        if sort == DomainSort::Trust && run.trusted == 0 {
            return Err(QueryError::BadArgument(
                "the last rank run had no trusted seeds: run `linkgraph rank --trusted FILE` to sort by trust".into(),
            ));
        }
        let total = rows.len();
        sort_domains(&mut rows, sort);
        rows.truncate(limit.unwrap_or(usize::MAX));
        Ok(Domains { run, rows, total })
    }

    /// The authority of each of `domains` from the last rank run; `None`
    /// when `rank` never ran (a domain ranked before it was first seen has
    /// no entry).
    pub async fn authorities(
        &self,
        domains: &[String],
    ) -> Result<Option<HashMap<String, f64>>, QueryError> {
        if self.store().rank_run().await?.is_none() {
            return Ok(None);
        }
        let ranks = self.store().domain_ranks(domains).await?;
        Ok(Some(
            ranks
                .into_iter()
                .flatten()
                .map(|r| (r.domain, r.authority))
                .collect(),
        ))
    }
}
