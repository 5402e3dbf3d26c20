//! The static multi-host web of the peer and distributed benchmarks:
//! pages of a realistic shape written to disk, served by nginx on loopback
//! by Host header, and requests counted from nginx's access log.
//!
//! Each page is about 20 KB with about 29 links: nav, content, footer, some
//! nofollow, a few to other hosts, a few to robots-disallowed paths.

// Each benchmark uses the part it needs.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const LINKS_PER_PAGE: usize = 29;
const PAGE_BYTES: usize = 20_000;
const WORDS: [&str; 12] = [
    "link", "graph", "crawler", "garden", "coffee", "review", "guide", "travel", "rust", "news",
    "market", "history",
];

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn host(h: usize) -> String {
    format!("site{h}.test")
}

/// splitmix64, so the web is the same every run.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn page_path(p: usize) -> String {
    if p == 0 {
        "/".into()
    } else {
        format!("/p/{p}.html")
    }
}

/// One page's links as (href, rel, placement): every page links to the
/// next one (so the whole site is reachable), the home page to the next
/// host's home page. Internal hrefs are paths, external ones absolute.
pub fn page_links(
    hosts: usize,
    pages: usize,
    port: u16,
    h: usize,
    p: usize,
) -> Vec<(String, &'static str, &'static str)> {
    links_and_state(hosts, pages, port, h, p).0
}

/// [`page_links`], and the page's random state after them (for its text).
fn links_and_state(
    hosts: usize,
    pages: usize,
    port: u16,
    h: usize,
    p: usize,
) -> (Vec<(String, &'static str, &'static str)>, u64) {
    let mut r = mix((h as u64) << 32 | p as u64);
    let mut next = || {
        r = mix(r);
        r as usize
    };
    let mut links = Vec::with_capacity(LINKS_PER_PAGE);
    links.push((page_path((p + 1) % pages), "", "content"));
    if p == 0 {
        links.push((
            format!("http://{}:{port}/", host((h + 1) % hosts)),
            "",
            "content",
        ));
    }
    while links.len() < LINKS_PER_PAGE {
        let roll = next() % 100;
        let (href, rel, place) = match roll {
            0..=4 => (
                format!(
                    "http://{}:{port}{}",
                    host(next() % hosts),
                    page_path(next() % pages)
                ),
                "",
                "content",
            ),
            5..=6 => (format!("/private/{}.html", next() % 50), "", "content"),
            7..=16 => (page_path(next() % pages), "", "nav"),
            17..=22 => (page_path(next() % pages), "nofollow", "footer"),
            _ => (page_path(next() % pages), "", "content"),
        };
        links.push((href, rel, place));
    }
    (links, r)
}

/// One page's HTML, with the links of [`page_links`].
pub fn page_html(hosts: usize, pages: usize, port: u16, h: usize, p: usize) -> String {
    let (links, mut r) = links_and_state(hosts, pages, port, h, p);
    let mut next = || {
        r = mix(r);
        r as usize
    };
    let mut html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{} page {p}</title></head><body>",
        host(h)
    );
    let anchor = |i: usize| WORDS[(i * 7 + h + p) % WORDS.len()];
    let link = |html: &mut String, (href, rel, _): &(String, &str, &str), i: usize| {
        let rel = if rel.is_empty() {
            String::new()
        } else {
            format!(" rel=\"{rel}\"")
        };
        let _ = write!(
            html,
            "<a href=\"{href}\"{rel}>{} {}</a> ",
            anchor(i),
            anchor(i + 3)
        );
    };
    html.push_str("<nav>");
    for (i, l) in links.iter().enumerate().filter(|(_, l)| l.2 == "nav") {
        link(&mut html, l, i);
    }
    html.push_str("</nav><main>");
    let content: Vec<_> = links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.2 == "content")
        .collect();
    let filler = PAGE_BYTES / (content.len() + 1);
    for (i, l) in content {
        html.push_str("<p>");
        let end = html.len() + filler;
        while html.len() < end {
            html.push_str(WORDS[next() % WORDS.len()]);
            html.push(' ');
        }
        link(&mut html, l, i);
        html.push_str("</p>");
    }
    html.push_str("</main><footer>");
    for (i, l) in links.iter().enumerate().filter(|(_, l)| l.2 == "footer") {
        link(&mut html, l, i);
    }
    html.push_str("</footer></body></html>\n");
    html
}

pub fn write_web(root: &Path, hosts: usize, pages: usize, port: u16) -> u64 {
    (0..hosts)
        .map(|h| {
            write_host(&root.join(host(h)), pages, |p| {
                page_html(hosts, pages, port, h, p)
            })
        })
        .sum()
}

/// The single site's host name.
pub const OWN: &str = "own.test";

/// One site of `pages` pages whose links all stay on it.
pub fn write_site(root: &Path, pages: usize, port: u16) -> u64 {
    write_host(&root.join(OWN), pages, |p| {
        page_html(1, pages, port, 0, p).replace(&host(0), OWN)
    })
}

/// Writes one host's robots.txt and its `pages` pages (`html(p)` each) into
/// `dir`; returns the bytes of HTML written.
fn write_host(dir: &Path, pages: usize, html: impl Fn(usize) -> String) -> u64 {
    std::fs::create_dir_all(dir.join("p")).unwrap();
    std::fs::write(
        dir.join("robots.txt"),
        "User-agent: *\nDisallow: /private/\n",
    )
    .unwrap();
    let mut bytes = 0u64;
    for p in 0..pages {
        let html = html(p);
        bytes += html.len() as u64;
        let file = if p == 0 {
            dir.join("index.html")
        } else {
            dir.join(format!("p/{p}.html"))
        };
        std::fs::write(file, html).unwrap();
    }
    bytes
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_nginx(dir: &Path, port: u16) -> Child {
    start_nginx_with(dir, &dir.join("web"), port, "")
}

/// Starts nginx on loopback `port` with its pid, logs and config in `dir`,
/// serving `web` by Host header, with `server_extra` added to its server
/// block (e.g. a `limit_rate`).
pub fn start_nginx_with(dir: &Path, web: &Path, port: u16, server_extra: &str) -> Child {
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  log_format lg '$msec $host $status $request_uri';\n  access_log {d}/access.log lg;\n\
         \x20 sendfile on;\n  keepalive_requests 100000;\n  client_body_temp_path {d}/tmp;\n\
         \x20 proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n\
         \x20 scgi_temp_path {d}/tmp;\n  types {{ text/html html; text/plain txt; }}\n\
         \x20 server {{ listen 127.0.0.1:{port}; root {w}/$host; {server_extra} }}\n}}\n",
        d = dir.display(),
        w = web.display()
    );
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .args(["-c", &dir.join("nginx.conf").display().to_string()])
        .args(["-p", &dir.display().to_string()])
        .spawn()
        .expect("nginx is required (Debian nginx-light)");
    wait_for_port(port, Duration::from_secs(10), "nginx");
    child
}

/// Waits until something accepts connections on loopback `port`; panics
/// naming `what` after `limit`.
pub fn wait_for_port(port: u16, limit: Duration, what: &str) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < limit, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints `a / b` as a benchmark ratio, with both rates in pages/s.
pub fn print_ratio(label: &str, a: f64, b: f64) {
    println!("{label}: {:.2} ({a:.0} vs {b:.0} pages/s)", a / b);
}

/// Stops nginx gracefully, so its worker process exits with it (a killed
/// master leaves its worker running).
pub fn stop_nginx(mut nginx: Child) {
    let _ = Command::new("kill")
        .args(["-QUIT", &nginx.id().to_string()])
        .status();
    let _ = nginx.wait();
}

/// Requests logged after `from` lines: (count, seconds from first to last,
/// count by status).
pub fn measure(log: &Path, from: usize) -> (usize, f64, std::collections::BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut n = 0;
    let (mut first, mut last) = (f64::MAX, 0f64);
    let mut statuses = std::collections::BTreeMap::new();
    for line in text.lines().skip(from) {
        let mut f = line.split(' ');
        let Some(t) = f.next().and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        let status = f.nth(1).unwrap_or("?").to_owned();
        *statuses.entry(status).or_insert(0) += 1;
        n += 1;
        first = first.min(t);
        last = last.max(t);
    }
    (n, (last - first).max(1e-3), statuses)
}

/// Per host, the times (seconds) of the requests logged after `from`
/// lines, in log order.
pub fn host_times(log: &Path, from: usize) -> std::collections::HashMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut hosts: std::collections::HashMap<String, Vec<f64>> = std::collections::HashMap::new();
    for line in text.lines().skip(from) {
        let mut f = line.split(' ');
        let (Some(t), Some(host)) = (f.next().and_then(|t| t.parse::<f64>().ok()), f.next()) else {
            continue;
        };
        hosts.entry(host.to_owned()).or_default().push(t);
    }
    hosts
}

pub fn lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

/// Clock ticks per second of `/proc/PID/stat`'s CPU times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Two fields of a `/proc/.../stat` file (numbered as in proc(5)), summed
/// and converted from clock ticks to seconds.
pub fn stat_secs(path: &str, a: usize, b: usize, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the parenthesized command name start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(a) + field(b)) / ticks
}

/// CPU seconds (utime + stime) a live process has used.
pub fn cpu_secs(pid: u32, ticks: f64) -> f64 {
    stat_secs(&format!("/proc/{pid}/stat"), 14, 15, ticks)
}

/// CPU seconds used by this process's waited-for children (cutime + cstime).
pub fn children_cpu_secs(ticks: f64) -> f64 {
    stat_secs("/proc/self/stat", 16, 17, ticks)
}
