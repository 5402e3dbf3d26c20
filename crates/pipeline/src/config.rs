//! What the crawl's settings mean beyond one crate: the per-host rate that
//! both the fetcher (its rate limiter) and the frontier (its host interval)
//! obey, and the seed list a user gives.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use linkgraph_core::canonicalize;

/// A bad setting or seed list.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The per-host rate is not a positive number.
    #[error("--per-host-rps must be a positive number, got {0}")]
    Rate(String),
    /// A seed is not a URL.
    #[error("{place}: bad seed: {reason}")]
    Seed {
        /// The seed, or FILE:LINE.
        place: String,
        /// Why.
        reason: String,
    },
    /// A seed argument is neither a URL nor a readable file.
    #[error("seed {path:?} is neither a URL nor a readable file: {source}")]
    SeedFile {
        /// The argument.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Seed files were given but hold no URL.
    #[error("no seed URLs found in {0:?}")]
    NoSeeds(Vec<String>),
}

/// Most requests per second any one host receives: read once, and the
/// source of both the fetcher's rate and the frontier's host interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerHostRate(f64);

impl PerHostRate {
    /// A rate of `rps` requests per second; positive and finite.
    pub fn new(rps: f64) -> Result<PerHostRate, ConfigError> {
        if rps.is_finite() && rps > 0.0 {
            Ok(PerHostRate(rps))
        } else {
            Err(ConfigError::Rate(rps.to_string()))
        }
    }

    /// Requests per second (the fetcher's limiter).
    pub fn rps(self) -> f64 {
        self.0
    }

    /// The least time between two dispatches to one host (the frontier's
    /// schedule): 1 / rps.
    pub fn host_interval(self) -> Duration {
        Duration::try_from_secs_f64(1.0 / self.0).unwrap_or(Duration::MAX)
    }
}

impl FromStr for PerHostRate {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rps = s
            .trim()
            .parse::<f64>()
            .map_err(|_| ConfigError::Rate(s.to_owned()))?;
        PerHostRate::new(rps)
    }
}

impl fmt::Display for PerHostRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The seed URLs of `values`: each a URL, or a file with one URL per line
/// ('#' starts a comment). Every seed is checked to be a URL.
pub fn read_seeds(values: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut seeds = Vec::new();
    for v in values {
        let v = v.trim();
        if v.contains("://") {
            canonicalize(v, None).map_err(|e| ConfigError::Seed {
                place: format!("{v:?}"),
                reason: e.to_string(),
            })?;
            seeds.push(v.to_owned());
            continue;
        }
        let text = std::fs::read_to_string(v).map_err(|source| ConfigError::SeedFile {
            path: v.to_owned(),
            source,
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            canonicalize(line, None).map_err(|e| ConfigError::Seed {
                place: format!("{v}:{}", n + 1),
                reason: e.to_string(),
            })?;
            seeds.push(line.to_owned());
        }
    }
    if seeds.is_empty() && !values.is_empty() {
        return Err(ConfigError::NoSeeds(values.to_vec()));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_interval_is_the_inverse_of_the_rate() {
        let rate = |s: &str| s.parse::<PerHostRate>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rate("1").host_interval(), Duration::from_secs(1));
        assert_eq!(rate("5").host_interval(), Duration::from_millis(200));
        assert_eq!(rate("0.5").host_interval(), Duration::from_secs(2));
        assert_eq!(rate("1000").host_interval(), Duration::from_millis(1));
        assert_eq!(rate("2.5").rps(), 2.5);
        for bad in ["0", "-1", "NaN", "inf", "fast", ""] {
            assert!(bad.parse::<PerHostRate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn seeds_come_from_urls_and_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("seeds.txt");
        std::fs::write(&file, "# mine\nhttp://a.com/\n\n  http://b.com/x # b\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let f = file.display().to_string();
        let seeds = read_seeds(&["http://c.com/".into(), f.clone()]);
        assert_eq!(
            seeds.ok(),
            Some(vec![
                "http://c.com/".to_owned(),
                "http://a.com/".to_owned(),
                "http://b.com/x".to_owned()
            ])
        );
        std::fs::write(&file, "http://a.com/\nnot a url\n").unwrap_or_else(|e| panic!("{e}"));
        let err = read_seeds(std::slice::from_ref(&f)).map(|_| ());
        assert!(
            matches!(&err, Err(ConfigError::Seed { place, .. }) if place.ends_with(":2")),
            "{err:?}"
        );
        std::fs::write(&file, "# none\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            read_seeds(std::slice::from_ref(&f)),
            Err(ConfigError::NoSeeds(_))
        ));
        assert!(read_seeds(&[]).is_ok_and(|s| s.is_empty()));
    }
}
