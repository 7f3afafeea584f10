//! jq expressions (the `jaq` interpreter): compiled once when a workflow is
//! published, evaluated per item while it runs.
//!
//! Expressions see only the value they are given: `env`, `$ENV`, `now`,
//! `input` and `halt` do not exist, and nothing in the library reaches
//! files or the network.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, Compiler};
use jaq_json::Val;
use serde_json::Value;

mod evaluate;

/// Longest expression accepted, in bytes: a bound on compile time and on
/// what a hostile definition can make the engine parse.
pub const MAX_EXPRESSION_LEN: usize = 16 * 1024;

/// Most values one evaluation may produce before it is stopped.
pub const MAX_OUTPUTS: usize = 100_000;

/// Largest result one evaluation may return, counted as the bytes of its
/// JSON: a value built by sharing (`[., .] | [., .] | ...`) is small while
/// it is evaluated and exponentially large written out.
pub const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// How long an evaluation may run unless [`Expr::with_time_limit`] says
/// otherwise. Workflow expressions take microseconds; this is a bound on
/// hostile ones, not a performance target.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);

/// Deepest nesting of an expression (parentheses, pipes, `if`, `reduce`,
/// ...). The interpreter walks an expression recursively, so depth is what
/// costs stack; a workflow needs a few levels, a hostile one thousands.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// The stack an expression is parsed on: large enough for the deepest
/// expression of [`MAX_EXPRESSION_LEN`] bytes, whose depth is only known
/// once it is parsed. Reserved, not used: pages are touched as needed.
const PARSE_STACK: usize = 256 * 1024 * 1024;

/// Standard filters that never end on their own or recurse without bound
/// (`repeat`, `while`, `until`; `recurse` with a filter that does not step
/// into the value): an expression runs on the engine's threads, with no way
/// to stop it but to let it finish.
const UNBOUNDED: [(&str, usize); 3] = [("repeat", 1), ("while", 2), ("until", 2)];

type Data = data::JustLut<Val>;

/// Standard filters an expression may not call: they read the process
/// environment or the clock (a run must compute the same on a retry).
/// `halt` stays defined (the library builds on it) and ends evaluation
/// with an error here, never the process.
const DENIED: [&str; 2] = ["env", "now"];

/// A compiled jq expression.
///
/// ```
/// use concertmaster_nodes::Expr;
/// use serde_json::json;
///
/// let expr = Expr::compile(".contacts | map(.email)")?;
/// let out = expr.eval_one(&json!({"contacts": [{"email": "a@acme.test"}]}))?;
/// assert_eq!(out, json!(["a@acme.test"]));
/// # Ok::<(), concertmaster_nodes::ExprError>(())
/// ```
pub struct Expr {
    code: String,
    filter: Arc<jaq_core::Filter<Data>>,
    time_limit: Duration,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.code).finish()
    }
}

/// Why an expression did not compile or failed on a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// The expression is not valid jq.
    #[error("jq expression does not compile: {message}")]
    Compile {
        /// What is wrong and where (byte offset).
        message: String,
    },
    /// Evaluating it raised an error (`error(...)`, a type error, ...).
    #[error("jq expression failed: {message}")]
    Eval {
        /// jq's error.
        message: String,
    },
    /// It produced more values than [`MAX_OUTPUTS`].
    #[error("jq expression produced more than {MAX_OUTPUTS} values")]
    TooManyOutputs,
    /// It produced no value where one was needed.
    #[error("jq expression produced no value")]
    NoOutput,
    /// It ran longer than its time limit and was given up on.
    #[error("jq expression ran longer than its limit of {limit:?} and was stopped")]
    TimedOut {
        /// The limit it ran past ([`Expr::with_time_limit`]).
        limit: Duration,
    },
    /// Its result is larger than [`MAX_RESULT_BYTES`] written as JSON.
    #[error("jq expression's result is larger than {MAX_RESULT_BYTES} bytes of JSON")]
    ResultTooLarge,
}

impl Expr {
    /// Compiles `code`.
    pub fn compile(code: &str) -> Result<Self, ExprError> {
        if code.len() > MAX_EXPRESSION_LEN {
            return Err(ExprError::Compile {
                message: format!(
                    "{} bytes, longer than the {MAX_EXPRESSION_LEN} allowed",
                    code.len()
                ),
            });
        }
        // Parsed and compiled on a thread of its own with a large stack:
        // the parser recurses once per level of nesting, and the nesting is
        // what is being checked.
        let filter = std::thread::Builder::new()
            .name("jq-compile".into())
            .stack_size(PARSE_STACK)
            .spawn({
                let code = code.to_string();
                move || compile_filter(&code)
            })
            .map_err(|err| ExprError::Compile {
                message: format!("could not start the expression compiler: {err}"),
            })?
            .join()
            .unwrap_or_else(|_| {
                Err(ExprError::Compile {
                    message: "the expression compiler failed".into(),
                })
            })?;
        Ok(Self {
            code: code.to_string(),
            filter: Arc::new(filter),
            time_limit: DEFAULT_TIME_LIMIT,
        })
    }

    /// Sets how long one evaluation may run ([`DEFAULT_TIME_LIMIT`] unless
    /// set). Past it the caller gets [`ExprError::TimedOut`]; the evaluation
    /// is stopped at its next `range` step or output, or left to end on its
    /// own on a thread of its own.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// The source code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Every value the expression produces for `input`.
    pub fn eval(&self, input: &Value) -> Result<Vec<Value>, ExprError> {
        evaluate::evaluate(&self.filter, input, evaluate::Want::All, self.time_limit)
    }

    /// The first value the expression produces for `input`.
    pub fn eval_one(&self, input: &Value) -> Result<Value, ExprError> {
        evaluate::evaluate(&self.filter, input, evaluate::Want::First, self.time_limit)?
            .pop()
            .ok_or(ExprError::NoOutput)
    }

    /// Whether the expression's first value is truthy for `input` (jq's
    /// rule: anything but `false` and `null`; no value counts as false).
    pub fn test(&self, input: &Value) -> Result<bool, ExprError> {
        match self.eval_one(input) {
            Ok(value) => Ok(!matches!(value, Value::Null | Value::Bool(false))),
            Err(ExprError::NoOutput) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// Checks `code`'s shape, then compiles it with the standard library less
/// what is denied.
fn compile_filter(code: &str) -> Result<jaq_core::Filter<Data>, ExprError> {
    check_shape(code)?;
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .filter(|(name, ..)| *name != "range")
        .chain([evaluate::stoppable_range()])
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, ..)| !DENIED.contains(name));
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code, path: () })
        .map_err(|errors| ExprError::Compile {
            message: errors
                .iter()
                .map(|(_, err)| load_error(code, err))
                .collect::<Vec<_>>()
                .join("; "),
        })?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| ExprError::Compile {
            message: errors
                .iter()
                .flat_map(|(_, undefined)| undefined.iter())
                .map(|(name, what)| {
                    let what = match what {
                        jaq_core::compile::Undefined::Filter(arity) => {
                            format!("filter {name}/{arity}")
                        }
                        jaq_core::compile::Undefined::Var => format!("variable {name}"),
                        jaq_core::compile::Undefined::Label => format!("label {name}"),
                        jaq_core::compile::Undefined::Mod => format!("module {name}"),
                        _ => format!("name {name}"),
                    };
                    format!("undefined {what} at byte {}", offset(code, name))
                })
                .collect::<Vec<_>>()
                .join("; "),
        })
}

/// Refuses what would make evaluation run away: nesting deeper than
/// [`MAX_EXPRESSION_DEPTH`], a definition that calls itself, a standard filter
/// that loops without bound. Syntax errors are left to the loader, which
/// says where they are. The loader parses the code again: the modules it
/// returns do not give the parsed term out.
fn check_shape(code: &str) -> Result<(), ExprError> {
    let Some(term) = jaq_core::load::parse(code, |p| p.term()) else {
        return Ok(());
    };
    let mut defining = Vec::new();
    shape(&term, 1, &mut defining).map_err(|message| ExprError::Compile { message })
}

type Term<'s> = jaq_core::load::parse::Term<&'s str>;

fn shape<'s>(
    term: &Term<'s>,
    depth: usize,
    defining: &mut Vec<(&'s str, usize)>,
) -> Result<(), String> {
    use jaq_core::load::lex::StrPart;
    use jaq_core::load::parse::{BinaryOp, Term as T};
    use jaq_core::path::Part;
    if depth > MAX_EXPRESSION_DEPTH {
        return Err(format!(
            "the expression nests more than {MAX_EXPRESSION_DEPTH} levels deep"
        ));
    }
    let next = depth + 1;
    let all = |terms: &mut dyn Iterator<Item = &Term<'s>>, defining: &mut Vec<(&'s str, usize)>| {
        for t in terms {
            shape(t, next, defining)?;
        }
        Ok(())
    };
    match term {
        T::Id | T::Recurse | T::Num(_) | T::Break(_) | T::Var(_) => Ok(()),
        T::Str(_, parts) => all(
            &mut parts.iter().filter_map(|part| match part {
                StrPart::Term(t) => Some(t),
                _ => None,
            }),
            defining,
        ),
        T::Arr(inner) => all(&mut inner.iter().map(|t| &**t), defining),
        T::Obj(pairs) => all(
            &mut pairs.iter().flat_map(|(k, v)| std::iter::once(k).chain(v)),
            defining,
        ),
        T::Neg(t) | T::Label(_, t) => shape(t, next, defining),
        T::BinOp(l, op, r) => {
            if let BinaryOp::Pipe(Some(pattern)) = op {
                pattern_shape(pattern, next, defining)?;
            }
            shape(l, next, defining)?;
            shape(r, next, defining)
        }
        T::Fold(_, xs, pattern, args) => {
            pattern_shape(pattern, next, defining)?;
            shape(xs, next, defining)?;
            all(&mut args.iter(), defining)
        }
        T::TryCatch(t, catch) => {
            shape(t, next, defining)?;
            all(&mut catch.iter().map(|t| &**t), defining)
        }
        T::IfThenElse(branches, otherwise) => {
            all(&mut branches.iter().flat_map(|(c, t)| [c, t]), defining)?;
            all(&mut otherwise.iter().map(|t| &**t), defining)
        }
        T::Def(defs, rest) => {
            for def in defs {
                defining.push((def.name, def.args.len()));
                let body = shape(&def.body, next, defining);
                defining.pop();
                body?;
            }
            shape(rest, next, defining)
        }
        T::Call(name, args) => {
            let arity = args.len();
            if defining.contains(&(*name, arity)) {
                return Err(format!(
                    "{name}/{arity} calls itself: recursive definitions are not allowed in workflow expressions"
                ));
            }
            let steps_into_value = |f: &Term<'_>| matches!(f, T::Path(base, path) if matches!(**base, T::Id) && !path.0.is_empty());
            let unbounded = UNBOUNDED.contains(&(*name, arity))
                || (*name == "recurse"
                    && (arity == 1 || arity == 2)
                    && !steps_into_value(&args[0]));
            if unbounded {
                return Err(format!(
                    "{name}/{arity} can loop without end and is not allowed in workflow expressions \
                     (recurse is, with a path into the value such as recurse(.children[]?))"
                ));
            }
            all(&mut args.iter(), defining)
        }
        T::Path(base, path) => {
            shape(base, next, defining)?;
            for (part, _) in &path.0 {
                match part {
                    Part::Index(i) => shape(i, next, defining)?,
                    Part::Range(from, to) => all(&mut from.iter().chain(to), defining)?,
                }
            }
            Ok(())
        }
    }
}

fn pattern_shape<'s>(
    pattern: &jaq_core::load::parse::Pattern<&'s str>,
    depth: usize,
    defining: &mut Vec<(&'s str, usize)>,
) -> Result<(), String> {
    use jaq_core::load::parse::Pattern as P;
    match pattern {
        P::Var(_) => Ok(()),
        P::Arr(items) => items
            .iter()
            .try_for_each(|p| pattern_shape(p, depth + 1, defining)),
        P::Obj(pairs) => pairs.iter().try_for_each(|(key, p)| {
            shape(key, depth + 1, defining)?;
            pattern_shape(p, depth + 1, defining)
        }),
    }
}

/// An exception out of evaluation as an error; `halt` too (jaq's own
/// helper would exit the process on it).
fn eval_error(exn: jaq_core::Exn<Val>) -> ExprError {
    match exn.get_err() {
        Ok(err) => ExprError::Eval {
            message: err.to_string(),
        },
        Err(_) => ExprError::Eval {
            message: "halt is not allowed in workflow expressions".into(),
        },
    }
}

/// Byte offset of `part` in `code`, when `part` is a slice of it.
fn offset(code: &str, part: &str) -> usize {
    let start = code.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at <= start + code.len() {
        at - start
    } else {
        0
    }
}

fn load_error(code: &str, err: &jaq_core::load::Error<&str>) -> String {
    use jaq_core::load::Error;
    let describe = |found: &str| {
        let token: String = found.chars().take(12).collect();
        if token.is_empty() {
            "at the end".to_string()
        } else {
            format!("at byte {} (`{token}`)", offset(code, found))
        }
    };
    match err {
        Error::Io(errors) => errors
            .iter()
            .map(|(path, msg)| format!("cannot load {path}: {msg}"))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Lex(errors) => errors
            .iter()
            .map(|(expected, found)| format!("expected {} {}", expected.as_str(), describe(found)))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Parse(errors) => errors
            .iter()
            .map(|(expected, found)| format!("expected {} {}", expected.as_str(), describe(found)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_standard_library_filters() {
        let expr = Expr::compile(r#"[.[] | select(.score > 50) | .name | ascii_upcase]"#).unwrap();
        let out = expr
            .eval_one(&json!([{"name": "a", "score": 70}, {"name": "b", "score": 10}]))
            .unwrap();
        assert_eq!(out, json!(["A"]));
    }

    #[test]
    fn compile_errors_say_where() {
        let err = Expr::compile(".a | (.b").unwrap_err();
        assert!(err.to_string().contains("closing parenthesis"), "{err}");
        let err = Expr::compile(".a | ] .b").unwrap_err();
        assert!(err.to_string().contains("byte 5"), "{err}");
        let err = Expr::compile(".a | nosuch(1)").unwrap_err();
        assert!(
            err.to_string().contains("undefined filter nosuch/1"),
            "{err}"
        );
    }

    #[test]
    fn expressions_cannot_read_the_environment_or_clock() {
        for code in [
            "env",
            "$ENV",
            "now",
            "input",
            "inputs",
            "$__loc__ | input_filename",
        ] {
            assert!(Expr::compile(code).is_err(), "{code} must not compile");
        }
        let err = Expr::compile("halt").unwrap().eval(&json!(1)).unwrap_err();
        assert!(err.to_string().contains("halt is not allowed"), "{err}");
        let err = Expr::compile(r#""bye" | halt_error"#)
            .unwrap()
            .eval(&json!(1))
            .unwrap_err();
        assert!(err.to_string().contains("halt is not allowed"), "{err}");
    }

    #[test]
    fn overlong_expressions_are_refused() {
        let code = ".".repeat(MAX_EXPRESSION_LEN + 1);
        assert!(matches!(
            Expr::compile(&code),
            Err(ExprError::Compile { .. })
        ));
    }

    /// Found by the `jq` fuzz target and by hand: each of these aborted
    /// the process (stack overflow) or never returned.
    #[test]
    fn expressions_that_would_run_away_are_refused_at_compile() {
        for (code, says) in [
            ("def f: 1 + f; f", "calls itself"),
            ("def f: f; f", "calls itself"),
            ("def f(x): def g: f(x); g; f(1)", "calls itself"),
            ("last(repeat(1))", "repeat/1 can loop"),
            ("until(false; .)", "until/2 can loop"),
            ("[while(true; .)]", "while/2 can loop"),
            ("last(recurse([.]))", "recurse/1 can loop"),
            ("recurse(. + 1; . < 10)", "recurse/2 can loop"),
        ] {
            let err = Expr::compile(code).unwrap_err().to_string();
            assert!(err.contains(says), "{code}: {err}");
        }
        let n = MAX_EXPRESSION_DEPTH * 4;
        for (open, close) in [
            ("[", "]"),
            ("{a:", "}"),
            ("-", ""),
            (". | ", ""),
            ("\"\\(", ")\""),
        ] {
            let code = format!("{}1{}", open.repeat(n), close.repeat(n));
            let err = Expr::compile(&code).unwrap_err().to_string();
            assert!(err.contains("levels deep"), "{open}: {err}");
        }
        // Parentheses leave nothing in the parsed expression: deep ones
        // cost the parser stack only, and it has its own.
        let parens = format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(
            Expr::compile(&parens)
                .unwrap()
                .eval_one(&json!(null))
                .unwrap(),
            json!(1)
        );
    }

    #[test]
    fn bounded_recursion_and_ordinary_nesting_still_compile() {
        let tree = json!({"name": "a", "children": [{"name": "b", "children": []}]});
        let names = Expr::compile("[recurse(.children[]?) | .name]").unwrap();
        assert_eq!(names.eval_one(&tree).unwrap(), json!(["a", "b"]));
        let all = Expr::compile("[.. | .name? // empty]").unwrap();
        assert_eq!(all.eval_one(&tree).unwrap(), json!(["a", "b"]));
        let active = Expr::compile("[recurse(.children[]?; .name != \"b\") | .name]").unwrap();
        assert_eq!(active.eval_one(&tree).unwrap(), json!(["a"]));
        let def = Expr::compile("def twice(f): f | f; twice(. + 1)").unwrap();
        assert_eq!(def.eval_one(&json!(1)).unwrap(), json!(3));
        let depth = MAX_EXPRESSION_DEPTH / 2;
        let nested = format!("{}.{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(
            Expr::compile(&nested).unwrap().eval_one(&json!(7)).unwrap(),
            json!(7)
        );
    }

    #[test]
    fn runaway_output_is_cut() {
        let expr = Expr::compile("range(1000000)").unwrap();
        assert_eq!(expr.eval(&json!(null)), Err(ExprError::TooManyOutputs));
    }

    /// jaq cannot be interrupted: these run for minutes to forever on
    /// their own. The caller gets its answer at the limit, and the
    /// evaluator serves the next expression as before.
    #[test]
    fn evaluation_past_its_time_limit_is_given_up_on_and_the_evaluator_goes_on() {
        let limit = Duration::from_millis(100);
        let input = json!((0..2000).collect::<Vec<_>>());
        let runaways = [
            "[range(1e12)] | length",
            "last(range(0; 10; 0))",
            "[.[] as $a | .[] as $b | .[] as $c | 1] | length",
        ];
        // More runaways than the evaluator has threads: each one given up
        // on is replaced.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for code in runaways.iter().cycle().take(cores + runaways.len()) {
            let started = std::time::Instant::now();
            let err = Expr::compile(code)
                .unwrap()
                .with_time_limit(limit)
                .eval(&input)
                .unwrap_err();
            assert_eq!(err, ExprError::TimedOut { limit }, "{code}");
            assert!(
                started.elapsed() < limit * 20,
                "{code}: {:?}",
                started.elapsed()
            );
            assert!(err.to_string().contains("100ms"), "{err}");
        }
        let sum = Expr::compile("[.[]] | add").unwrap();
        assert_eq!(sum.eval_one(&input).unwrap(), json!(1999 * 1000));
    }

    #[test]
    fn results_past_the_size_limit_or_outside_json_are_refused() {
        // 2^7 copies of a 1 MB string: 1 MB in memory, 128 MB written out.
        let shared = Expr::compile(r#"reduce range(7) as $i ("x" * 1000000; [., .])"#).unwrap();
        assert_eq!(shared.eval(&json!(null)), Err(ExprError::ResultTooLarge));
        for (code, says) in [
            ("nan", "NaN"),
            ("infinite", "Infinity"),
            ("{(1): 2}", "not a string"),
            ("\"a\" | tobytes", "byte string"),
            ("reduce range(200) as $i (.; [.])", "nested deeper"),
        ] {
            let err = Expr::compile(code).unwrap().eval(&json!(null)).unwrap_err();
            assert!(err.to_string().contains(says), "{code}: {err}");
        }
        // A value nested far deeper than the result may be is still built
        // and dropped without harm when it is not returned.
        let deep = Expr::compile("reduce range(100000) as $i (.; [.]) | length").unwrap();
        assert_eq!(deep.eval_one(&json!(null)).unwrap(), json!(1));
    }

    #[test]
    fn truthiness_follows_jq() {
        let expr = Expr::compile(".x").unwrap();
        assert!(expr.test(&json!({"x": 0})).unwrap());
        assert!(!expr.test(&json!({"x": null})).unwrap());
        assert!(!expr.test(&json!({})).unwrap());
        assert!(!Expr::compile("empty").unwrap().test(&json!(1)).unwrap());
        let err = Expr::compile(r#"error("bad supplier")"#)
            .unwrap()
            .test(&json!(1))
            .unwrap_err();
        assert!(err.to_string().contains("bad supplier"), "{err}");
    }
}
