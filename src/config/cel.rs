//! The CEL check shared by every origin of an expression: routing `match`
//! rules (declarative YAML, `GET /dapr/subscribe`, streaming subscriptions)
//! and circuit-breaker `trip` expressions.

/// Compiles a CEL expression (routing `match`, breaker `trip`); the error
/// is the compiler's text on one line. Empty is valid (means "always").
pub fn check(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Ok(());
    }
    cel::Program::compile(expr).map(|_| ()).map_err(|e| {
        let msgs: Vec<String> = e
            .errors
            .iter()
            .map(|p| format!("{} (line {}, column {})", p.msg, p.pos.0, p.pos.1))
            .collect();
        format!("CEL does not compile: {}", msgs.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn compiles_or_explains() {
        assert_eq!(check(r#"event.type == "widget""#), Ok(()));
        assert_eq!(check(""), Ok(()));
        let err = check("event.type ==").unwrap_err();
        assert!(err.starts_with("CEL does not compile: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
