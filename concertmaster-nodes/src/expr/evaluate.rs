//! Where expressions are evaluated: on a small pool of threads of their
//! own, so that one that runs past its time limit costs the caller nothing
//! but the limit.
//!
//! jaq cannot be interrupted from outside. The caller waits for the result
//! up to the expression's time limit, then gives up on it (marks the job
//! abandoned) and starts a worker in place of the one left behind. The mark
//! is read by every `range` and between outputs, which ends the loops an
//! expression can make big by itself (`[range(1e12)]`); work that passes
//! through neither ends on its own, because an expression is finite: the
//! shape check refuses recursion and the library's endless loops.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use jaq_core::native::{v, Filter, Fun};
use jaq_core::{Ctx, Error, Exn, RunPtr, ValX, Vars};
use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};

use super::{Data, ExprError, MAX_OUTPUTS, MAX_RESULT_BYTES};

/// The stack an evaluation runs on. Values an expression builds may nest
/// deeply (`reduce range(1e5) as $i (.; [.])`) and jaq drops them
/// recursively. Reserved, not used: pages are touched as needed.
const EVAL_STACK: usize = 256 * 1024 * 1024;

/// Deepest result accepted, as serde_json accepts when it parses.
const MAX_RESULT_DEPTH: usize = 128;

/// How much of the output one evaluation returns.
#[derive(Clone, Copy)]
pub(super) enum Want {
    All,
    First,
}

/// Runs `filter` on `input` on an evaluator thread and waits up to `limit`.
pub(super) fn evaluate(
    filter: &Arc<jaq_core::Filter<Data>>,
    input: &Value,
    want: Want,
    limit: Duration,
) -> Result<Vec<Value>, ExprError> {
    let state = Arc::new(AtomicU8::new(RUNNING));
    let (done, result) = mpsc::sync_channel(1);
    let job = Job {
        filter: Arc::clone(filter),
        input: input.clone(),
        want,
        state: Arc::clone(&state),
        done,
    };
    let pool = pool()?;
    pool.submit(job);
    let gone = || ExprError::Eval {
        message: "the expression evaluator stopped".into(),
    };
    match result.recv_timeout(limit) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Whoever moves the job out of RUNNING first decides: the worker
            // finished it just now (its answer is on its way), or it is
            // given up on and its worker replaced.
            if state
                .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                pool.replace_stopped_worker();
                Err(ExprError::TimedOut { limit })
            } else {
                result.recv().unwrap_or_else(|_| Err(gone()))
            }
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(gone()),
    }
}

/// `range/3` as jaq's, stopping before each value once its job is
/// abandoned: the one library filter that makes many values out of few.
pub(super) fn stoppable_range() -> Fun<Data> {
    let range: Filter<RunPtr<Data>> = ("range", v(3), |mut cv| {
        let by = cv.0.pop_var();
        let to = cv.0.pop_var();
        let mut from: ValX<Val> = Ok(cv.0.pop_var());
        let ascending = by.partial_cmp(&Val::from(0isize));
        Box::new(std::iter::from_fn(move || {
            if stopped() {
                return Some(Err(Exn::from(Error::str(STOPPED))));
            }
            let x = match from.clone() {
                Ok(x) => x,
                err @ Err(_) => {
                    from = Ok(to.clone());
                    return Some(err);
                }
            };
            let more = match ascending {
                Some(std::cmp::Ordering::Greater) => x < to,
                Some(std::cmp::Ordering::Less) => x > to,
                _ => x != to,
            };
            more.then(|| std::mem::replace(&mut from, (x + by.clone()).map_err(Exn::from)))
        }))
    });
    jaq_core::native::run::<Data>(range)
}

const STOPPED: &str = "stopped: the expression ran past its time limit";

/// A job's states: being evaluated, finished, given up on by its caller.
const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

thread_local! {
    /// The state of the job this thread is running.
    static STOP: RefCell<Option<Arc<AtomicU8>>> = const { RefCell::new(None) };
}

fn stopped() -> bool {
    STOP.with(|stop| {
        stop.borrow()
            .as_ref()
            .is_some_and(|state| state.load(Ordering::Relaxed) == ABANDONED)
    })
}

struct Job {
    filter: Arc<jaq_core::Filter<Data>>,
    input: Value,
    want: Want,
    state: Arc<AtomicU8>,
    done: mpsc::SyncSender<Result<Vec<Value>, ExprError>>,
}

impl Job {
    /// Evaluates the job and answers its caller; true when the caller had
    /// given up on it (a worker was started in this one's place).
    fn run(self) -> bool {
        STOP.with(|stop| *stop.borrow_mut() = Some(Arc::clone(&self.state)));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run_filter(&self.filter, &self.input, self.want, &self.state)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ExprError::Eval {
                message: format!("the evaluator failed: {message}"),
            })
        });
        STOP.with(|stop| *stop.borrow_mut() = None);
        let abandoned = self
            .state
            .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_err();
        // A caller that gave up reads nothing; this send then fails.
        let _ = self.done.send(outcome);
        abandoned
    }
}

fn run_filter(
    filter: &jaq_core::Filter<Data>,
    input: &Value,
    want: Want,
    state: &AtomicU8,
) -> Result<Vec<Value>, ExprError> {
    let input = to_val(input)?;
    let ctx = Ctx::<Data>::new(&filter.lut, Vars::new([]));
    let mut out = Vec::new();
    let mut budget = MAX_RESULT_BYTES;
    for value in filter.id.run((ctx, input)) {
        if state.load(Ordering::Relaxed) == ABANDONED {
            return Err(ExprError::Eval {
                message: STOPPED.into(),
            });
        }
        let value = value.map_err(super::eval_error)?;
        if out.len() == MAX_OUTPUTS {
            return Err(ExprError::TooManyOutputs);
        }
        out.push(from_val(&value, 0, &mut budget)?);
        if matches!(want, Want::First) {
            break;
        }
    }
    Ok(out)
}

/// `value` as a jq value, read from the borrowed JSON: the job already
/// holds its own copy of the input.
fn to_val(value: &Value) -> Result<Val, ExprError> {
    serde::Deserialize::deserialize(value).map_err(|err| ExprError::Eval {
        message: format!("input is not representable: {err}"),
    })
}

/// A jq value as JSON, charging its size against `budget` as it goes: a
/// value built by sharing (`[., .] | [., .] | ...`) is small in memory and
/// exponentially large written out.
fn from_val(value: &Val, depth: usize, budget: &mut usize) -> Result<Value, ExprError> {
    let not_json = |what: &str| ExprError::Eval {
        message: format!("result is not JSON: {what}"),
    };
    if depth > MAX_RESULT_DEPTH {
        return Err(not_json(&format!(
            "nested deeper than {MAX_RESULT_DEPTH} levels"
        )));
    }
    Ok(match value {
        Val::Null => {
            charge(budget, 4)?;
            Value::Null
        }
        Val::Bool(b) => {
            charge(budget, 5)?;
            Value::Bool(*b)
        }
        Val::Num(n) => {
            charge(budget, 8)?;
            number(n).ok_or_else(|| not_json(&n.to_string()))?
        }
        Val::TStr(s) => {
            charge(budget, s.len() + 2)?;
            Value::String(String::from_utf8_lossy(s).into_owned())
        }
        Val::BStr(_) => return Err(not_json("a byte string")),
        Val::Arr(items) => {
            charge(budget, 2)?;
            let mut out = Vec::with_capacity(items.len().min(1024));
            for item in items.iter() {
                charge(budget, 1)?;
                out.push(from_val(item, depth + 1, budget)?);
            }
            Value::Array(out)
        }
        Val::Obj(pairs) => {
            charge(budget, 2)?;
            let mut out = Map::new();
            for (key, item) in pairs.iter() {
                let Val::TStr(key) = key else {
                    return Err(not_json(&format!(
                        "an object key {key} that is not a string"
                    )));
                };
                charge(budget, key.len() + 4)?;
                out.insert(
                    String::from_utf8_lossy(key).into_owned(),
                    from_val(item, depth + 1, budget)?,
                );
            }
            Value::Object(out)
        }
    })
}

fn charge(budget: &mut usize, bytes: usize) -> Result<(), ExprError> {
    *budget = budget.checked_sub(bytes).ok_or(ExprError::ResultTooLarge)?;
    Ok(())
}

/// A jq number as JSON: NaN and the infinities have no JSON form.
fn number(n: &Num) -> Option<Value> {
    match n {
        Num::Int(i) => Some(Value::Number(Number::from(*i as i64))),
        Num::Float(f) => Number::from_f64(*f).map(Value::Number),
        Num::BigInt(_) | Num::Dec(_) => serde_json::from_str::<Number>(&n.to_string())
            .ok()
            .map(Value::Number),
    }
}

/// Evaluator threads: as many as the machine has cores, plus one for each
/// evaluation that was given up on and has not ended yet.
struct Pool {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

fn pool() -> Result<&'static Pool, ExprError> {
    static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool = Pool {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        };
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..workers {
            spawn_worker().map_err(|err| err.to_string())?;
        }
        Ok(pool)
    })
    .as_ref()
    .map_err(|err| ExprError::Eval {
        message: format!("could not start the expression evaluator: {err}"),
    })
}

fn spawn_worker() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jq-eval".into())
        .stack_size(EVAL_STACK)
        .spawn(work)
        .map(drop)
}

/// A worker takes jobs until it runs one that was given up on: a worker
/// was started in its place then, so it leaves.
fn work() {
    let Ok(pool) = pool() else { return };
    loop {
        let job = {
            let Ok(mut queue) = pool.queue.lock() else {
                return;
            };
            loop {
                if let Some(job) = queue.pop_front() {
                    break job;
                }
                queue = match pool.ready.wait(queue) {
                    Ok(queue) => queue,
                    Err(_) => return,
                };
            }
        };
        if job.run() {
            return;
        }
    }
}

impl Pool {
    fn submit(&self, job: Job) {
        // A poisoned queue only means a worker panicked holding the lock;
        // the queue itself is intact.
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        queue.push_back(job);
        drop(queue);
        self.ready.notify_one();
    }

    fn replace_stopped_worker(&self) {
        // Without a replacement the pool shrinks by one thread per
        // evaluation given up on; if none can start, the rest still serve.
        if let Err(err) = spawn_worker() {
            tracing::warn!(error = %err, "could not start a jq evaluator in place of a stopped one");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(value: &Value) -> Result<Value, ExprError> {
        from_val(&to_val(value)?, 0, &mut MAX_RESULT_BYTES.clone())
    }

    #[test]
    fn json_survives_the_trip_through_jq_values() {
        let value = json!({"a": [1, -2, 3.5, "x", null, true, {"b": []}], "c": "é"});
        assert_eq!(convert(&value).unwrap(), value);
    }

    #[test]
    fn shared_values_are_charged_for_every_copy() {
        let mut value = Val::from(String::from("0123456789"));
        for _ in 0..40 {
            value = [value.clone(), value].into_iter().collect();
        }
        let mut budget = MAX_RESULT_BYTES;
        assert_eq!(
            from_val(&value, 0, &mut budget),
            Err(ExprError::ResultTooLarge)
        );
    }
}
