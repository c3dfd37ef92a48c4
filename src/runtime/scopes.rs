//! Topic scoping per component (`publishingScopes`, `subscriptionScopes`,
//! `allowedTopics`, `protectedTopics`), as daprd applies it.

use std::collections::BTreeMap;

use crate::broker::Metadata;

/// The topic rules of one component for one app id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicScopes {
    /// Topics this app may publish to; `None` when the app is not listed.
    publishing: Option<Vec<String>>,
    /// Topics this app may subscribe to; `None` when the app is not listed.
    subscribing: Option<Vec<String>>,
    /// When non-empty, the only topics anyone may use.
    allowed: Vec<String>,
    /// Topics that need an explicit scope.
    protected: Vec<String>,
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Parses `"app1=t1,t2;app2=;app3=t3"` into app → topics (app keys
/// lower-cased, since daprd matches them case-insensitively).
fn scope_map(raw: &str) -> BTreeMap<String, Vec<String>> {
    let cleaned: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    cleaned
        .split(';')
        .filter_map(|part| {
            let (app, topics) = part.split_once('=')?;
            Some((app.to_lowercase(), list(topics)))
        })
        .collect()
}

fn get<'a>(md: &'a Metadata, key: &str) -> Option<&'a str> {
    md.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

impl TopicScopes {
    /// Reads the scoping keys of a component's metadata for `app_id`.
    pub fn from_metadata(md: &Metadata, app_id: &str) -> Self {
        let app = app_id.to_lowercase();
        let scoped = |key| get(md, key).and_then(|raw| scope_map(raw).remove(&app));
        Self {
            publishing: scoped("publishingScopes"),
            subscribing: scoped("subscriptionScopes"),
            allowed: get(md, "allowedTopics").map(list).unwrap_or_default(),
            protected: get(md, "protectedTopics").map(list).unwrap_or_default(),
        }
    }

    /// May this app publish to `topic`?
    pub fn may_publish(&self, topic: &str) -> bool {
        self.allowed_for(self.publishing.as_deref(), topic)
    }

    /// May this app subscribe to `topic`?
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.allowed_for(self.subscribing.as_deref(), topic)
    }

    fn allowed_for(&self, scoped: Option<&[String]>, topic: &str) -> bool {
        if !self.allowed.is_empty() && !self.allowed.iter().any(|t| t == topic) {
            return false;
        }
        match scoped {
            Some(topics) => topics.iter().any(|t| t == topic),
            None => !self.protected.iter().any(|t| t == topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unlisted_apps_are_unrestricted_except_protected_topics() {
        let s = TopicScopes::from_metadata(
            &md(&[("publishingScopes", "other=a"), ("protectedTopics", "p")]),
            "me",
        );
        assert!(s.may_publish("anything"));
        assert!(!s.may_publish("p"));
    }

    #[test]
    fn listed_apps_get_only_their_topics_and_empty_means_none() {
        let m = md(&[("publishingScopes", "Me = a, b ; you=")]);
        let me = TopicScopes::from_metadata(&m, "me");
        assert!(me.may_publish("a") && me.may_publish("b") && !me.may_publish("c"));
        let you = TopicScopes::from_metadata(&m, "YOU");
        assert!(!you.may_publish("a"));
        assert!(
            you.may_subscribe("a"),
            "publishing scopes do not limit subscribing"
        );
    }

    #[test]
    fn allowed_topics_bind_everyone() {
        let s = TopicScopes::from_metadata(
            &md(&[("allowedTopics", "a,b"), ("subscriptionScopes", "me=a,c")]),
            "me",
        );
        assert!(s.may_subscribe("a"));
        assert!(!s.may_subscribe("c"), "not in allowedTopics");
        assert!(!s.may_publish("z"));
    }
}
