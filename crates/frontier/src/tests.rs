use super::*;

fn open(dir: &Path, cfg: FrontierConfig) -> Frontier {
    Frontier::open(dir, cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn disc(url: &str, depth: u32) -> DiscoveredUrl {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    DiscoveredUrl {
        url: url.into(),
        host,
        depth,
        ..DiscoveredUrl::default()
    }
}

fn done(req: &CrawlRequest, discovered: Vec<DiscoveredUrl>) -> FrontierFeedback {
    FrontierFeedback {
        request: Some(req.clone()),
        discovered,
        ..FrontierFeedback::default()
    }
}

trait CompleteNow {
    fn complete_now(&mut self, fb: &FrontierFeedback) -> Result<Vec<Admission>, FrontierError>;
}

impl CompleteNow for Frontier {
    fn complete_now(&mut self, fb: &FrontierFeedback) -> Result<Vec<Admission>, FrontierError> {
        self.complete(fb, 1_000_000)
    }
}

fn fast() -> FrontierConfig {
    FrontierConfig {
        host_interval: Duration::ZERO,
        ..FrontierConfig::default()
    }
}

#[test]
fn deduplicates_canonical_urls() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    assert_eq!(
        f.add_seed("HTTP://A.com:80/x#f").ok(),
        Some(Admission::Admitted)
    );
    assert_eq!(f.add_seed("http://a.com/x").ok(), Some(Admission::Seen));
    assert!(f.add_seed("mailto:x@y.z").is_err());
    assert_eq!(f.pending(), 1);
}

#[test]
fn one_request_in_flight_per_host_and_hosts_do_not_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    for u in [
        "http://slow.com/1",
        "http://slow.com/2",
        "http://fast.com/1",
        "http://fast.com/2",
    ] {
        f.offer(&disc(u, 0)).unwrap_or_else(|e| panic!("{e}"));
    }
    let now = Instant::now();
    let a = f.next_ready(now).map(|r| r.url);
    let b = f.next_ready(now).map(|r| r.url);
    assert_eq!(
        (a.as_deref(), b.as_deref()),
        (Some("http://slow.com/1"), Some("http://fast.com/1"))
    );
    assert!(f.next_ready(now).is_none(), "both hosts are busy");
    // fast.com finishes while slow.com is still in flight.
    let fast1 = CrawlRequest {
        url: "http://fast.com/1".into(),
        host: "fast.com".into(),
        ..Default::default()
    };
    f.complete_now(&done(&fast1, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        f.next_ready(now).map(|r| r.url).as_deref(),
        Some("http://fast.com/2")
    );
    assert_eq!(f.in_flight(), 2);
}

#[test]
fn per_host_concurrency_allows_that_many_in_flight_still_spaced_by_the_interval() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        host_interval: Duration::from_millis(100),
        per_host_concurrency: 3,
        ..FrontierConfig::default()
    };
    let mut f = open(dir.path(), cfg);
    for i in 1..=5 {
        f.offer(&disc(&format!("http://own.com/{i}"), 0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let first = f.next_ready(t0).unwrap_or_else(|| panic!("ready"));
    assert!(f.next_ready(t0).is_none(), "the interval still holds");
    assert_eq!(f.next_wakeup(), Some(ms(100)));
    let second = f
        .next_ready(ms(100))
        .unwrap_or_else(|| panic!("a second slot"));
    let third = f
        .next_ready(ms(200))
        .unwrap_or_else(|| panic!("a third slot"));
    assert_eq!(f.in_flight(), 3);
    assert!(
        f.next_ready(ms(1_000)).is_none(),
        "three in flight: the host is full"
    );
    // One completes: a slot frees, and the next request goes out.
    f.complete_now(&done(&second, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    let fourth = f
        .next_ready(ms(1_000))
        .unwrap_or_else(|| panic!("a freed slot"));
    assert_eq!(fourth.url, "http://own.com/4");
    assert!(f.next_ready(ms(2_000)).is_none());
    for r in [&first, &third, &fourth] {
        f.complete_now(&done(r, vec![]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // A duplicate completion answers nothing in flight.
    f.complete_now(&done(&first, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f.in_flight(), f.pending()), (0, 1));
    // Overdue requests are handed out again, each of them.
    let fifth = f
        .next_ready(ms(3_000))
        .unwrap_or_else(|| panic!("the last"));
    assert_eq!(fifth.url, "http://own.com/5");
    let again = f
        .redispatch_overdue(ms(10_000), Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, 1);
    assert_eq!((f.in_flight(), f.pending()), (0, 1));
}

#[test]
fn a_fetched_request_frees_its_host_slot_before_its_completion_which_still_records_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        host_interval: Duration::from_millis(100),
        max_attempts: 2,
        ..FrontierConfig::default()
    };
    let mut f = open(dir.path(), cfg.clone());
    for i in 1..=3 {
        f.offer(&disc(&format!("http://own.com/{i}"), 0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let first = f.next_ready(t0).unwrap_or_else(|| panic!("ready"));
    assert!(f.next_ready(ms(500)).is_none(), "one request at a time");
    // Its response is in: the slot frees, once.
    let ok = FrontierFeedback {
        status: 200,
        ..done(&first, vec![])
    };
    assert!(f.fetched(&ok, ms(500)));
    assert!(!f.fetched(&ok, ms(500)), "reported twice");
    let second = f
        .next_ready(ms(500))
        .unwrap_or_else(|| panic!("the freed slot"));
    assert_eq!(
        (second.url.as_str(), f.in_flight()),
        ("http://own.com/2", 2)
    );
    // A 503 backs the host off as soon as it is in (100 ms x 2), and the
    // URL is to be tried again.
    let unavailable = FrontierFeedback {
        outcome: FetchOutcome::HttpError as i32,
        status: 503,
        ..done(&second, vec![])
    };
    assert!(f.fetched(&unavailable, ms(500)));
    assert!(f.next_ready(ms(650)).is_none(), "backed off");
    assert_eq!(f.next_wakeup(), Some(ms(700)));
    // Nothing of it is written before the completions: reopened, all
    // three URLs are queued still.
    drop(f);
    let mut f = open(dir.path(), cfg);
    assert_eq!((f.pending(), f.in_flight()), (3, 0));
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let first = f.next_ready(t0).unwrap_or_else(|| panic!("ready"));
    let ok = FrontierFeedback {
        status: 200,
        ..done(&first, vec![])
    };
    assert!(f.fetched(&ok, t0));
    let second = f.next_ready(ms(100)).unwrap_or_else(|| panic!("freed"));
    let unavailable = FrontierFeedback {
        outcome: FetchOutcome::HttpError as i32,
        status: 503,
        ..done(&second, vec![])
    };
    assert!(f.fetched(&unavailable, ms(100)));
    assert_eq!(f.next_wakeup(), Some(ms(300)));
    // The completions record what the fetches said, and apply the
    // back-off only once: the wake-up does not move.
    f.complete_now(&ok).unwrap_or_else(|e| panic!("{e}"));
    f.complete_now(&unavailable)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (f.pending(), f.in_flight()),
        (2, 0),
        "the 503 is queued again"
    );
    assert_eq!(f.next_wakeup(), Some(ms(300)));
    let again = f.next_ready(ms(300)).unwrap_or_else(|| panic!("retried"));
    assert_eq!((again.url.as_str(), again.attempt), ("http://own.com/2", 1));
    // A report after the completion changes nothing.
    assert!(!f.fetched(&ok, ms(300)));
}

#[test]
fn a_request_that_sent_the_host_nothing_gives_its_turn_back() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        host_interval: Duration::from_millis(200),
        per_host_concurrency: 2,
        ..FrontierConfig::default()
    };
    let mut f = open(dir.path(), cfg);
    for i in 1..=6 {
        f.offer(&disc(&format!("http://own.com/{i}"), 0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let answer = |req: &CrawlRequest, outcome: FetchOutcome| FrontierFeedback {
        outcome: outcome as i32,
        ..done(req, vec![])
    };
    // robots.txt denies the first URL: nothing reached the host, so its
    // next URL may go now rather than 200 ms later.
    let denied = f.next_ready(t0).unwrap_or_else(|| panic!("ready"));
    assert!(f.fetched(&answer(&denied, FetchOutcome::RobotsDenied), ms(5)));
    let second = f
        .next_ready(ms(5))
        .unwrap_or_else(|| panic!("its turn back"));
    assert!(f.fetched(&answer(&second, FetchOutcome::Ok), ms(10)));
    assert!(
        f.next_ready(ms(100)).is_none(),
        "a real request keeps its turn"
    );
    assert_eq!(f.next_wakeup(), Some(ms(205)));
    // The address guard refused one, reported only by its completion:
    // the turn comes back too.
    let blocked = f.next_ready(ms(205)).unwrap_or_else(|| panic!("ready"));
    f.complete_now(&answer(&blocked, FetchOutcome::Blocked))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.next_wakeup(), Some(ms(205)));
    // Two in flight: the first one's denial comes after the second's
    // dispatch, which keeps the schedule it set.
    let first = f.next_ready(ms(205)).unwrap_or_else(|| panic!("ready"));
    let later = f.next_ready(ms(405)).unwrap_or_else(|| panic!("ready"));
    assert!(f.fetched(&answer(&first, FetchOutcome::RobotsDenied), ms(410)));
    assert_eq!(f.next_wakeup(), Some(ms(605)));
    for r in [&denied, &second, &first, &later] {
        f.complete_now(&answer(r, FetchOutcome::Ok))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!((f.in_flight(), f.pending()), (0, 1));
}

#[test]
fn a_fast_host_catches_up_on_a_late_wake_up_but_no_further() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        // 100,000 requests a second: far below a timer's resolution.
        host_interval: Duration::from_micros(10),
        per_host_concurrency: 1000,
        host_budget_base: 1000,
        ..FrontierConfig::default()
    };
    let mut f = open(dir.path(), cfg);
    for i in 0..500 {
        f.offer(&disc(&format!("http://own.com/{i}"), 0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Woken 1 ms after the host became ready: the slots of that
    // millisecond are due now (not one request a wake-up).
    let t0 = Instant::now();
    let count = |f: &mut Frontier, at: Instant| {
        let mut n = 0;
        while f.next_ready(at).is_some() {
            n += 1;
        }
        n
    };
    assert_eq!(count(&mut f, t0 + Duration::from_millis(1)), 101);
    assert!(f.next_ready(t0 + Duration::from_millis(1)).is_none());
    // Woken 50 ms late: still at most 1 ms of catching up.
    assert_eq!(count(&mut f, t0 + Duration::from_millis(51)), 101);
}

#[test]
fn a_host_waits_its_interval() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        host_interval: Duration::from_millis(500),
        ..FrontierConfig::default()
    };
    let mut f = open(dir.path(), cfg);
    f.offer(&disc("http://a.com/1", 0))
        .unwrap_or_else(|e| panic!("{e}"));
    f.offer(&disc("http://a.com/2", 0))
        .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let r1 = f.next_ready(t0).unwrap_or_else(|| panic!("ready"));
    f.complete_now(&done(&r1, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.next_ready(t0 + Duration::from_millis(100)).is_none());
    assert_eq!(f.next_wakeup(), Some(t0 + Duration::from_millis(500)));
    assert!(f.next_ready(t0 + Duration::from_millis(500)).is_some());
}

#[test]
fn depth_redirect_and_host_budgets() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        max_depth: Some(1),
        max_urls_per_host: 2,
        ..fast()
    };
    let mut f = open(dir.path(), cfg);
    let ok = |r: Result<Admission, FrontierError>| r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok(f.offer(&disc("http://a.com/deep", 2))),
        Admission::TooDeep
    );
    // Too deep is not "seen": a shallower path may still admit it.
    assert_eq!(
        ok(f.offer(&disc("http://a.com/deep", 1))),
        Admission::Admitted
    );
    assert_eq!(ok(f.offer(&disc("http://a.com/2", 1))), Admission::Admitted);
    assert_eq!(
        ok(f.offer(&disc("http://a.com/3", 1))),
        Admission::OverBudget
    );
    let mut r = disc("http://b.com/r", 0);
    r.redirect_hops = 6;
    assert_eq!(ok(f.offer(&r)), Admission::TooManyRedirects);
}

#[test]
fn resumes_queued_and_in_flight_work_after_reopening() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut f = open(dir.path(), fast());
        for u in ["http://a.com/1", "http://a.com/2", "http://b.com/1"] {
            f.offer(&disc(u, 0)).unwrap_or_else(|e| panic!("{e}"));
        }
        let r = f
            .next_ready(Instant::now())
            .unwrap_or_else(|| panic!("ready"));
        f.complete_now(&done(&r, vec![disc("http://c.com/new", 1)]))
            .unwrap_or_else(|e| panic!("{e}"));
        // b.com/1 is dispatched but never completed: a crash mid-fetch.
        let _ = f.next_ready(Instant::now());
        f.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    let mut f = open(dir.path(), fast());
    assert_eq!(
        f.pending(),
        3,
        "a.com/2, the in-flight b.com/1 and c.com/new"
    );
    let mut urls = Vec::new();
    while let Some(r) = f.next_ready(Instant::now()) {
        f.complete_now(&done(&r, vec![disc("http://a.com/1", 1)]))
            .unwrap_or_else(|e| panic!("{e}"));
        urls.push(r.url);
    }
    urls.sort();
    assert_eq!(
        urls,
        vec!["http://a.com/2", "http://b.com/1", "http://c.com/new"]
    );
    assert_eq!((f.pending(), f.in_flight()), (0, 0));
}

const DAY: i64 = 86_400_000;

fn finish(f: &mut Frontier, now_ms: i64, changed: bool) -> Vec<String> {
    let mut urls = Vec::new();
    while let Some(r) = f.next_ready(Instant::now()) {
        let mut fb = done(&r, vec![]);
        fb.outcome = FetchOutcome::Ok as i32;
        fb.changed = changed;
        f.complete(&fb, now_ms).unwrap_or_else(|e| panic!("{e}"));
        urls.push(r.url);
    }
    urls
}

#[test]
fn recrawls_adapt_to_change_and_popularity() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    f.offer(&disc("http://a.com/1", 0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(finish(&mut f, 0, false).len(), 1);
    // Fetched at t=0: due after the initial interval (1 day), not before.
    assert_eq!(f.next_due_ms(), Some(DAY));
    assert_eq!(f.enqueue_due(DAY - 1, 100).unwrap_or(9), 0);
    assert_eq!(f.enqueue_due(DAY, 100).unwrap_or(0), 1);
    assert_eq!(f.enqueue_due(DAY, 100).unwrap_or(9), 0, "queued once");
    // Unchanged: the interval doubles to 2 days.
    finish(&mut f, DAY, false);
    assert_eq!(f.next_due_ms(), Some(3 * DAY));
    f.enqueue_due(3 * DAY, 100).unwrap_or(0);
    // Changed: it halves back to 1 day.
    finish(&mut f, 3 * DAY, true);
    assert_eq!(f.next_due_ms(), Some(4 * DAY));
    f.enqueue_due(4 * DAY, 100).unwrap_or(0);
    // Changed again, now linked from 10 other domains (and from its own
    // site, and twice from one of them, which do not count): 12 h, divided
    // by 3.
    for (i, referrer) in (0..10)
        .map(|i| format!("http://www.d{i}.org/page"))
        .chain(["http://a.com/2".into(), "http://blog.d3.org/x".into()])
        .enumerate()
    {
        let mut d = disc("http://a.com/1", 1);
        d.referrer = referrer;
        assert_eq!(
            f.offer(&d).unwrap_or_else(|e| panic!("{e}")),
            Admission::Seen
        );
        assert_eq!(
            f.linking_domains("http://a.com/1").unwrap_or(0),
            (i + 1).min(10)
        );
    }
    finish(&mut f, 4 * DAY, true);
    assert_eq!(f.next_due_ms(), Some(4 * DAY + DAY / 6));
}

#[test]
fn only_an_admitted_url_is_a_first_fetch_and_a_retry_stays_one() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    f.offer(&disc("http://a.com/1", 0))
        .unwrap_or_else(|e| panic!("{e}"));
    // Past any back-off: the retry below waits for its host.
    let next = |f: &mut Frontier| {
        f.next_ready(Instant::now() + Duration::from_secs(3600))
            .unwrap_or_else(|| panic!("a request is ready"))
    };
    let first = next(&mut f);
    assert!(first.first_fetch, "admitted, never completed");
    // A 503: tried again later, still a first fetch (no schedule yet).
    let mut fb = done(&first, vec![]);
    fb.outcome = FetchOutcome::HttpError as i32;
    fb.status = 503;
    f.complete(&fb, 0).unwrap_or_else(|e| panic!("{e}"));
    let again = next(&mut f);
    assert!(again.first_fetch && again.attempt == 1, "{again:?}");
    let mut fb = done(&again, vec![]);
    fb.outcome = FetchOutcome::Ok as i32;
    fb.etag = "\"v1\"".into();
    f.complete(&fb, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.next_due_ms(), Some(DAY), "the initial interval");
    // Reopened (as after a crash) and due: a recrawl, which reads the
    // schedule: it carries the stored validator, and the unchanged page's
    // interval doubles.
    drop(f);
    let mut f = open(dir.path(), fast());
    assert_eq!(f.enqueue_due(DAY, 100).unwrap_or(0), 1);
    let recrawl = next(&mut f);
    assert!(!recrawl.first_fetch);
    assert_eq!(recrawl.if_none_match, "\"v1\"");
    let mut fb = done(&recrawl, vec![]);
    fb.outcome = FetchOutcome::Ok as i32;
    f.complete(&fb, DAY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.next_due_ms(), Some(3 * DAY));
}

#[test]
fn linking_domains_are_counted_per_url_up_to_the_cap_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut f = open(dir.path(), fast());
        let mut first = disc("http://a.com/p", 1);
        first.referrer = "https://x.net/".into();
        assert_eq!(
            f.offer(&first).unwrap_or_else(|e| panic!("{e}")),
            Admission::Admitted
        );
        assert_eq!(f.linking_domains("http://a.com/p").unwrap_or(0), 1);
        for i in 0..(MAX_URL_LINKERS + 5) {
            let mut d = disc("http://a.com/p", 1);
            d.referrer = format!("http://site{i}.com/");
            f.offer(&d).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            f.linking_domains("http://a.com/p").unwrap_or(0),
            MAX_URL_LINKERS
        );
        // Another URL of the host counts its own.
        assert_eq!(f.linking_domains("http://a.com/other").unwrap_or(9), 0);
        f.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    let f = open(dir.path(), fast());
    assert_eq!(
        f.linking_domains("http://a.com/p").unwrap_or(0),
        MAX_URL_LINKERS
    );
}

/// Completions written as one batch count every linking domain they
/// note, as one batch each would: a second note of the same URL extends
/// the first (also for a URL the batch admits), and a completion in the
/// batch reads what the batch noted.
#[test]
fn completions_in_one_batch_count_every_linking_domain() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    for seed in ["http://x.net/", "http://y.org/", "http://z.io/"] {
        f.add_seed(seed).unwrap_or_else(|e| panic!("{e}"));
    }
    f.add_seed("http://a.com/known")
        .unwrap_or_else(|e| panic!("{e}"));
    let now = Instant::now();
    let mut reqs: Vec<CrawlRequest> = std::iter::from_fn(|| f.next_ready(now)).collect();
    reqs.sort_by(|a, b| a.url.cmp(&b.url));
    let links = |from: &CrawlRequest| {
        ["http://a.com/known", "http://a.com/new"]
            .iter()
            .map(|u| DiscoveredUrl {
                referrer: from.url.clone(),
                ..disc(u, 1)
            })
            .collect::<Vec<_>>()
    };
    // a.com/known, then x.net, y.org and z.io, each linking to a.com/known
    // and to a.com/new, which the first of them admits.
    let feedback: Vec<FrontierFeedback> = reqs
        .iter()
        .map(|r| {
            let found = if r.host == "a.com" { vec![] } else { links(r) };
            done(r, found)
        })
        .collect();
    f.complete_all(&feedback, 1_000_000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.linking_domains("http://a.com/known").unwrap_or(0), 3);
    assert_eq!(f.linking_domains("http://a.com/new").unwrap_or(0), 3);
    assert_eq!((f.in_flight(), f.pending()), (0, 1));
    // The same answers from disk.
    f.flush().unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    let f = open(dir.path(), fast());
    assert_eq!(f.linking_domains("http://a.com/known").unwrap_or(0), 3);
    assert_eq!(f.linking_domains("http://a.com/new").unwrap_or(0), 3);
}

#[test]
fn intervals_stay_within_bounds_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        recrawl: RecrawlPolicy {
            initial: Duration::from_secs(86_400),
            min: Duration::from_secs(43_200),
            max: Duration::from_secs(2 * 86_400),
        },
        ..fast()
    };
    {
        let mut f = open(dir.path(), cfg.clone());
        f.offer(&disc("http://a.com/1", 3))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut now = 0;
        finish(&mut f, now, false);
        for _ in 0..5 {
            now = f.next_due_ms().unwrap_or(0);
            f.enqueue_due(now, 100).unwrap_or(0);
            finish(&mut f, now, false);
        }
        assert_eq!(f.next_due_ms(), Some(now + 2 * DAY), "capped at max");
        f.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    let mut f = open(dir.path(), cfg);
    let due = f.next_due_ms().unwrap_or(0);
    assert_eq!(f.enqueue_due(due, 100).unwrap_or(0), 1);
    let r = f
        .next_ready(Instant::now())
        .unwrap_or_else(|| panic!("queued"));
    assert_eq!(
        (r.url.as_str(), r.depth),
        ("http://a.com/1", 3),
        "depth is kept across recrawls"
    );
}

#[test]
fn traps_are_rejected_and_budgets_grow_with_linking_domains() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        max_urls_per_host: 10,
        host_budget_base: 2,
        host_budget_per_linking_domain: 3,
        ..fast()
    };
    let mut f = open(dir.path(), cfg.clone());
    let ok = |r: Result<Admission, FrontierError>| r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok(f.offer(&disc("http://t.com/deep/a/a/a/", 1))),
        Admission::Trap(TrapReason::RepeatingSegments)
    );
    // An unlinked host gets the base budget only.
    assert_eq!(ok(f.offer(&disc("http://t.com/1", 1))), Admission::Admitted);
    assert_eq!(ok(f.offer(&disc("http://t.com/2", 1))), Admission::Admitted);
    assert_eq!(
        ok(f.offer(&disc("http://t.com/3", 1))),
        Admission::OverBudget
    );
    // A link from another domain raises it; links from the host's own domain do not.
    let mut own = disc("http://t.com/3", 1);
    own.referrer = "http://www.t.com/x".into();
    assert_eq!(ok(f.offer(&own)), Admission::OverBudget);
    let mut linked = disc("http://t.com/3", 1);
    linked.referrer = "http://other.org/page".into();
    assert_eq!(ok(f.offer(&linked)), Admission::Admitted);
    // A seed's host gets the full budget, and keeps it after reopening.
    assert_eq!(
        f.add_seed("http://s.com/?utm_source=x&sid=9").ok(),
        Some(Admission::Admitted)
    );
    assert_eq!(
        f.next_ready(Instant::now()).map(|r| r.url),
        Some("http://t.com/1".to_string())
    );
    assert_eq!(
        f.next_ready(Instant::now()).map(|r| r.url),
        Some("http://s.com/".to_string()),
        "tracking stripped"
    );
    drop(f);
    let mut f = open(dir.path(), cfg);
    for i in 0..9 {
        assert_eq!(
            ok(f.offer(&disc(&format!("http://s.com/{i}"), 1))),
            Admission::Admitted,
            "{i}"
        );
    }
    assert_eq!(
        ok(f.offer(&disc("http://s.com/last", 1))),
        Admission::OverBudget,
        "the maximum still holds"
    );
}

#[test]
fn a_page_counts_once_per_linking_domain_and_its_admissions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        host_budget_base: 2,
        host_budget_per_linking_domain: 3,
        ..fast()
    };
    let ok = |r: Result<Vec<Admission>, FrontierError>| r.unwrap_or_else(|e| panic!("{e}"));
    let linked_from = |referrer: &str, urls: std::ops::Range<usize>| -> Vec<DiscoveredUrl> {
        urls.map(|i| DiscoveredUrl {
            referrer: referrer.into(),
            ..disc(&format!("http://t.com/{i}"), 1)
        })
        .collect()
    };
    let admitted = |a: &[Admission]| a.iter().filter(|a| **a == Admission::Admitted).count();
    {
        let mut f = open(dir.path(), cfg.clone());
        for seed in ["http://x.org/a", "http://www.x.org/b", "http://y.org/"] {
            f.add_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut next = || {
            f.next_ready(Instant::now())
                .unwrap_or_else(|| panic!("queued"))
        };
        let (a, b, y) = (next(), next(), next());
        // One page of x.org links to 7 URLs of t.com: one linking domain,
        // so the budget is 2 + 3, however many of its links are written
        // in the same batch.
        let first = ok(f.complete_now(&done(&a, linked_from(&a.url, 0..7))));
        assert_eq!(admitted(&first), 5);
        // A page of another host of the same domain adds nothing; another
        // domain does.
        let second = ok(f.complete_now(&done(&b, linked_from(&b.url, 5..7))));
        assert_eq!(admitted(&second), 0);
        let third = ok(f.complete_now(&done(&y, linked_from(&y.url, 4..9))));
        assert_eq!(admitted(&third), 3);
        assert_eq!(f.linking_domains("http://t.com/4").unwrap_or(0), 2);
        assert_eq!(f.linking_domains("http://t.com/0").unwrap_or(0), 1);
    }
    // Every admission, linker and completion was written (a crawl that
    // stops is reopened, flushed or not: the journal has them).
    let mut f = open(dir.path(), cfg);
    assert_eq!(f.pending(), 8, "t.com/0..=7 queued, the seeds done");
    assert_eq!(f.linking_domains("http://t.com/4").unwrap_or(0), 2);
    let mut more = disc("http://t.com/9", 1);
    more.referrer = "http://x.org/c".into();
    assert_eq!(
        f.offer(&more).unwrap_or_else(|e| panic!("{e}")),
        Admission::OverBudget,
        "x.org was counted once, and the count survived"
    );
}

#[test]
fn a_batch_of_offers_admits_each_url_once_and_is_durable() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let urls = [
        "http://a.com/1",
        "http://a.com/1",
        "http://b.com/",
        "http://a.com/2",
    ]
    .map(|u| disc(u, 1));
    {
        let mut f = open(dir.path(), fast());
        let got = f.offer_all(&urls).unwrap_or_else(|e| panic!("{e}"));
        use Admission::*;
        assert_eq!(got, vec![Admitted, Seen, Admitted, Admitted]);
    }
    let mut f = open(dir.path(), fast());
    assert_eq!(f.pending(), 3);
    assert_eq!(
        f.offer_all(&urls[..1]).unwrap_or_else(|e| panic!("{e}")),
        vec![Admission::Seen]
    );
}

#[test]
fn long_host_queues_wait_on_disk_and_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let n = 100;
    {
        let mut f = open(dir.path(), fast());
        for i in 0..n {
            f.offer(&disc(&format!("http://q.com/{i}"), 0))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(f.pending(), n);
        assert!(
            f.hosts
                .get("q.com")
                .is_some_and(|h| h.pending.len() <= WINDOW),
            "only a window is in memory"
        );
        // Dispatch a few, then stop: the rest must come back after reopening.
        for i in 0..5 {
            let r = f
                .next_ready(Instant::now())
                .unwrap_or_else(|| panic!("ready"));
            assert_eq!(r.url, format!("http://q.com/{i}"));
            f.complete_now(&done(&r, vec![]))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        f.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    let mut f = open(dir.path(), fast());
    assert_eq!(f.pending(), n - 5);
    let mut got = Vec::new();
    while let Some(r) = f.next_ready(Instant::now()) {
        f.complete_now(&done(&r, vec![]))
            .unwrap_or_else(|e| panic!("{e}"));
        got.push(r.url);
    }
    let want: Vec<String> = (5..n).map(|i| format!("http://q.com/{i}")).collect();
    assert_eq!(got, want, "FIFO per host, nothing lost, nothing twice");
    assert_eq!((f.pending(), f.in_flight()), (0, 0));
}

#[test]
fn duplicate_feedback_completes_nothing_else() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    f.add_seed("http://a.com/1")
        .unwrap_or_else(|e| panic!("{e}"));
    f.add_seed("http://a.com/2")
        .unwrap_or_else(|e| panic!("{e}"));
    let first = f
        .next_ready(Instant::now())
        .unwrap_or_else(|| panic!("ready"));
    f.complete_now(&done(&first, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    let second = f
        .next_ready(Instant::now())
        .unwrap_or_else(|| panic!("ready"));
    assert_eq!(f.in_flight(), 1);
    // The first request's feedback, delivered again while the second is out.
    f.complete_now(&done(&first, vec![disc("http://b.com/", 1)]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.in_flight(), 1, "the second request is still in flight");
    assert_eq!(f.pending(), 1, "the duplicate's discoveries still count");
    f.complete_now(&done(&second, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.in_flight(), 0);
}

#[test]
fn hand_off_gives_up_moved_hosts_queued_and_known_urls() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    for u in [
        "http://a.com/1",
        "http://a.com/2",
        "http://b.com/1",
        "http://b.com/2",
    ] {
        f.add_seed(u).unwrap_or_else(|e| panic!("{e}"));
    }
    // Crawl one URL of each host, so each has a recrawl schedule entry.
    let mut done_urls = Vec::new();
    for _ in 0..2 {
        let r = f
            .next_ready(Instant::now())
            .unwrap_or_else(|| panic!("ready"));
        f.complete_now(&done(&r, vec![]))
            .unwrap_or_else(|e| panic!("{e}"));
        done_urls.push(r.url);
    }
    // One of a.com's remaining URL is in flight when a.com moves.
    let a_in_flight = f
        .next_ready(Instant::now())
        .unwrap_or_else(|| panic!("ready"));
    assert_eq!(f.in_flight(), 1);
    let moved = f
        .hand_off(|h| h == "a.com")
        .unwrap_or_else(|e| panic!("{e}"));
    let urls: std::collections::BTreeSet<&str> = moved.iter().map(|d| d.url.as_str()).collect();
    assert!(
        urls.iter().all(|u| u.starts_with("http://a.com/")),
        "{urls:?}"
    );
    assert_eq!(urls.len(), 2, "a.com's crawled and queued URLs: {urls:?}");
    if a_in_flight.host == "a.com" {
        assert_eq!(f.in_flight(), 0);
    }
    // b.com stays; a.com's URLs are admissible again (for a new owner).
    assert!(f.pending() + f.in_flight() >= 1);
    assert_eq!(
        f.offer(&disc("http://a.com/1", 1)).ok(),
        Some(Admission::Admitted)
    );
    assert_eq!(
        f.offer(&disc("http://b.com/1", 1)).ok(),
        Some(Admission::Seen)
    );
}

#[test]
fn a_url_whose_robots_txt_is_unavailable_stays_queued_and_its_host_backs_off() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = FrontierConfig {
        max_attempts: 2,
        park_after: 3,
        max_backoff: Duration::ZERO,
        park_for: Duration::ZERO,
        ..fast()
    };
    let mut f = open(dir.path(), cfg);
    f.add_seed("http://a.com/x")
        .unwrap_or_else(|e| panic!("{e}"));
    // Far more tries than max_attempts: robots.txt never answers.
    for i in 0..6 {
        let req = f
            .next_ready(Instant::now())
            .unwrap_or_else(|| panic!("try {i}: the url must still be queued"));
        assert_eq!(
            req.attempt, 0,
            "a missing robots.txt is not the url's attempt"
        );
        let mut fb = done(&req, vec![]);
        fb.set_outcome(FetchOutcome::RobotsUnavailable);
        f.complete_now(&fb).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.pending(), 1, "try {i}: not completed");
        // Backing off until the third failure parks it.
        let backing_off = usize::from(i < 2);
        assert_eq!(f.backing_off_hosts(), backing_off, "try {i}");
    }
    assert_eq!(f.parked_hosts(), 1, "a host that keeps failing is parked");
    // robots.txt answers again: the URL completes.
    let req = f
        .next_ready(Instant::now())
        .unwrap_or_else(|| panic!("queued"));
    let mut fb = done(&req, vec![]);
    fb.set_outcome(FetchOutcome::Ok);
    f.complete_now(&fb).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.pending(), 0);
    assert_eq!(f.backing_off_hosts(), 0, "it answered");
}

#[test]
fn a_request_whose_feedback_never_comes_is_dispatched_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    f.add_seed("http://a.com/x")
        .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let req = f.next_ready(t0).unwrap_or_else(|| panic!("ready"));
    let deadline = Duration::from_secs(60);
    // Not yet overdue: nothing happens.
    assert_eq!(f.redispatch_overdue(t0 + deadline, deadline).ok(), Some(0));
    assert!(
        f.next_ready(t0 + deadline).is_none(),
        "one in flight per host"
    );
    // Overdue: handed out again, the same URL.
    let late = t0 + deadline + Duration::from_secs(1);
    assert_eq!(f.redispatch_overdue(late, deadline).ok(), Some(1));
    assert_eq!((f.in_flight(), f.pending()), (0, 1));
    let again = f
        .next_ready(late)
        .unwrap_or_else(|| panic!("dispatched again"));
    assert_eq!(again.url, req.url);
    // The first feedback completes it; a second one (the lost one, after
    // all) answers nothing.
    f.complete_now(&done(&again, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    f.complete_now(&done(&req, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f.in_flight(), f.pending()), (0, 0));
    assert_eq!(
        f.redispatch_overdue(late + deadline * 2, deadline).ok(),
        Some(0)
    );
}

#[test]
fn windows_shrink_as_hosts_multiply_and_every_url_still_comes_back() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    // More hosts than window_entries / WINDOW: each keeps fewer in memory,
    // and reads the rest back from disk.
    f.window_entries = 64;
    let hosts = 64 / WINDOW * 2;
    let per_host = WINDOW + 3;
    for i in 0..per_host {
        for h in 0..hosts {
            f.offer(&disc(&format!("http://h{h}.test/{i}"), 0))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert_eq!(f.window(), WINDOW / 2);
    let in_memory: usize = f.hosts.values().map(|h| h.pending.len()).sum();
    assert!(
        in_memory <= 64,
        "{in_memory} requests in memory for {hosts} hosts"
    );
    // Every URL is dispatched once, each host's in order.
    let mut next = std::collections::HashMap::new();
    let mut n = 0;
    while let Some(r) = f.next_ready(Instant::now()) {
        let i = next.entry(r.host.clone()).or_insert(0);
        assert_eq!(r.url, format!("http://{}/{i}", r.host));
        *i += 1;
        n += 1;
        f.complete_now(&done(&r, vec![]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(n, hosts * per_host);
    assert_eq!((f.pending(), f.in_flight()), (0, 0));
}

/// Past its write-buffer limit the frontier rotates the memtables itself
/// (fjall may drop its own rotation request): here, 4 MiB of admissions
/// under a 1 MiB limit, well inside one 8 MiB memtable, end up in tables.
#[test]
fn memtables_past_the_write_buffer_limit_are_rotated() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut f = open(dir.path(), fast());
    f.write_buffer_limit = 1 << 20;
    let long = "x".repeat(200);
    for i in 0..10_000 {
        f.offer(&disc(&format!("http://h{}.test/{long}/{i}", i % 50), 0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(f.seen.table_count() > 0, "the seen set was never flushed");
    // The flushes run on fjall's workers: the buffer drains soon after.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while f.write_buffer_bytes() > 2 << 20 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        f.write_buffer_bytes() <= 2 << 20,
        "{} bytes in memtables",
        f.write_buffer_bytes()
    );
}

#[test]
fn an_undecodable_queue_entry_is_dropped_and_its_host_goes_on() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut f = open(dir.path(), fast());
        for i in 0..3 {
            f.offer(&disc(&format!("http://bad.test/{i}"), 0))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // The middle entry rots on disk (a torn write, a bad upgrade).
        let (k, _) = f
            .queue
            .iter()
            .nth(1)
            .map(|kv| kv.into_inner().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|| panic!("three entries"));
        f.queue
            .insert(&*k, [0xff_u8; 7].as_slice())
            .unwrap_or_else(|e| panic!("{e}"));
        f.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    let mut f = open(dir.path(), fast());
    assert_eq!(f.pending(), 3);
    let mut got = Vec::new();
    while let Some(r) = f.next_ready(Instant::now()) {
        f.complete_now(&done(&r, vec![]))
            .unwrap_or_else(|e| panic!("{e}"));
        got.push(r.url);
    }
    assert_eq!(got, ["http://bad.test/0", "http://bad.test/2"]);
    assert_eq!((f.pending(), f.in_flight()), (0, 0));
    assert_eq!(f.queue.iter().count(), 0, "the bad entry left the queue");
}

/// A frontier closed normally flushes its memtables, so the next open
/// rebuilds none from the journal, and finds what was queued.
#[test]
fn a_frontier_closed_normally_reopens_with_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut f = open(dir.path(), fast());
        for i in 0..300 {
            f.add_seed(&format!("http://h{i}.com/"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(f.db.write_buffer_size() > 0, "written to memtables");
    }
    let f = open(dir.path(), fast());
    assert_eq!(f.db.write_buffer_size(), 0, "nothing replayed");
    assert_eq!(f.pending(), 300, "and nothing lost");
}

/// The `meta` keyspace of the closed frontier directory `dir`.
fn meta_of(dir: &Path) -> (Database, Keyspace) {
    let db = Database::builder(dir)
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    let meta = db
        .keyspace("meta", KeyspaceCreateOptions::default)
        .unwrap_or_else(|e| panic!("{e}"));
    (db, meta)
}

/// The layout version the closed frontier directory `dir` holds.
fn stored_format(dir: &Path) -> Option<u32> {
    let (_db, meta) = meta_of(dir);
    let v = meta.get(b"format").unwrap_or_else(|e| panic!("{e}"))?;
    <[u8; 4]>::try_from(v.as_ref()).ok().map(u32::from_be_bytes)
}

/// Rewrites (or, with `None`, removes) the layout version of the closed
/// frontier directory `dir`, as another build would have left it.
fn set_format(dir: &Path, format: Option<u32>) {
    let (db, meta) = meta_of(dir);
    let done = match format {
        Some(v) => meta.insert(b"format", v.to_be_bytes()),
        None => meta.remove(b"format"),
    };
    done.unwrap_or_else(|e| panic!("{e}"));
    db.persist(PersistMode::SyncAll)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_directory_without_a_layout_version_opens_as_the_first_and_keeps_its_queue() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut f = open(dir.path(), fast());
        f.offer(&disc("http://a.com/1", 0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    set_format(dir.path(), None);
    let mut f = open(dir.path(), fast());
    assert_eq!(f.pending(), 1);
    let r = f.next_ready(Instant::now()).map(|r| r.url);
    assert_eq!(r.as_deref(), Some("http://a.com/1"));
    drop(f);
    // Marked: a build of another layout now refuses it.
    assert_eq!(stored_format(dir.path()), Some(FORMAT));
}

#[test]
fn a_directory_of_another_layout_version_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    drop(open(dir.path(), fast()));
    set_format(dir.path(), Some(FORMAT + 1));
    let err = match Frontier::open(dir.path(), fast()) {
        Ok(_) => panic!("a newer layout was opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("layout version 2"), "{err}");
    assert!(err.contains("move the directory away"), "{err}");
    // Refused without a write: the newer build still finds its version.
    assert_eq!(stored_format(dir.path()), Some(FORMAT + 1));
}
