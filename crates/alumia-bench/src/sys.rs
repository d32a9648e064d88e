//! What the process can tell about itself: CPU pinning, per-thread CPU time,
//! peak RSS, the core count and the commit.

use std::collections::BTreeMap;
use std::time::Duration;

/// Pins the calling thread to one CPU; false when the OS refused.
pub fn pin_current(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// CPU time spent so far by each group of this process's threads.
///
/// Groups come from the thread name (`/proc/self/task/*/comm`): `load` (the
/// load generator's runtime), `server` (the servers' runtime), `sqlite`
/// (sqlx's one worker thread per SQLite connection) and `other` (the main
/// thread, blocking-pool threads). Time is the first field of `schedstat`
/// (nanoseconds on a CPU). Threads that exited are not counted.
pub fn cpu_by_group() -> BTreeMap<&'static str, Duration> {
    let mut groups = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return groups;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|f| f.parse::<u64>().ok())
            })
            .unwrap_or(0);
        *groups
            .entry(group_of(comm.trim()))
            .or_insert(Duration::ZERO) += Duration::from_nanos(ns);
    }
    groups
}

fn group_of(comm: &str) -> &'static str {
    if comm.starts_with(crate::LOAD_THREAD) {
        "load"
    } else if comm.starts_with(crate::SERVER_THREAD) {
        "server"
    } else if comm.starts_with("sqlx-sqlite") {
        "sqlite"
    } else {
        "other"
    }
}

/// The difference `after - before`, group by group.
pub fn cpu_delta(
    before: &BTreeMap<&'static str, Duration>,
    after: &BTreeMap<&'static str, Duration>,
) -> BTreeMap<&'static str, Duration> {
    after
        .iter()
        .map(|(k, v)| {
            (
                *k,
                v.saturating_sub(before.get(k).copied().unwrap_or_default()),
            )
        })
        .collect()
}

/// `VmHWM` (peak resident set) from `/proc/self/status`, as printed there.
pub fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `git describe --always --dirty` of the working directory, or `ALUMIA_BENCH_COMMIT`.
pub fn commit() -> String {
    if let Ok(c) = std::env::var("ALUMIA_BENCH_COMMIT") {
        return c;
    }
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The CPUs each thread group may run on (`Cpus_allowed_list`), to show the pinning.
pub fn affinity_by_group() -> BTreeMap<&'static str, std::collections::BTreeSet<String>> {
    let mut groups: BTreeMap<&'static str, std::collections::BTreeSet<String>> = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return groups;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let cpus = std::fs::read_to_string(dir.join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Cpus_allowed_list:"))
                    .map(|l| {
                        l.trim_start_matches("Cpus_allowed_list:")
                            .trim()
                            .to_string()
                    })
            })
            .unwrap_or_default();
        groups
            .entry(group_of(comm.trim()))
            .or_default()
            .insert(cpus);
    }
    groups
}

/// `/proc/loadavg`'s three load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// `MemTotal` from `/proc/meminfo`, as printed there.
pub fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(|l| l.trim_start_matches("MemTotal:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn process_cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`, which may hold spaces: state is field 3,
            // utime 14 and stime 15.
            let rest = &s[s.rfind(')')? + 1..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

/// Clock ticks per second (`getconf CLK_TCK`), 100 when unknown.
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Raises the soft open-file limit to the hard one; returns (before, now).
/// Children inherit it.
pub fn raise_nofile() -> (u64, u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let soft = before.current.unwrap_or(u64::MAX);
    if before.current.is_some() && before.current != before.maximum {
        let raised = rustix::process::Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    (soft, now)
}
