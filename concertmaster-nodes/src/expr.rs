//! jq expressions (the `jaq` interpreter): compiled once when a workflow is
//! published, evaluated per item while it runs.
//!
//! Expressions see only the value they are given: `env`, `$ENV`, `now`,
//! `input` and `halt` do not exist, and nothing in the library reaches
//! files or the network.

use std::fmt;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

/// Longest expression accepted, in bytes: a bound on compile time and on
/// what a hostile definition can make the engine parse.
pub const MAX_EXPRESSION_LEN: usize = 16 * 1024;

/// Most values one evaluation may produce before it is stopped.
pub const MAX_OUTPUTS: usize = 100_000;

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
    filter: jaq_core::Filter<Data>,
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
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
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
        let filter = Compiler::default()
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
            })?;
        Ok(Self {
            code: code.to_string(),
            filter,
        })
    }

    /// The source code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Every value the expression produces for `input`.
    pub fn eval(&self, input: &Value) -> Result<Vec<Value>, ExprError> {
        let input = to_val(input)?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        for value in self.filter.id.run((ctx, input)) {
            let value = value.map_err(eval_error)?;
            if out.len() == MAX_OUTPUTS {
                return Err(ExprError::TooManyOutputs);
            }
            out.push(from_val(&value)?);
        }
        Ok(out)
    }

    /// The first value the expression produces for `input`.
    pub fn eval_one(&self, input: &Value) -> Result<Value, ExprError> {
        let input = to_val(input)?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let first = self.filter.id.run((ctx, input)).next();
        match first {
            Some(Ok(value)) => from_val(&value),
            Some(Err(exn)) => Err(eval_error(exn)),
            None => Err(ExprError::NoOutput),
        }
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

fn to_val(value: &Value) -> Result<Val, ExprError> {
    serde_json::from_value(value.clone()).map_err(|err| ExprError::Eval {
        message: format!("input is not representable: {err}"),
    })
}

/// jq values print as JSON; values JSON lacks (NaN, byte strings) print as
/// their nearest JSON or fail here with a clear message.
fn from_val(value: &Val) -> Result<Value, ExprError> {
    serde_json::from_str(&value.to_string()).map_err(|err| ExprError::Eval {
        message: format!("result is not JSON: {err}"),
    })
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

    #[test]
    fn runaway_output_is_cut() {
        let expr = Expr::compile("range(1000000)").unwrap();
        assert_eq!(expr.eval(&json!(null)), Err(ExprError::TooManyOutputs));
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
