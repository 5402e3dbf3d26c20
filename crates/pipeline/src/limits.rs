//! The process's limit on open files. A crawl holds a socket for every
//! connection it keeps open (up to `--keep-alive-per-host` per host, for 30 s
//! after their last response) and a file for every table of its stores:
//! more than the soft limit of 1,024 that many systems start a process with.

/// Raises the soft limit on open files to the hard limit (as Go's runtime
/// does for every program); returns the soft limit in force afterwards, or
/// `None` where it cannot be read.
#[cfg(unix)]
#[allow(unsafe_code)]
// `rlim_t` is `u64` on Linux, not on every Unix.
#[allow(clippy::useless_conversion)]
pub fn raise_open_files_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit through a pointer to a live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Some(u64::from(lim.rlim_cur))
}

/// Raises the soft limit on open files: nothing to raise off Unix.
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code, clippy::useless_conversion)]
    fn the_soft_limit_rises_to_the_hard_one() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_open_files_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let hard = lim.rlim_max;
        // Start below the hard limit, as a process under a default of 1,024 does.
        let low = libc::rlimit {
            rlim_cur: hard.min(512),
            rlim_max: hard,
        };
        // SAFETY: as in raise_open_files_limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        assert_eq!(raise_open_files_limit(), Some(u64::from(hard)));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, hard);
    }
}
