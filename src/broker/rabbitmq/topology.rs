//! The queue side of a subscription: one queue per (consumer group, topic),
//! bound to the topic's exchange, plus the optional dead-letter pair.
//!
//! Declarations are idempotent, so they run again after every reconnect
//! (queues and bindings may be gone after a broker restart when
//! `durable=false`).

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;

use super::codec::short;
use super::config::RabbitConfig;
use super::connection::Live;
use super::publisher::{ensure_exchange, map_err};
use crate::broker::{BrokerError, Metadata};
use crate::config::metadata;

/// Where one subscription reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlan {
    /// Topic = exchange name.
    pub topic: String,
    /// Queue name: subscription `queueName`, else `<group>-<topic>` (daprd).
    pub queue: String,
    /// Binding keys: subscription `routingKey` CSV, else the component's.
    pub routing_keys: Vec<String>,
}

impl QueuePlan {
    /// Resolves the plan from the subscribe request. Every name it makes
    /// is an AMQP short string (255 bytes at most), checked here so the
    /// declarations below cannot be handed one that is too long.
    pub fn new(
        cfg: &RabbitConfig,
        topic: &str,
        group: &str,
        md: &Metadata,
    ) -> Result<Self, BrokerError> {
        let get = |key: &str| metadata::get(md, key).map(str::to_string);
        let queue = get("queueName").unwrap_or_else(|| format!("{group}-{topic}"));
        let keys = get("routingKey").unwrap_or_else(|| cfg.routing_key.clone());
        let mut routing_keys: Vec<String> = keys.split(',').map(|k| k.trim().to_string()).collect();
        routing_keys.dedup();
        let plan = Self {
            topic: topic.to_string(),
            queue,
            routing_keys,
        };
        short(&plan.topic, "the topic")?;
        // The dead-letter names are the longest derived from the queue name.
        short(
            &plan.dead_letter_exchange(),
            "the queue name (with its dlx- prefix)",
        )?;
        for key in &plan.routing_keys {
            short(key, "a routing key")?;
        }
        Ok(plan)
    }

    /// `dlx-<queue>`: the dead-letter exchange.
    pub fn dead_letter_exchange(&self) -> String {
        format!("dlx-{}", self.queue)
    }

    /// `dlq-<queue>`: where dead letters are kept.
    pub fn dead_letter_queue(&self) -> String {
        format!("dlq-{}", self.queue)
    }
}

/// Queue arguments from the component metadata.
pub fn queue_arguments(cfg: &RabbitConfig, plan: &QueuePlan) -> FieldTable {
    let mut args = FieldTable::default();
    let ms =
        |d: std::time::Duration| AMQPValue::LongLongInt(d.as_millis().min(i64::MAX as u128) as i64);
    if let Some(ttl) = cfg.ttl {
        args.insert("x-message-ttl".into(), ms(ttl));
    }
    if let Some(exp) = cfg.queue_expires {
        args.insert("x-expires".into(), ms(exp));
    }
    let clamp = |n: u64| AMQPValue::LongLongInt(n.min(i64::MAX as u64) as i64);
    if let Some(n) = cfg.max_len {
        args.insert("x-max-length".into(), clamp(n));
    }
    if let Some(n) = cfg.max_len_bytes {
        args.insert("x-max-length-bytes".into(), clamp(n));
    }
    if let Some(p) = cfg.max_priority {
        args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(p));
    }
    if cfg.single_active_consumer {
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    if cfg.enable_dead_letter {
        let dlx = plan.dead_letter_exchange();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dlx.into()),
        );
    }
    args
}

/// Declares exchange, queue, bindings and the dead-letter pair.
pub async fn declare(
    live: &Live,
    channel: &Channel,
    cfg: &RabbitConfig,
    plan: &QueuePlan,
) -> Result<(), BrokerError> {
    ensure_exchange(live, channel, cfg, &plan.topic).await?;
    let durable = QueueDeclareOptions {
        durable: cfg.durable,
        auto_delete: cfg.deleted_when_unused,
        ..QueueDeclareOptions::default()
    };
    if cfg.enable_dead_letter {
        // The dead-letter pair outlives consumers: it is where events go when
        // nobody can process them, so it is never auto-deleted.
        let dlx = plan.dead_letter_exchange();
        let dlq = plan.dead_letter_queue();
        ensure_exchange_named(channel, cfg, &dlx).await?;
        let opts = QueueDeclareOptions {
            durable: cfg.durable,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(dlq.as_str().into(), opts, FieldTable::default())
            .await
            .map_err(|e| map_err("declaring the dead-letter queue", e))?;
        channel
            .queue_bind(
                dlq.as_str().into(),
                dlx.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| map_err("binding the dead-letter queue", e))?;
    }
    channel
        .queue_declare(
            plan.queue.as_str().into(),
            durable,
            queue_arguments(cfg, plan),
        )
        .await
        .map_err(|e| map_err("declaring the queue", e))?;
    for key in &plan.routing_keys {
        channel
            .queue_bind(
                plan.queue.as_str().into(),
                plan.topic.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| map_err("binding the queue", e))?;
    }
    Ok(())
}

async fn ensure_exchange_named(
    channel: &Channel,
    cfg: &RabbitConfig,
    name: &str,
) -> Result<(), BrokerError> {
    let opts = lapin::options::ExchangeDeclareOptions {
        durable: cfg.durable,
        ..Default::default()
    };
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Fanout,
            opts,
            FieldTable::default(),
        )
        .await
        .map_err(|e| map_err("declaring the dead-letter exchange", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_and_arguments_follow_daprd() {
        let md: Metadata = [
            ("hostname", "h"),
            ("ttlInSeconds", "5"),
            ("maxLen", "10"),
            ("maxPriority", "3"),
            ("singleActiveConsumer", "true"),
            ("enableDeadLetter", "true"),
            ("routingKey", "a.b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = RabbitConfig::parse(&md).expect("valid").config;
        let plan = QueuePlan::new(&cfg, "orders", "app1", &Metadata::new()).expect("valid plan");
        assert_eq!(plan.queue, "app1-orders");
        assert_eq!(plan.routing_keys, ["a.b"]);
        assert_eq!(plan.dead_letter_queue(), "dlq-app1-orders");
        let sub_md: Metadata = [("queueName".to_string(), "custom".to_string())].into();
        let mut sub_md = sub_md;
        sub_md.insert("routingKey".into(), "x, y".into());
        let custom = QueuePlan::new(&cfg, "orders", "app1", &sub_md).expect("valid plan");
        assert_eq!(custom.queue, "custom");
        assert_eq!(custom.routing_keys, ["x", "y"]);
        let args = queue_arguments(&cfg, &plan);
        let a = args.inner();
        assert_eq!(a.get("x-message-ttl"), Some(&AMQPValue::LongLongInt(5000)));
        assert_eq!(a.get("x-max-length"), Some(&AMQPValue::LongLongInt(10)));
        assert_eq!(a.get("x-max-priority"), Some(&AMQPValue::ShortShortUInt(3)));
        assert_eq!(
            a.get("x-single-active-consumer"),
            Some(&AMQPValue::Boolean(true))
        );
        assert_eq!(
            a.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("dlx-app1-orders".into()))
        );
    }

    #[test]
    fn names_over_255_bytes_are_refused() {
        let md: Metadata = [("hostname".to_string(), "h".to_string())].into();
        let cfg = RabbitConfig::parse(&md).expect("valid").config;
        let long = "q".repeat(252);
        let sub: Metadata = [("queueName".to_string(), long.clone())].into();
        // 252 bytes fit, but dlx-<queue> would not.
        assert!(QueuePlan::new(&cfg, "orders", "app1", &sub).is_err());
        let sub: Metadata = [("routingKey".to_string(), "k".repeat(256))].into();
        assert!(QueuePlan::new(&cfg, "orders", "app1", &sub).is_err());
        assert!(QueuePlan::new(&cfg, &"t".repeat(256), "app1", &Metadata::new()).is_err());
        assert!(QueuePlan::new(&cfg, &"t".repeat(100), "app1", &Metadata::new()).is_ok());
    }
}
