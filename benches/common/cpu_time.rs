//! CPU time of the benchmark thread, shared by the benches (`#[path]`
//! included: a file under `benches/common/` is not a bench of its own).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `iters` times and returns the thread CPU time it took (or the
/// wall time with `LETHE_BENCH_WALL=1`).
pub fn timed<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let wall = std::env::var_os("LETHE_BENCH_WALL").is_some();
    let (c0, w0) = (thread_cpu(), Instant::now());
    for _ in 0..iters {
        black_box(f());
    }
    if wall {
        w0.elapsed()
    } else {
        thread_cpu() - c0
    }
}
