//! daprd's metadata templates: `{appID}`, `{uuid}`, `{podName}` and
//! `{namespace}` inside component metadata values (`pkg/runtime/meta`).

/// The values templates expand to, fixed once per load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContext {
    /// Replaces `{appID}`.
    pub app_id: String,
    /// Replaces `{podName}`: env `POD_NAME`, else the app id (a sidecar
    /// outside Kubernetes has no pod, and the app id is the stable name).
    pub pod_name: String,
    /// The namespace part of `{namespace}`: env `NAMESPACE`, else `default`.
    pub namespace: String,
}

impl TemplateContext {
    /// Reads `POD_NAME` and `NAMESPACE` from the environment.
    pub fn from_env(app_id: &str) -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            app_id: app_id.to_string(),
            pod_name: non_empty("POD_NAME").unwrap_or_else(|| app_id.to_string()),
            namespace: non_empty("NAMESPACE").unwrap_or_else(|| "default".to_string()),
        }
    }

    /// Expands every template in `value`. `{namespace}` becomes
    /// `<namespace>.<appID>` as daprd renders it; each `{uuid}` occurrence in
    /// one value gets the same fresh UUID, as in daprd.
    pub fn render(&self, value: &str) -> String {
        if !value.contains('{') {
            return value.to_string();
        }
        let mut out = value
            .replace("{appID}", &self.app_id)
            .replace("{podName}", &self.pod_name)
            .replace(
                "{namespace}",
                &format!("{}.{}", self.namespace, self.app_id),
            );
        if out.contains("{uuid}") {
            out = out.replace("{uuid}", &uuid::Uuid::new_v4().to_string());
        }
        out
    }
}

/// Whether a raw (unexpanded) value uses `{namespace}`; daprd then prefixes
/// every topic of the component with the namespace.
pub fn uses_namespace(raw: &str) -> bool {
    raw.contains("{namespace}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateContext {
        TemplateContext {
            app_id: "checkout".into(),
            pod_name: "checkout-7d9f".into(),
            namespace: "shop".into(),
        }
    }

    #[test]
    fn expands_every_template() {
        let c = ctx();
        assert_eq!(c.render("{appID}-group"), "checkout-group");
        assert_eq!(c.render("client-{podName}"), "client-checkout-7d9f");
        assert_eq!(c.render("{namespace}"), "shop.checkout");
        assert_eq!(c.render("plain"), "plain");
        let rendered = c.render("id-{uuid}");
        let id = rendered.strip_prefix("id-").unwrap_or_default();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{rendered}");
        assert_ne!(c.render("{uuid}"), c.render("{uuid}"));
        assert!(uses_namespace("x-{namespace}"));
        assert!(!uses_namespace("x-{appID}"));
    }
}
