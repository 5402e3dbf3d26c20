//! The process's limit on open files. A crawl holds a socket for every
//! connection it keeps open (up to `--keep-alive-per-host` per host, for 30 s
//! after their last response) and a file for every table of its stores:
//! more than the soft limit of 1,024 that many systems start a process with.

/// Raises the soft limit on open files to the hard limit (as Go's runtime
/// does for every program); returns the soft limit in force afterwards, or
/// `None` where it cannot be read.
#[cfg(unix)]
// `rlim_t` is `u64` on Linux, not on every Unix.
#[allow(clippy::useless_conversion)]
pub fn raise_open_files_limit() -> Option<u64> {
    let lim = nofile()?;
    if lim.rlim_cur < lim.rlim_max && set_nofile(lim.rlim_max, lim.rlim_max) {
        return Some(u64::from(lim.rlim_max));
    }
    Some(u64::from(lim.rlim_cur))
}

/// Raises the soft limit on open files: nothing to raise off Unix.
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// The open-file limits (soft in `rlim_cur`, hard in `rlim_max`).
#[cfg(unix)]
#[allow(unsafe_code)]
fn nofile() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a live local.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim)
}

/// Sets the open-file limits; whether the kernel took them.
#[cfg(unix)]
#[allow(unsafe_code)]
fn set_nofile(soft: libc::rlim_t, hard: libc::rlim_t) -> bool {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit through a pointer to a live local.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::useless_conversion)]
    fn the_soft_limit_rises_to_the_hard_one() {
        let before = nofile().unwrap_or_else(|| panic!("getrlimit failed"));
        let hard = before.rlim_max;
        // Start below the hard limit, as a process under a default of 1,024
        // does. Only lowered to one below it, and only when it is higher, so
        // that the other tests of this process, opening files meanwhile, never
        // meet a lower limit than they started with.
        let below = hard.saturating_sub(1);
        if before.rlim_cur > below {
            assert!(set_nofile(below, hard));
        }
        assert_eq!(raise_open_files_limit(), Some(u64::from(hard)));
        let now = nofile().unwrap_or_else(|| panic!("getrlimit failed"));
        assert_eq!((now.rlim_cur, now.rlim_max), (hard, hard));
    }
}
