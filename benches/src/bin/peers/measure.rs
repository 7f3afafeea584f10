//! Running a workload many times, one after another or many at once.

use super::*;

pub(crate) async fn sequential(runner: Runner, runs: usize, limit: Duration) -> Samples {
    let began = Instant::now();
    let mut samples = Samples::default();
    while samples.runs < runs && began.elapsed() < limit {
        let start = Instant::now();
        if let Err(why) = runner().await {
            samples.failure = Some(why);
            break;
        }
        samples.latencies.push(start.elapsed());
        samples.runs += 1;
    }
    samples
}

pub(crate) async fn concurrent(
    runner: Runner,
    runs: usize,
    in_flight: usize,
    limit: Duration,
) -> Samples {
    let began = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut lanes = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (runner, next) = (Arc::clone(&runner), Arc::clone(&next));
        lanes.push(tokio::spawn(async move {
            let mut done = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < runs && began.elapsed() < limit {
                runner().await?;
                done += 1;
            }
            Ok::<usize, String>(done)
        }));
    }
    let mut samples = Samples::default();
    for lane in lanes {
        match lane.await {
            Ok(Ok(done)) => samples.runs += done,
            Ok(Err(why)) => samples.failure = Some(why),
            Err(panic) => samples.failure = Some(panic.to_string()),
        }
    }
    let elapsed = began.elapsed();
    if samples.failure.is_none() {
        samples
            .rates
            .push(samples.runs as f64 / elapsed.as_secs_f64());
    }
    samples
}

/// The three figures of the wait workload ([`Measure::WaitStarts`],
/// [`Measure::WaitResumes`], [`Measure::WaitLatency`]) from one pass.
/// `runs` are started by [`WAIT_CALLERS`] callers, as a host's request
/// handlers would: each call returns once the system took it, and a
/// watch of its own sees the run wait; the phase ends when all wait. Then
/// all are resumed the same way, each watch seeing its run end; a run's
/// latency is from its resume call to its end seen.
pub(crate) async fn measure_wait(waiter: &Waiter, runs: usize, limit: Duration) -> [Samples; 3] {
    let began = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut lanes = Vec::with_capacity(WAIT_CALLERS);
    for _ in 0..WAIT_CALLERS {
        let (start, next) = (Arc::clone(&waiter.start), Arc::clone(&next));
        lanes.push(tokio::spawn(async move {
            let mut watches = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < runs && began.elapsed() < limit {
                match start().await {
                    Ok(watch) => watches.push(tokio::spawn(watch)),
                    Err(why) => return (watches, Some(why)),
                }
            }
            (watches, None)
        }));
    }
    let mut starts = Samples::default();
    let waiting = gather(lanes, &mut starts.failure).await;
    starts.runs = waiting.len();
    starts
        .rates
        .push(waiting.len() as f64 / began.elapsed().as_secs_f64());

    // Every run that waits is resumed, whatever the first phase's end, so
    // none is left waiting into the next round.
    let began = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(waiting));
    let mut lanes = Vec::with_capacity(WAIT_CALLERS);
    for _ in 0..WAIT_CALLERS {
        let (resume, queue) = (Arc::clone(&waiter.resume), Arc::clone(&queue));
        lanes.push(tokio::spawn(async move {
            let mut watches = Vec::new();
            loop {
                let held = match queue.lock() {
                    Ok(mut queue) => queue.pop(),
                    Err(_) => None,
                };
                let Some(held) = held else { break };
                if began.elapsed() > limit * 2 {
                    return (watches, Some(format!("resumes took over {:?}", limit * 2)));
                }
                let at = Instant::now();
                match resume(held).await {
                    Ok(watch) => {
                        watches.push(tokio::spawn(
                            async move { watch.await.map(|()| at.elapsed()) },
                        ))
                    }
                    Err(why) => return (watches, Some(why)),
                }
            }
            (watches, None)
        }));
    }
    let mut resumes = Samples::default();
    let mut latency = Samples {
        latencies: gather(lanes, &mut resumes.failure).await,
        ..Samples::default()
    };
    resumes.runs = latency.latencies.len();
    latency.runs = resumes.runs;
    resumes
        .rates
        .push(resumes.runs as f64 / began.elapsed().as_secs_f64());
    latency.failure = resumes.failure.clone();
    if starts.failure.is_some() {
        starts.rates.clear();
    }
    if resumes.failure.is_some() {
        resumes.rates.clear();
    }
    [starts, resumes, latency]
}

/// A caller's watches, and why it stopped early if it did.
pub(crate) type Lane<T> = tokio::task::JoinHandle<(
    Vec<tokio::task::JoinHandle<Result<T, String>>>,
    Option<String>,
)>;

/// What the watches of every lane saw, once all ended; the first failure
/// of a caller or a watch goes to `failure`.
pub(crate) async fn gather<T>(lanes: Vec<Lane<T>>, failure: &mut Option<String>) -> Vec<T> {
    let mut watches = Vec::new();
    for lane in lanes {
        match lane.await {
            Ok((mine, stopped)) => {
                watches.extend(mine);
                *failure = failure.take().or(stopped);
            }
            Err(panic) => *failure = Some(panic.to_string()),
        }
    }
    let mut seen = Vec::with_capacity(watches.len());
    for watch in watches {
        match watch.await {
            Ok(Ok(value)) => seen.push(value),
            Ok(Err(why)) => *failure = failure.take().or(Some(why)),
            Err(panic) => *failure = Some(panic.to_string()),
        }
    }
    seen
}
