//! The workloads and what is measured of them, the same on every system.

use super::*;

pub(crate) type Outcome = Result<(), String>;
pub(crate) type RunFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;
/// Starts one run of a workload and resolves when it has ended and its
/// result was checked.
pub(crate) type Runner = Arc<dyn Fn() -> RunFuture + Send + Sync>;

/// The workflow shapes, the same on every system.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Shape {
    Three,
    Chain40,
    FanOut,
    /// A trigger, a step that waits for an event from outside, a step.
    Wait,
}

impl Shape {
    pub(crate) fn expected(self) -> i64 {
        match self {
            Shape::Three => 4,
            Shape::Chain40 => 41,
            Shape::FanOut => 2000,
            Shape::Wait => 3,
        }
    }

    pub(crate) fn nodes(self) -> usize {
        match self {
            Shape::Three => 4,
            Shape::Chain40 => 41,
            Shape::FanOut => 1002,
            Shape::Wait => 3,
        }
    }

    pub(crate) fn dagrs_name(self) -> &'static str {
        match self {
            Shape::Three => "three",
            Shape::Chain40 => "chain40",
            Shape::FanOut => "fanout1000",
            Shape::Wait => "wait",
        }
    }
}

/// What is measured, with its bounds: a fixed count of runs, how many are in
/// flight at once, and a time limit after which the loop stops early.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Measure {
    ThreeLatency,
    ThreeThroughput,
    Chain40,
    FanOut,
    /// Runs of the wait workload started until each waits, 16 callers.
    WaitStarts,
    /// Waiting runs resumed until each ended, 16 callers.
    WaitResumes,
    /// The time from a resume to its run's end.
    WaitLatency,
}

/// The peers' rounds: the wait workload is measured apart
/// ([`measure_wait`]), its three figures from one pass.
pub(crate) const MEASURES: [Measure; 4] = [
    Measure::ThreeLatency,
    Measure::ThreeThroughput,
    Measure::Chain40,
    Measure::FanOut,
];

impl Measure {
    pub(crate) fn shape(self) -> Shape {
        match self {
            Measure::ThreeLatency | Measure::ThreeThroughput => Shape::Three,
            Measure::Chain40 => Shape::Chain40,
            Measure::FanOut => Shape::FanOut,
            Measure::WaitStarts | Measure::WaitResumes | Measure::WaitLatency => Shape::Wait,
        }
    }

    /// (runs, in flight, time limit) of one round; for the wait workload
    /// the time limit is that of each of its two phases.
    pub(crate) fn budget(self, quick: bool) -> (usize, usize, Duration) {
        let (runs, in_flight, limit) = match self {
            Measure::ThreeLatency => (300, 1, 60),
            Measure::ThreeThroughput => (2000, 200, 120),
            Measure::Chain40 => (50, 1, 60),
            Measure::FanOut => (10, 1, 120),
            Measure::WaitStarts | Measure::WaitResumes | Measure::WaitLatency => {
                (WAITING_RUNS, WAIT_CALLERS, 90)
            }
        };
        let runs = if quick { (runs / 10).max(2) } else { runs };
        (runs, in_flight, Duration::from_secs(limit))
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Measure::ThreeLatency => "3 steps, one run at a time: median latency (p95)",
            Measure::ThreeThroughput => "3 steps, 200 runs in flight: runs/s",
            Measure::Chain40 => "40-step chain: median time of one run",
            Measure::FanOut => "fan-out to 1,000 and join: median time of one run",
            Measure::WaitStarts => "starts: runs/s until each waits",
            Measure::WaitResumes => "resumes: runs/s until each ended",
            Measure::WaitLatency => "from a resume to the run's end: median (p95)",
        }
    }

    pub(crate) fn higher_is_better(self) -> bool {
        matches!(
            self,
            Measure::ThreeThroughput | Measure::WaitStarts | Measure::WaitResumes
        )
    }
}

/// How many runs of the wait workload wait at once, in one round.
pub(crate) const WAITING_RUNS: usize = 10_000;

/// How many callers start, and then resume, the waiting runs.
pub(crate) const WAIT_CALLERS: usize = 16;

/// What a caller keeps of a waiting run to resume it.
pub(crate) enum Held {
    /// ConcertMaster: the run, whose wait key is [`wake_key`] of it.
    Run(RunId),
    /// Restate: the workflow's key and the awakeable its run waits on.
    Awakeable { key: String, id: String },
    /// n8n: the URL that resumes the execution's Wait node.
    ResumeUrl(String),
}

/// The second half of a call of the wait workload: resolves once its
/// effect is seen (a started run waits, a resumed run ended).
pub(crate) type Watch<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// The first half: resolves once the system took the call (the run is
/// stored, the event delivered), with the watch of its effect.
pub(crate) type Call<T> = Pin<Box<dyn Future<Output = Result<Watch<T>, String>> + Send>>;

/// The two calls of the wait workload on one system: start a run, and
/// resume one (its result checked when it ends).
#[derive(Clone)]
pub(crate) struct Waiter {
    pub(crate) start: Arc<dyn Fn() -> Call<Held> + Send + Sync>,
    pub(crate) resume: Arc<dyn Fn(Held) -> Call<()> + Send + Sync>,
}

/// How a peer behind HTTP runs the wait workload.
#[derive(Clone)]
pub(crate) enum PeerWait {
    /// A Restate workflow whose run waits on an awakeable: its id is read
    /// through a shared handler, the awakeable resolved through the
    /// ingress, the result read by attaching to the workflow.
    Restate { base: String },
    /// An n8n workflow that answers its webhook with the execution's
    /// resume URL, then waits in a Wait node resumed through that URL,
    /// which answers once the execution ended.
    N8n { base: String },
}

/// What one round of one measure on one system gave.
#[derive(Default, Clone)]
pub(crate) struct Samples {
    pub(crate) latencies: Vec<Duration>,
    /// Runs per second of each round (throughput measures).
    pub(crate) rates: Vec<f64>,
    pub(crate) runs: usize,
    pub(crate) failure: Option<String>,
}

pub(crate) fn failed(why: impl Into<String>) -> Samples {
    Samples {
        failure: Some(why.into()),
        ..Samples::default()
    }
}
