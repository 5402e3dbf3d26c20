//! Who holds an embedded store: one process at a time (the engine admits no
//! more), readers queue for each other, and nobody queues behind a crawl.
//!
//! The lock is an OS file lock on `<store>.lock`, beside the store directory,
//! so it is released when its holder exits, even by `kill -9`. The holder
//! writes who it is into the file, so whoever finds it taken can say why.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::StoreError;

/// How long a process waits for another one's read before giving up.
pub const READ_WAIT: Duration = Duration::from_secs(60);

/// How often a waiting process tries the lock again.
const POLL: Duration = Duration::from_millis(50);

/// What a process opens the store for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Queries only: waits for other readers, fails fast behind a writer.
    Read,
    /// A crawl or parser: waits for readers, fails fast behind a writer.
    Write,
}

impl Access {
    fn label(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// The process holding a store, as it described itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// `read` or `write`.
    pub access: String,
    /// Its command line.
    pub command: String,
}

impl Holder {
    fn me(access: Access) -> Self {
        Holder {
            pid: std::process::id(),
            access: access.label().into(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }
    fn encode(&self) -> String {
        format!("{}\n{}\n{}\n", self.pid, self.access, self.command)
    }
    fn decode(s: &str) -> Option<Self> {
        let mut lines = s.lines();
        Some(Holder {
            pid: lines.next()?.trim().parse().ok()?,
            access: lines.next()?.trim().to_owned(),
            command: lines.next().unwrap_or_default().to_owned(),
        })
    }
    fn is_writer(&self) -> bool {
        self.access == Access::Write.label()
    }
}

/// Why the lock could not be taken.
fn busy(store: &Path, holder: Option<&Holder>, waited: Option<Duration>) -> StoreError {
    let who = match holder {
        Some(h) if h.is_writer() => format!(
            "it is being written by pid {} (`{}`); the embedded store admits one process at a time, \
             so query it once that process ends: let it finish, or stop it with Ctrl-C or SIGTERM \
             (a crawl resumes where it stopped)",
            h.pid, h.command
        ),
        Some(h) => format!("it is being read by pid {} (`{}`)", h.pid, h.command),
        None => "another process holds it".into(),
    };
    let reason = match waited {
        Some(w) => format!("{who}; gave up after waiting {}s", w.as_secs()),
        None => who,
    };
    StoreError::Busy {
        path: store.to_path_buf(),
        reason,
    }
}

/// The lock file of the store in `store`.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    store.with_file_name(name)
}

/// A held store lock; dropping it releases the store.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// Takes the lock of the store in `store` for `access`. Behind a writer it
/// fails at once, naming the writer; behind a reader it waits up to `wait`,
/// calling `on_wait` once with the reader it waits for.
pub fn acquire(
    store: &Path,
    access: Access,
    wait: Duration,
    on_wait: impl FnOnce(&Holder),
) -> Result<StoreLock, StoreError> {
    let path = lock_path(store);
    let io = |source: std::io::Error| StoreError::Lock {
        path: path.clone(),
        source,
    };
    if access == Access::Write
        && let Some(parent) = path.parent()
    {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let started = Instant::now();
    let mut on_wait = Some(on_wait);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = read_holder(&mut file);
        if holder.as_ref().is_some_and(Holder::is_writer) {
            return Err(busy(store, holder.as_ref(), None));
        }
        if started.elapsed() >= wait {
            return Err(busy(store, holder.as_ref(), Some(wait)));
        }
        if let Some(h) = holder.as_ref()
            && let Some(f) = on_wait.take()
        {
            f(h);
        }
        std::thread::sleep(POLL);
    }
    let me = Holder::me(access).encode();
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(me.as_bytes()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(StoreLock { _file: file })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.take(64 * 1024).read_to_string(&mut s).ok()?;
    Holder::decode(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn readers_queue_for_each_other() {
        let d = dir();
        let store = d.path().join("store");
        let first =
            acquire(&store, Access::Read, READ_WAIT, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut seen = None;
                let lock = acquire(&store, Access::Read, READ_WAIT, |h| seen = Some(h.clone()));
                (lock.map(|_| ()), seen, started.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(400));
        drop(first);
        let (lock, seen, waited) = waiter.join().unwrap_or_else(|_| panic!("waiter panicked"));
        assert!(lock.is_ok(), "{lock:?}");
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        let seen = seen.unwrap_or_else(|| panic!("the waiter was not told whom it waits for"));
        assert_eq!(
            (seen.pid, seen.access.as_str()),
            (std::process::id(), "read")
        );
    }

    #[test]
    fn a_writer_makes_everyone_else_fail_fast() {
        let d = dir();
        let store = d.path().join("store");
        let _crawl =
            acquire(&store, Access::Write, READ_WAIT, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        for access in [Access::Read, Access::Write] {
            let started = Instant::now();
            let err = acquire(&store, access, READ_WAIT, |_| {})
                .err()
                .unwrap_or_else(|| panic!("a second process got a held store"));
            assert!(started.elapsed() < Duration::from_secs(5));
            let msg = err.to_string();
            assert!(msg.contains("being written by pid"), "{msg}");
            assert!(msg.contains("Ctrl-C or SIGTERM"), "{msg}");
        }
    }

    #[test]
    fn a_writer_creates_the_directory() {
        let d = dir();
        let store = d.path().join("new/deeper/store");
        assert!(acquire(&store, Access::Write, READ_WAIT, |_| {}).is_ok());
        assert!(lock_path(&store).is_file());
    }

    #[test]
    fn a_bounded_wait_gives_up_with_the_reader_named() {
        let d = dir();
        let store = d.path().join("store");
        let _reader =
            acquire(&store, Access::Read, READ_WAIT, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        let err = acquire(&store, Access::Write, Duration::from_millis(200), |_| {})
            .err()
            .unwrap_or_else(|| panic!("the lock was shared"));
        let msg = err.to_string();
        assert!(
            msg.contains("being read by pid") && msg.contains("gave up"),
            "{msg}"
        );
    }

    #[test]
    fn a_released_lock_is_taken_over_with_the_stale_holder_overwritten() {
        let d = dir();
        let store = d.path().join("store");
        drop(acquire(&store, Access::Write, READ_WAIT, |_| {}).unwrap_or_else(|e| panic!("{e}")));
        // The file still names the old writer, but nobody holds the lock.
        assert!(acquire(&store, Access::Read, READ_WAIT, |_| {}).is_ok());
        let text = std::fs::read_to_string(lock_path(&store)).unwrap_or_default();
        assert_eq!(Holder::decode(&text).map(|h| h.access), Some("read".into()));
    }
}
