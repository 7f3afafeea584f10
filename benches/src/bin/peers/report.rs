//! The markdown report: medians, ratios, the targets and the machine.

use super::*;

pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(index).copied()
}

pub(crate) fn median_f64(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// The figure compared across systems: seconds (lower is better) or runs/s.
pub(crate) fn headline(measure: Measure, samples: &Samples) -> Option<f64> {
    if samples.failure.is_some() {
        return None;
    }
    if measure.higher_is_better() {
        median_f64(&samples.rates)
    } else {
        let mut sorted = samples.latencies.clone();
        sorted.sort();
        quantile(&sorted, 0.5).map(|d| d.as_secs_f64())
    }
}

pub(crate) fn duration_text(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.1} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

pub(crate) fn cell(measure: Measure, samples: &Samples) -> String {
    if let Some(why) = &samples.failure {
        let short: String = why.chars().take(80).collect();
        return format!("failed: {}", short.replace('|', "/"));
    }
    match headline(measure, samples) {
        None => "–".into(),
        Some(rate) if measure.higher_is_better() => format!("{rate:.0} runs/s"),
        Some(seconds) if matches!(measure, Measure::ThreeLatency | Measure::WaitLatency) => {
            let mut sorted = samples.latencies.clone();
            sorted.sort();
            let p95 = quantile(&sorted, 0.95).map_or(0.0, |d| d.as_secs_f64());
            format!("{} ({})", duration_text(seconds), duration_text(p95))
        }
        Some(seconds) => duration_text(seconds),
    }
}

/// ConcertMaster / peer, read so that above 1 means ConcertMaster is ahead:
/// runs/s divided, times inverted.
pub(crate) fn ratio(measure: Measure, ours: &Samples, theirs: &Samples) -> String {
    match (headline(measure, ours), headline(measure, theirs)) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
            let ahead = if measure.higher_is_better() {
                a / b
            } else {
                b / a
            };
            format!("{ahead:.1}×")
        }
        _ => "–".into(),
    }
}

pub(crate) fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or("unknown".into(), |kb| format!("{} GiB", kb / 1024 / 1024));
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|l| l.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown OS".into());
    format!(
        "{model}, {cores} cores, {memory}; {os}, Linux {}; {}; node {}",
        command_line("uname", &["-r"]),
        command_line("rustc", &["--version"]),
        command_line("node", &["--version"]),
    )
}

pub(crate) type Table = BTreeMap<(Measure, &'static str), Samples>;

pub(crate) fn write_results(
    options: &Options,
    subjects: &[Subject],
    table: &Table,
    vacuumed: bool,
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let _ = writeln!(out, "# ConcertMaster beside its peers\n");
    let _ = writeln!(
        out,
        "Measured {date} with `{}` ({} rounds{}; systems alternate within each round).\n",
        options.command,
        options.rounds,
        if options.quick { ", quick" } else { "" }
    );
    let _ = writeln!(out, "Machine: {}.\n", machine());
    let _ = writeln!(
        out,
        "Every system runs the same three shapes, each step adding one to a number \
         (the peers' result checked on every run; ConcertMaster's result checked \
         before measuring, then every run checked to succeed, since reading a \
         run's outputs is a store read the peers do not pay): a trigger then 3 \
         steps; a trigger then \
         40 steps; a trigger fanning out to 1,000 steps joined by one. ConcertMaster \
         runs inside the benchmark process, as hosts embed it; Restate and n8n are \
         servers on 127.0.0.1 reached over HTTP by the same client; dagrs runs in a \
         process of its own. Ratios are ConcertMaster against the peer, above 1× \
         where ConcertMaster is ahead (runs/s divided, times inverted).\n"
    );
    let _ = writeln!(
        out,
        "Durability as each system ships it: ConcertMaster on SQLite commits every \
         step to one file in WAL mode (a step without side effects, as all of these \
         are, with the run's next write or its settling), as it ships with `synchronous = \
         FULL` (every commit synced: safe across a power loss) and, beside it, with \
         `synchronous = NORMAL` (safe across a process crash; a power loss may drop \
         the last commits); every write of a run's driver is fenced by its lease's \
         epoch; on Postgres with the server's `fsync` and `synchronous_commit` on; Restate \
         journals every step in its own log and RocksDB (its defaults); n8n stores \
         each execution in SQLite (its defaults). dagrs and ConcertMaster in memory \
         persist nothing; ConcertMaster's in-memory store keeps the runs in flight \
         and the {KEEP_ENDED_RUNS} that ended last, with their node records \
         (`InMemoryStore::keep_ended_runs`), as a long-running host would.\n"
    );
    if vacuumed {
        let _ = writeln!(
            out,
            "This machine's PostgreSQL runs with autovacuum off, so the harness does its \
             upkeep: `VACUUM (ANALYZE)` of the benchmark's schema after every Postgres \
             measure, outside the timings (without it the 3-step latency tripled over \
             three rounds as dead rows piled up).\n"
        );
    }
    for (title, durable) in [
        ("In memory (nothing persisted)", false),
        ("Durable (every step committed)", true),
    ] {
        let ours: Vec<&Subject> = subjects
            .iter()
            .filter(|s| s.durable == durable && s.name.starts_with("ConcertMaster"))
            .collect();
        let peers: Vec<&Subject> = subjects
            .iter()
            .filter(|s| s.durable == durable && !s.name.starts_with("ConcertMaster"))
            .collect();
        if ours.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {title}\n");
        let header = table_header(&mut out, &ours, &peers);
        for measure in MEASURES {
            let get = |s: &Subject| table.get(&(measure, s.name)).cloned().unwrap_or_default();
            let mut row = vec![measure.title().to_string()];
            row.extend(ours.iter().chain(&peers).map(|s| cell(measure, &get(s))));
            for o in &ours {
                for p in &peers {
                    row.push(ratio(measure, &get(o), &get(p)));
                }
            }
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let mut row = vec!["time per node, 40-step chain / fan-out (run time ÷ nodes)".to_string()];
        for s in ours.iter().chain(&peers) {
            let per = |measure: Measure| {
                table
                    .get(&(measure, s.name))
                    .and_then(|samples| headline(measure, samples))
                    .map_or("–".to_string(), |secs| {
                        duration_text(secs / measure.shape().nodes() as f64)
                    })
            };
            row.push(format!(
                "{} / {}",
                per(Measure::Chain40),
                per(Measure::FanOut)
            ));
        }
        row.resize(header.len(), String::new());
        let _ = writeln!(out, "| {} |\n", row.join(" | "));
    }
    write_wait_section(&mut out, subjects, table, options.rounds);
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(out, "{}", targets(table));
    let runs: usize = table.values().map(|s| s.runs).sum();
    let _ = writeln!(out, "{runs} runs measured in all.\n");
    let _ = writeln!(
        out,
        "Where the time goes, what was changed for these figures and what is \
         left: [README.md](README.md#where-the-time-goes)."
    );
    std::fs::write(&options.out, out)
}

/// Writes a table's header: the workload, each system, then each of ours
/// against each peer; returns its cells.
pub(crate) fn table_header(out: &mut String, ours: &[&Subject], peers: &[&Subject]) -> Vec<String> {
    use std::fmt::Write as _;
    let mut header = vec!["workload".to_string()];
    header.extend(ours.iter().chain(peers).map(|s| s.name.to_string()));
    for o in ours {
        for p in peers {
            header.push(format!("{} / {}", short_name(o.name), p.name));
        }
    }
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    header
}

/// The wait workload's table: durable systems that ran it.
pub(crate) fn write_wait_section(
    out: &mut String,
    subjects: &[Subject],
    table: &Table,
    rounds: usize,
) {
    use std::fmt::Write as _;
    let ran = |s: &&Subject| s.durable && table.contains_key(&(Measure::WaitStarts, s.name));
    let ours: Vec<&Subject> = subjects
        .iter()
        .filter(ran)
        .filter(|s| s.name.starts_with("ConcertMaster"))
        .collect();
    let peers: Vec<&Subject> = subjects
        .iter()
        .filter(ran)
        .filter(|s| !s.name.starts_with("ConcertMaster"))
        .collect();
    if ours.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Waiting for a person\n");
    let _ = writeln!(
        out,
        "Each run starts, waits for an event from outside, is resumed with it and \
         ends with one more step (x = 1 + 1 + 1, checked on every run). Up to \
         {WAITING_RUNS} runs are started by {WAIT_CALLERS} concurrent callers, as a \
         host's request handlers would: a call returns once the system took it (the \
         run stored), and a watch of its own sees the run wait; starts/s counts until \
         all wait. Then all are resumed by {WAIT_CALLERS} callers the same way (a \
         call returns once the event is delivered), each watch seeing its run end; \
         resumes/s counts until all ended, and a run's latency runs from its resume \
         call to its end seen. Each phase stops making new calls after {} s (a \
         system slower than that waits with fewer runs). ConcertMaster: \
         `Engine::start`, watched by `settled`; `Engine::resume`, watched by \
         `finished`. Restate: a workflow whose run creates an awakeable and hands its \
         id to a shared handler through a durable promise; a start is `/run/send`, \
         watched by that handler; a resume resolves the awakeable through the \
         ingress (`/restate/awakeables/ID/resolve`), watched by attaching to the \
         workflow for its result. n8n: a webhook answered with the execution's \
         resume URL (by a Respond to Webhook node, just before the Wait node stores \
         its wait), and a Wait node resumed through that URL, whose answer comes \
         once the execution ended (n8n has no call that returns sooner), then a Set \
         node.\n",
        Measure::WaitStarts.budget(false).2.as_secs()
    );
    let header = table_header(out, &ours, &peers);
    let get =
        |measure: Measure, s: &Subject| table.get(&(measure, s.name)).cloned().unwrap_or_default();
    let mut row = vec!["runs waiting at once, per round".to_string()];
    row.extend(ours.iter().chain(&peers).map(|s| {
        let starts = get(Measure::WaitStarts, s);
        format!("{}", starts.runs / rounds.max(1))
    }));
    row.resize(header.len(), String::new());
    let _ = writeln!(out, "| {} |", row.join(" | "));
    for measure in [
        Measure::WaitStarts,
        Measure::WaitResumes,
        Measure::WaitLatency,
    ] {
        let mut row = vec![measure.title().to_string()];
        row.extend(
            ours.iter()
                .chain(&peers)
                .map(|s| cell(measure, &get(measure, s))),
        );
        for o in &ours {
            for p in &peers {
                row.push(ratio(measure, &get(measure, o), &get(measure, p)));
            }
        }
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let _ = writeln!(out);
}

pub(crate) fn short_name(name: &str) -> &str {
    name.strip_prefix("ConcertMaster, ").unwrap_or(name)
}

pub(crate) fn targets(table: &Table) -> String {
    let figure = |measure: Measure, name: &str| {
        table
            .get(&(measure, name))
            .and_then(|samples| headline(measure, samples))
    };
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "not measured",
    };
    let mut lines = Vec::new();
    let per_node = [Measure::Chain40, Measure::FanOut]
        .into_iter()
        .filter_map(|m| figure(m, "ConcertMaster, in memory").map(|s| s / m.shape().nodes() as f64))
        .fold(None::<f64>, |worst, v| Some(worst.map_or(v, |w| w.max(v))));
    lines.push(format!(
        "- In memory, under 2 µs per node: {} ({}).",
        verdict(per_node.map(|s| s < 2e-6)),
        per_node.map_or("–".into(), |s| format!(
            "worst shape {}",
            duration_text(s)
        ))
    ));
    let sqlite_latency = figure(Measure::ThreeLatency, SQLITE_FULL);
    lines.push(format!(
        "- SQLite FULL, 3 steps under 1 ms median: {} ({}).",
        verdict(sqlite_latency.map(|s| s < 1e-3)),
        sqlite_latency.map_or("–".into(), duration_text)
    ));
    let restate = figure(Measure::ThreeThroughput, "Restate");
    for (name, times) in [(SQLITE_FULL, 10.0), (POSTGRES, 3.0)] {
        let ours = figure(Measure::ThreeThroughput, name);
        let ratio = ours.zip(restate).map(|(a, b)| a / b);
        lines.push(format!(
            "- {}, at least {times}× Restate's throughput: {} ({}).",
            short_name(name),
            verdict(ratio.map(|r| r >= times)),
            ratio.map_or("–".into(), |r| format!("{r:.1}×"))
        ));
    }
    let restate = figure(Measure::WaitResumes, "Restate");
    for name in [SQLITE_FULL, POSTGRES] {
        let resumes = figure(Measure::WaitResumes, name);
        let starts = figure(Measure::WaitStarts, name);
        lines.push(format!(
            "- {}, waiting runs resumed at least as fast as started: {} ({} resumes/s, {} starts/s).",
            short_name(name),
            verdict(resumes.zip(starts).map(|(r, s)| r >= s)),
            resumes.map_or("–".into(), |r| format!("{r:.0}")),
            starts.map_or("–".into(), |s| format!("{s:.0}"))
        ));
        let ratio = resumes.zip(restate).map(|(a, b)| a / b);
        lines.push(format!(
            "- {}, at least 10× Restate's resumes: {} ({}).",
            short_name(name),
            verdict(ratio.map(|r| r >= 10.0)),
            ratio.map_or("–".into(), |r| format!("{r:.1}×"))
        ));
    }
    lines.join("\n") + "\n"
}
