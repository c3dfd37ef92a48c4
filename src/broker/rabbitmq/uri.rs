//! Broker addresses from `connectionString` or `protocol`/`hostname`/
//! `username`/`password`, each possibly a comma-separated list for failover.

use lapin::uri::{AMQPScheme, AMQPUri};

use crate::config::metadata::MetadataReader as Reader;

/// Every broker URI the metadata names, in the order to try them.
pub(super) fn connection_uris(r: &mut Reader<'_>) -> Vec<AMQPUri> {
    let mut uris = Vec::new();
    if let Some(cs) = r.get("connectionString").map(str::to_string) {
        for part in cs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<AMQPUri>() {
                Ok(u) => uris.push(u),
                // The parser's own text may quote the input, password
                // included: say what is expected instead. The reader masks
                // the value it reports.
                Err(_) => r.fail(
                    "connectionString",
                    part,
                    "not an AMQP URI (expected amqp[s]://user:password@host[:port][/vhost])",
                ),
            }
        }
        return uris;
    }
    let Some(hosts) = r
        .get("hostname")
        .or_else(|| r.get("host"))
        .map(str::to_string)
    else {
        r.fail(
            "connectionString",
            "",
            "connectionString or hostname is required",
        );
        return uris;
    };
    let protocol = r.get("protocol").unwrap_or("amqp").to_ascii_lowercase();
    let scheme = match protocol.as_str() {
        "amqp" => AMQPScheme::AMQP,
        "amqps" => AMQPScheme::AMQPS,
        _ => {
            r.fail("protocol", &protocol, "must be amqp or amqps");
            AMQPScheme::AMQP
        }
    };
    let username = r.get("username").unwrap_or("guest").to_string();
    let password = r.get("password").unwrap_or("guest").to_string();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let host = host
            .trim_start_matches("amqps://")
            .trim_start_matches("amqp://");
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) => match p.parse::<u16>() {
                Ok(p) => (n, p),
                Err(_) => {
                    r.fail("hostname", host, "port must be a number");
                    continue;
                }
            },
            None => (
                host,
                if scheme == AMQPScheme::AMQPS {
                    5671
                } else {
                    5672
                },
            ),
        };
        let mut uri = AMQPUri {
            scheme: scheme.clone(),
            ..AMQPUri::default()
        };
        uri.authority.host = name.to_string();
        uri.authority.port = port;
        uri.authority.userinfo.username = username.clone();
        uri.authority.userinfo.password = password.clone();
        uris.push(uri);
    }
    uris
}

/// Where a URI points, for logs (no credentials).
pub fn describe(uri: &AMQPUri) -> String {
    format!("{}:{}", uri.authority.host, uri.authority.port)
}
