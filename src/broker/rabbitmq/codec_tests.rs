use super::*;
use crate::broker::rabbitmq::config::RabbitConfig;

fn cfg(extra: &[(&str, &str)]) -> RabbitConfig {
    let mut md: Metadata = [("hostname".to_string(), "h".to_string())].into();
    for (k, v) in extra {
        md.insert(k.to_string(), v.to_string());
    }
    RabbitConfig::parse(&md).expect("valid config").config
}

fn request(data: &str, metadata: &[(&str, &str)]) -> PublishRequest {
    PublishRequest {
        topic: "orders".into(),
        data: Bytes::from(data.to_string()),
        content_type: "application/cloudevents+json".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        key: Some("k1".into()),
    }
}

const CE: &str = r#"{"specversion":"1.0","id":"e1","source":"app","type":"t","datacontenttype":"application/json","traceparent":"00-x","data":{"n":1,"s":"x"}}"#;

#[test]
fn structured_keeps_the_body_and_maps_metadata() {
    let out = encode(
        &cfg(&[("ttlInSeconds", "60")]),
        &request(CE, &[("a", "1"), ("routingKey", "rk"), ("priority", "5")]),
    )
    .expect("encode");
    assert_eq!(out.body, CE.as_bytes());
    assert_eq!(out.routing_key.as_str(), "rk");
    let p = &out.properties;
    assert_eq!(p.delivery_mode(), &Some(2));
    assert_eq!(p.priority(), &Some(5));
    assert_eq!(p.expiration().as_ref().map(|e| e.as_str()), Some("60000"));
    let (data, md, key) = decode(p, out.body.clone());
    assert_eq!(data, CE.as_bytes());
    assert_eq!(md.get("a").map(String::as_str), Some("1"));
    assert!(
        !md.contains_key("routingKey"),
        "interpreted keys are not headers"
    );
    assert_eq!(key.as_deref(), Some("k1"));
}

#[test]
fn per_message_ttl_overrides_the_default_and_bad_values_are_rejected() {
    let c = cfg(&[("ttlInSeconds", "60")]);
    let out = encode(&c, &request(CE, &[("ttlInSeconds", "2")])).expect("encode");
    let exp = out
        .properties
        .expiration()
        .as_ref()
        .map(|e| e.as_str().to_string());
    assert_eq!(exp.as_deref(), Some("2000"));
    assert!(matches!(
        encode(&c, &request(CE, &[("priority", "300")])),
        Err(BrokerError::Rejected(_))
    ));
}

#[test]
fn binary_mode_moves_attributes_to_headers_and_round_trips() {
    let out = encode(&cfg(&[("contentMode", "binary")]), &request(CE, &[])).expect("encode");
    let headers = out.properties.headers().clone().expect("headers");
    let h = headers.inner();
    assert!(h.contains_key("cloudEvents_id"));
    assert!(h.contains_key("cloudEvents_traceparent"));
    assert!(!h.contains_key("cloudEvents_data"));
    let ct = out
        .properties
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_string());
    assert_eq!(ct.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(&out.body).expect("json body");
    assert_eq!(body, serde_json::json!({"n":1,"s":"x"}));
    let (data, _, _) = decode(&out.properties, out.body.clone());
    let got: Value = serde_json::from_slice(&data).expect("structured");
    let want: Value = serde_json::from_str(CE).expect("ce");
    assert_eq!(got, want);
}

#[test]
fn binary_text_and_bytes_payloads() {
    let text = r#"{"specversion":"1.0","id":"e2","source":"s","type":"t","datacontenttype":"text/plain","data":"hello"}"#;
    let out = encode(&cfg(&[("contentMode", "binary")]), &request(text, &[])).expect("encode");
    assert_eq!(out.body, b"hello");
    let (data, _, _) = decode(&out.properties, out.body.clone());
    let got: Value = serde_json::from_slice(&data).expect("json");
    assert_eq!(got, serde_json::from_str::<Value>(text).expect("ce"));

    let raw = r#"{"specversion":"1.0","id":"e3","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"/wA="}"#;
    let out = encode(&cfg(&[("contentMode", "binary")]), &request(raw, &[])).expect("encode");
    assert_eq!(out.body, [0xff, 0x00]);
    let (data, _, _) = decode(&out.properties, out.body.clone());
    let got: Value = serde_json::from_slice(&data).expect("json");
    assert_eq!(got["data_base64"], "/wA=");
}

#[test]
fn colon_prefixed_attributes_from_other_producers_are_understood() {
    let mut headers = FieldTable::default();
    headers.insert("cloudEvents:id".into(), long("x1"));
    headers.insert("cloudEvents:specversion".into(), long("1.0"));
    headers.insert("plain".into(), AMQPValue::LongInt(7));
    let props = BasicProperties::default()
        .with_headers(headers)
        .with_content_type("application/json".into());
    let (data, md, _) = decode(&props, br#"{"a":true}"#.to_vec());
    let got: Value = serde_json::from_slice(&data).expect("json");
    assert_eq!(got["id"], "x1");
    assert_eq!(got["data"]["a"], true);
    assert_eq!(md.get("plain").map(String::as_str), Some("7"));
}

#[test]
fn raw_payloads_pass_untouched_in_binary_mode() {
    let mut req = request("not json", &[]);
    req.content_type = "text/plain".into();
    let out = encode(&cfg(&[("contentMode", "binary")]), &req).expect("encode");
    assert_eq!(out.body, b"not json");
    let (data, _, _) = decode(&out.properties, out.body.clone());
    assert_eq!(data, "not json".as_bytes());
}

/// Every AMQP short string built from a request is checked: before, lapin's
/// conversion panicked on 256 bytes and took the publishing task with it.
#[test]
fn names_over_255_bytes_are_refused_not_a_panic() {
    let long = "a".repeat(300);
    let c = cfg(&[]);
    let binary = cfg(&[("contentMode", "binary")]);
    let mut topic = request(CE, &[]);
    topic.topic = long.clone();
    let mut content_type = request("x", &[]);
    content_type.content_type = long.clone();
    let extension = format!(
        r#"{{"specversion":"1.0","id":"e1","source":"app","type":"t","{long}":"v","data":1}}"#
    );
    let cases = [
        (
            "metadata key",
            encode(&c, &request(CE, &[(long.as_str(), "1")])),
        ),
        (
            "routing key",
            encode(&c, &request(CE, &[("routingKey", long.as_str())])),
        ),
        ("topic", encode(&c, &topic)),
        ("content type", encode(&c, &content_type)),
        ("attribute name", encode(&binary, &request(&extension, &[]))),
    ];
    for (what, result) in cases {
        match result {
            Err(BrokerError::Rejected(reason)) => {
                assert!(reason.contains("255"), "{what}: {reason}")
            }
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
}

/// RabbitMQ closes the channel for an expiration over 2^32-1 ms, which
/// wedged every later publish; such TTLs are refused up front.
#[test]
fn ttls_rabbitmq_cannot_take_are_refused() {
    let c = cfg(&[]);
    let max = (MAX_TTL_MS / 1000).to_string();
    let out = encode(&c, &request(CE, &[("ttlInSeconds", max.as_str())])).expect("largest TTL");
    assert_eq!(
        out.properties
            .expiration()
            .as_ref()
            .map(|e| e.as_str().to_string()),
        Some(format!("{}", MAX_TTL_MS / 1000 * 1000))
    );
    for ttl in [
        (MAX_TTL_MS / 1000 + 1).to_string(),
        "9223372036854775807".into(),
        u64::MAX.to_string(),
    ] {
        assert!(
            matches!(
                encode(&c, &request(CE, &[("ttlInSeconds", ttl.as_str())])),
                Err(BrokerError::Rejected(_))
            ),
            "ttlInSeconds={ttl}"
        );
    }
}

proptest::proptest! {
    /// Whatever a request carries (names of any length, any bytes in
    /// values, any TTL text), encoding answers and never panics; it refuses
    /// exactly when a short string would pass 255 bytes or the TTL is bad.
    #[test]
    fn encoding_any_request_answers_and_never_panics(
        topic in ".{0,300}",
        key in ".{0,300}",
        value in ".{0,64}",
        content_type in ".{0,300}",
        ttl in proptest::option::of("[0-9]{0,25}"),
        binary in proptest::bool::ANY,
        data in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
    ) {
        let c = cfg(if binary { &[("contentMode", "binary")] } else { &[] });
        let mut metadata = vec![(key.as_str(), value.as_str())];
        if let Some(t) = &ttl {
            metadata.push(("ttlInSeconds", t.as_str()));
        }
        let mut req = request("", &metadata);
        req.topic = topic.clone();
        req.content_type = content_type.clone();
        req.data = Bytes::from(data);
        let result = encode(&c, &req);
        let too_long = topic.len() > 255
            || (key.len() > 255 && !key.eq_ignore_ascii_case("ttlInSeconds"))
            || (!content_type.is_empty() && content_type.len() > 255);
        if too_long {
            proptest::prop_assert!(result.is_err());
        }
        if let Ok(out) = result {
            proptest::prop_assert!(out.exchange.as_str().len() <= 255);
        }
    }
}
