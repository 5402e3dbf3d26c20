//! Link velocity: new and lost links and referring domains per day or week,
//! and spikes against the domain's own baseline.
//!
//! Spikes use the robust z-score: with `m` the median of the series' new
//! referring domains and `MAD` the median absolute deviation from it, a
//! bucket scores `(x - m) / (1.4826 * MAD)`; when more than half the buckets
//! equal the median (MAD = 0), the scale falls back to 1.2533 times the mean
//! absolute deviation (both scales estimate the standard deviation of normal
//! data). A bucket is a spike when its score is at least 3.5 and it exceeds
//! the median by at least 3 new referring domains, in a series of at least 4
//! buckets.

use linkgraph_store::{EventKind, LinkEvent};

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Bucket {
    /// UTC days.
    Day,
    /// ISO weeks (Monday 00:00 UTC).
    Week,
}

impl Bucket {
    /// The lower-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Week => "week",
        }
    }
    fn width_ms(self) -> i64 {
        match self {
            Bucket::Day => DAY_MS,
            Bucket::Week => 7 * DAY_MS,
        }
    }
    /// The start of the bucket holding `ms`.
    pub fn start_of(self, ms: i64) -> i64 {
        let day = ms.div_euclid(DAY_MS);
        match self {
            Bucket::Day => day * DAY_MS,
            // 1970-01-01 was a Thursday: Monday is 3 days earlier.
            Bucket::Week => (day - (day + 3).rem_euclid(7)) * DAY_MS,
        }
    }
}

const DAY_MS: i64 = 86_400_000;
/// Least robust z-score of a spike.
pub const SPIKE_SCORE: f64 = 3.5;
/// Least excess over the median, in new referring domains, of a spike.
pub const SPIKE_MIN_EXCESS: u64 = 3;
/// Fewest buckets in which spikes are looked for.
pub const SPIKE_MIN_BUCKETS: usize = 4;

/// One bucket of the series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// Bucket start (epoch ms).
    pub start_ms: i64,
    /// External links that appeared (or came back).
    pub new_links: u64,
    /// External links lost.
    pub lost_links: u64,
    /// Domains that gained their first live link.
    pub new_refdomains: u64,
    /// Domains that lost their last live link.
    pub lost_refdomains: u64,
    /// External links found on the first fetch of their page (of unknown age).
    pub discovered_links: u64,
    /// Domains whose first live link was a discovered one.
    pub discovered_refdomains: u64,
    /// External links whose anchor, rel or placement changed.
    pub changed_links: u64,
}

/// A bucket whose new referring domains stand far above the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    /// Bucket start (epoch ms).
    pub start_ms: i64,
    /// Its new referring domains.
    pub new_refdomains: u64,
    /// The series median.
    pub baseline: f64,
    /// Its robust z-score.
    pub score: f64,
}

/// The velocity of one target domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Velocity {
    /// The target registrable domain.
    pub target: String,
    /// Bucket width.
    pub bucket: Bucket,
    /// Every bucket in range, empty ones included.
    pub series: Vec<Point>,
    /// The spikes, in time order.
    pub spikes: Vec<Spike>,
    /// `new_links` and `new_refdomains` include the discovered ones.
    pub include_discovered: bool,
}

/// Buckets `events` of `target` over `[from, to)`; without bounds, the range
/// spans the events. Discovered links and referring domains (found on a
/// page's first fetch) are counted apart, and added to the new ones only with
/// `include_discovered`; spikes come from new referring domains only.
pub fn velocity(
    target: &str,
    events: &[LinkEvent],
    bucket: Bucket,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    include_discovered: bool,
) -> Velocity {
    let first = from_ms.or_else(|| events.iter().map(|e| e.at_ms).min());
    let last = to_ms.or_else(|| events.iter().map(|e| e.at_ms).max().map(|m| m + 1));
    let mut series = Vec::new();
    if let (Some(from), Some(to)) = (first, last) {
        let mut start = bucket.start_of(from);
        while start < to && series.len() < 100_000 {
            series.push(Point {
                start_ms: start,
                ..Point::default()
            });
            start += bucket.width_ms();
        }
    }
    let origin = series.first().map_or(0, |p| p.start_ms);
    for e in events {
        if from_ms.is_some_and(|f| e.at_ms < f) || to_ms.is_some_and(|t| e.at_ms >= t) {
            continue;
        }
        let Ok(i) = usize::try_from((bucket.start_of(e.at_ms) - origin) / bucket.width_ms()) else {
            continue;
        };
        let Some(p) = series.get_mut(i) else { continue };
        let external = e.link.source_domain() != target;
        match e.kind {
            EventKind::NewLink if external => p.new_links += 1,
            EventKind::LostLink if external => p.lost_links += 1,
            EventKind::DiscoveredLink if external => p.discovered_links += 1,
            EventKind::ChangedLink if external => p.changed_links += 1,
            EventKind::NewRefdomain => p.new_refdomains += 1,
            EventKind::LostRefdomain => p.lost_refdomains += 1,
            EventKind::DiscoveredRefdomain => p.discovered_refdomains += 1,
            _ => {}
        }
    }
    let spikes = spikes(&series);
    if include_discovered {
        for p in &mut series {
            p.new_links += p.discovered_links;
            p.new_refdomains += p.discovered_refdomains;
        }
    }
    Velocity {
        target: target.to_owned(),
        bucket,
        series,
        spikes,
        include_discovered,
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn spikes(series: &[Point]) -> Vec<Spike> {
    if series.len() < SPIKE_MIN_BUCKETS {
        return Vec::new();
    }
    let mut xs: Vec<f64> = series.iter().map(|p| p.new_refdomains as f64).collect();
    xs.sort_by(f64::total_cmp);
    let m = median(&xs);
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median(&dev);
    let scale = if mad > 0.0 {
        1.4826 * mad
    } else {
        1.2533 * dev.iter().sum::<f64>() / dev.len() as f64
    };
    if scale <= 0.0 {
        return Vec::new();
    }
    series
        .iter()
        .filter_map(|p| {
            let x = p.new_refdomains as f64;
            let score = (x - m) / scale;
            (score >= SPIKE_SCORE && x >= m + SPIKE_MIN_EXCESS as f64).then_some(Spike {
                start_ms: p.start_ms,
                new_refdomains: p.new_refdomains,
                baseline: m,
                score: (score * 100.0).round() / 100.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkgraph_core::{Link, LinkKind, Placement, Rel, parse_time};

    fn ev(at: &str, kind: EventKind, source: &str) -> LinkEvent {
        LinkEvent {
            at_ms: parse_time(at).unwrap_or_else(|| panic!("{at}")),
            kind,
            link: Link {
                source_url: source.into(),
                target_url: "http://t.com/".into(),
                anchor: String::new(),
                rel: Rel::follow(),
                placement: Placement::Content,
                kind: LinkKind::Link,
            },
            lost_reason: None,
            before: None,
        }
    }

    #[test]
    fn buckets_align_to_utc_days_and_iso_weeks() {
        let ms = parse_time("2026-03-04T15:00:00Z").unwrap_or(0); // a Wednesday
        assert_eq!(
            Bucket::Day.start_of(ms),
            parse_time("2026-03-04").unwrap_or(1)
        );
        assert_eq!(
            Bucket::Week.start_of(ms),
            parse_time("2026-03-02").unwrap_or(1)
        );
        assert_eq!(
            Bucket::Week.start_of(parse_time("2026-03-02").unwrap_or(0)),
            parse_time("2026-03-02").unwrap_or(1)
        );
    }

    #[test]
    fn counts_external_events_per_bucket_with_empty_buckets_kept() {
        let events = [
            ev("2026-03-02T12:00:00Z", EventKind::NewLink, "http://a.com/"),
            ev("2026-03-02T13:00:00Z", EventKind::NewRefdomain, "a.com"),
            ev(
                "2026-03-02T14:00:00Z",
                EventKind::NewLink,
                "http://www.t.com/internal",
            ),
            ev("2026-03-04T09:00:00Z", EventKind::LostLink, "http://a.com/"),
            ev("2026-03-04T09:00:00Z", EventKind::LostRefdomain, "a.com"),
        ];
        let v = velocity("t.com", &events, Bucket::Day, None, None, false);
        let rows: Vec<(u64, u64, u64, u64)> = v
            .series
            .iter()
            .map(|p| {
                (
                    p.new_links,
                    p.lost_links,
                    p.new_refdomains,
                    p.lost_refdomains,
                )
            })
            .collect();
        assert_eq!(rows, vec![(1, 0, 1, 0), (0, 0, 0, 0), (0, 1, 0, 1)]);
        let json = crate::render::velocity_json(&v);
        assert_eq!(json["series"][0]["start"], "2026-03-02T00:00:00.000Z");
        assert_eq!(json["bucket"], "day");
        let bounded = velocity(
            "t.com",
            &events,
            Bucket::Day,
            parse_time("2026-03-03"),
            parse_time("2026-03-05"),
            false,
        );
        assert_eq!(bounded.series.len(), 2);
        assert_eq!(bounded.series[1].lost_links, 1);
    }

    #[test]
    fn flags_exactly_the_burst() {
        let mut events = Vec::new();
        for day in 1..=20 {
            let n = if day == 15 { 25 } else { day % 3 };
            for i in 0..n {
                events.push(ev(
                    &format!("2026-03-{day:02}T10:00:00Z"),
                    EventKind::NewRefdomain,
                    &format!("d{day}-{i}.com"),
                ));
            }
        }
        let v = velocity("t.com", &events, Bucket::Day, None, None, false);
        assert_eq!(v.spikes.len(), 1, "{:?}", v.spikes);
        assert_eq!(v.spikes[0].start_ms, parse_time("2026-03-15").unwrap_or(0));
        assert_eq!(v.spikes[0].new_refdomains, 25);
        assert!(v.spikes[0].score >= SPIKE_SCORE);
    }

    #[test]
    fn steady_growth_has_no_spike() {
        let events: Vec<LinkEvent> = (1..=28)
            .flat_map(|day| (0..3).map(move |i| (day, i)))
            .map(|(day, i)| {
                ev(
                    &format!("2026-02-{day:02}T10:00:00Z"),
                    EventKind::NewRefdomain,
                    &format!("d{day}-{i}.com"),
                )
            })
            .collect();
        assert!(
            velocity("t.com", &events, Bucket::Day, None, None, false)
                .spikes
                .is_empty()
        );
        assert!(
            velocity("t.com", &[], Bucket::Week, None, None, false)
                .series
                .is_empty()
        );
    }

    #[test]
    fn a_first_crawl_is_discovery_not_a_spike() {
        // Day 1 discovers 30 referring domains; days 2..=10 gain one each.
        let mut events = Vec::new();
        for i in 0..30 {
            let d = format!("d{i}.com");
            events.push(ev(
                "2026-03-01T10:00:00Z",
                EventKind::DiscoveredRefdomain,
                &d,
            ));
            events.push(ev(
                "2026-03-01T10:00:00Z",
                EventKind::DiscoveredLink,
                &format!("http://{d}/"),
            ));
        }
        for day in 2..=10 {
            let d = format!("n{day}.com");
            events.push(ev(
                &format!("2026-03-{day:02}T10:00:00Z"),
                EventKind::NewRefdomain,
                &d,
            ));
        }
        let v = velocity("t.com", &events, Bucket::Day, None, None, false);
        assert!(v.spikes.is_empty(), "{:?}", v.spikes);
        assert_eq!(
            (
                v.series[0].new_refdomains,
                v.series[0].discovered_refdomains
            ),
            (0, 30)
        );
        assert_eq!(v.series[0].discovered_links, 30);
        // The old behaviour on request: discovered counted as new, still no spike.
        let all = velocity("t.com", &events, Bucket::Day, None, None, true);
        assert_eq!(all.series[0].new_refdomains, 30);
        assert_eq!(all.series[0].new_links, 30);
        assert!(all.spikes.is_empty());
        assert_eq!(
            crate::render::velocity_json(&all)["include_discovered"],
            true
        );
    }
}
