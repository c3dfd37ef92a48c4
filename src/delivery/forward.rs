//! Which broker metadata keys travel to the app as HTTP headers or gRPC
//! metadata. Metadata comes from whoever published the event, so it must not
//! be able to speak for sidebus or for another hop: credentials
//! (`authorization`, `cookie`, `dapr-api-token`, …) would let a publisher
//! impersonate the sidecar to the app, and hop-by-hop or framing headers
//! would corrupt the request. One rule for both app channels.

/// Keys never copied from metadata, compared in lower case.
const DENIED: &[&str] = &[
    // Credentials: only sidebus sets `dapr-api-token` (from APP_API_TOKEN).
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "dapr-api-token",
    // Hop-by-hop (RFC 9110 §7.6.1) and framing.
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    // Set by the channel itself from the event.
    "pubsubname",
    "traceparent",
    "tracestate",
];

/// True when metadata key `key` may be passed on to the app.
pub fn forwardable(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    !(DENIED.contains(&lower.as_str())
        || lower.ends_with("-bin")
        || lower.starts_with("grpc-")
        || lower.starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::forwardable;

    #[test]
    fn credentials_hop_by_hop_and_transport_keys_stay_behind() {
        for key in [
            "Authorization",
            "cookie",
            "Set-Cookie",
            "dapr-api-token",
            "DAPR-API-TOKEN",
            "proxy-authorization",
            "Connection",
            "transfer-encoding",
            "content-length",
            "host",
            "grpc-timeout",
            "trace-bin",
            ":authority",
            "traceparent",
        ] {
            assert!(!forwardable(key), "{key} must not reach the app");
        }
        for key in [
            "__key",
            "Kafka-Header",
            "cloudevent.tenantid",
            "x-request-id",
        ] {
            assert!(forwardable(key), "{key} travels");
        }
    }
}
