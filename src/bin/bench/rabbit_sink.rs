//! Queues bound to the RabbitMQ topics the bench publishes to but does not
//! subscribe to. `pubsub.rabbitmq` publishes `mandatory`, so an event that
//! no queue is bound to fails (312 NO_ROUTE); in a deployment the
//! subscriber's queue is there. Each queue is durable, like a subscriber's,
//! capped by `x-max-length` (oldest dropped) so the broker does not grow
//! during a run, and deleted at the end.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

/// Messages each queue keeps before it drops the oldest.
const MAX_LEN: i64 = 10_000;

/// Declared queues on an open channel.
pub struct Sinks {
    conn: Connection,
    channel: Channel,
    queues: Vec<String>,
}

impl Sinks {
    /// Declares each topic's exchange as the component does (durable
    /// fanout, the defaults) and binds a `bench-sink-<topic>` queue to it.
    pub async fn declare(url: &str, topics: &[&str]) -> Result<Self, String> {
        let fail = |what: &str, e: lapin::Error| format!("RabbitMQ sink queues: {what}: {e}");
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(|e| fail("connect", e))?;
        let channel = conn
            .create_channel()
            .await
            .map_err(|e| fail("channel", e))?;
        let mut sinks = Self {
            conn,
            channel,
            queues: Vec::new(),
        };
        match sinks.bind(topics).await {
            Ok(()) => Ok(sinks),
            Err(e) => {
                let _ = sinks.delete().await;
                Err(fail("declare and bind", e))
            }
        }
    }

    async fn bind(&mut self, topics: &[&str]) -> Result<(), lapin::Error> {
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(MAX_LEN));
        for topic in topics {
            let queue = format!("bench-sink-{topic}");
            self.channel
                .exchange_declare(
                    (*topic).into(),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            self.channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    args.clone(),
                )
                .await?;
            self.queues.push(queue.clone());
            self.channel
                .queue_bind(
                    queue.as_str().into(),
                    (*topic).into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes the queues (and what they hold) and closes the connection.
    pub async fn delete(self) -> Result<(), String> {
        let mut out = Ok(());
        for q in &self.queues {
            if let Err(e) = self
                .channel
                .queue_delete(q.as_str().into(), Default::default())
                .await
            {
                out = Err(format!("RabbitMQ sink queues: delete {q}: {e}"));
            }
        }
        let _ = self.conn.close(200, "bench done".into()).await;
        out
    }
}
