//! Content-based routing of delivered events, as daprd does it: a subscription's rules
//! are CEL expressions over the variable `event` (the CloudEvent map), evaluated in
//! order; the first true one names the app route. An empty `match` always matches,
//! which is how the default route is expressed (it comes last).
//!
//! As in daprd, JSON numbers reach CEL as doubles (Go decodes them to float64),
//! so `int(event.data.n) > 3` is the way to compare integers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelDouble, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};

use crate::config::model::RouteRule;
use crate::envelope::Event;

/// The standard CEL environment, built once and shared by every router.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Why a rule could not be compiled or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A rule's `match` is not a valid CEL expression (configuration error).
    #[error("routing rule {index} for path {path:?} has an invalid match expression: {reason}")]
    Compile {
        /// Position of the rule in the subscription.
        index: usize,
        /// The rule's path.
        path: String,
        /// Parser message.
        reason: String,
    },
    /// Evaluating an expression failed (e.g. a missing key); daprd dead-letters or NACKs.
    #[error("routing expression {expr:?} failed: {reason}")]
    Eval {
        /// The expression's source.
        expr: String,
        /// Interpreter message.
        reason: String,
    },
    /// An expression evaluated to something other than a boolean.
    #[error("routing expression {expr:?} returned a {got}, not a boolean")]
    NotBool {
        /// The expression's source.
        expr: String,
        /// CEL type of the result.
        got: String,
    },
}

/// One compiled rule; `program` is None for an empty `match`.
struct CompiledRule {
    source: String,
    program: Option<Program>,
    path: String,
}

/// The compiled rules of one subscription. Send + Sync: compile once, share across tasks.
pub struct Router {
    rules: Vec<CompiledRule>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| (&r.source, &r.path)))
            .finish()
    }
}

impl Router {
    /// Compiles every rule, in order; the first invalid expression is an error.
    pub fn new(rules: &[RouteRule]) -> Result<Router, RouteError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let source = rule.match_expr.trim();
                let program = if source.is_empty() {
                    None
                } else {
                    let program = ENV.compile(source).map_err(|e| RouteError::Compile {
                        index,
                        path: rule.path.clone(),
                        reason: e.to_string(),
                    })?;
                    Some(program)
                };
                Ok(CompiledRule {
                    source: source.to_owned(),
                    program,
                    path: rule.path.clone(),
                })
            })
            .collect::<Result<Vec<_>, RouteError>>()?;
        Ok(Router { rules })
    }

    /// Path of the first rule whose CEL `match` is true (empty match = true);
    /// `Ok(None)` when nothing matches; `Err` when an expression fails or is not a bool.
    pub fn route(&self, event: &Event) -> Result<Option<&str>, RouteError> {
        // Built on the first expression that needs it: default-only routers never convert.
        let mut context: Option<Context<'_, '_>> = None;
        for rule in &self.rules {
            let Some(program) = &rule.program else {
                return Ok(Some(&rule.path));
            };
            let context = context.get_or_insert_with(|| {
                let mut context = Context::with_env(Arc::clone(&ENV));
                context.add_variable_as_val("event", map_to_val(event));
                context
            });
            match program.execute(context) {
                Ok(Value::Bool(true)) => return Ok(Some(&rule.path)),
                Ok(Value::Bool(false)) => {}
                Ok(other) => {
                    return Err(RouteError::NotBool {
                        expr: rule.source.clone(),
                        got: other.type_of().to_string(),
                    })
                }
                Err(e) => {
                    return Err(RouteError::Eval {
                        expr: rule.source.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(None)
    }

    /// Number of rules (including a default one).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when the subscription has no rule at all (nothing is ever routed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Checks that `expr` is a valid CEL expression, for configuration validation;
/// the error is the parser's message.
pub fn check_expression(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Ok(());
    }
    ENV.compile(expr.trim())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The event as a CEL map borrowing its strings (no copies of the payload).
fn map_to_val(map: &Event) -> Box<dyn Val + '_> {
    let entries: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = map
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.as_str()), json_to_val(v)))
        .collect();
    Box::new(CelMap::from(entries))
}

/// JSON → CEL; numbers become doubles, as daprd's Go decoding makes them.
/// Recursion is bounded by serde_json's nesting limit (128) on decode.
fn json_to_val(value: &serde_json::Value) -> Box<dyn Val + '_> {
    match value {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        // Without serde_json's arbitrary_precision every number has an f64 form.
        serde_json::Value::Number(n) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Box::new(CelString::from(s.as_str())),
        serde_json::Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        serde_json::Value::Object(map) => map_to_val(map),
    }
}

#[cfg(test)]
mod tests;
