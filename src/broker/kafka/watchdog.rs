//! The stall check: a partition that has records waiting on the broker
//! (lag) but makes no progress for too long is what daprd users see as a
//! silently stuck consumer. The group consumer runs this check, feeding each
//! partition's detector (`stall.rs`), and restarts itself when one fires.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::context::Consumer_;
use super::state::{PartKey, Shared};

/// Bound of a watermark request made by the watchdog.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// Feeds the stall detectors. A partition is stalled when records wait on
/// the broker, nothing of it is queued or in flight here, and nothing was
/// fetched or finished for `stallTimeout`.
pub fn stalled(consumer: &Consumer_, shared: &Shared) -> bool {
    let now = Instant::now();
    let idle: Vec<(PartKey, Option<i64>)> = {
        let mut st = shared.lock();
        let mut idle = Vec::new();
        for (key, part) in st.parts.iter_mut() {
            let busy = part.paused || part.outstanding > 0 || part.offsets.unfinished() > 0;
            let progressed = std::mem::take(&mut part.progressed) || busy;
            if progressed {
                part.stall.observe(now, 0, true);
            } else {
                idle.push((key.clone(), part.offsets.next_fetch()));
            }
        }
        idle
    };
    for (key, next) in idle {
        let Ok((low, high)) = consumer.fetch_watermarks(&key.0, key.1, WATERMARK_TIMEOUT) else {
            continue;
        };
        let position = next.or_else(|| committed(consumer, &key)).unwrap_or(low);
        let lag = high - position;
        let mut st = shared.lock();
        let Some(part) = st.parts.get_mut(&key) else {
            continue;
        };
        if part.stall.observe(now, lag, false) {
            tracing::warn!(topic = %key.0, partition = key.1, lag, position, "Consumer stalled: lag without progress.");
            return true;
        }
    }
    false
}

fn committed(consumer: &Consumer_, key: &PartKey) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&key.0, key.1);
    let got = consumer.committed_offsets(tpl, WATERMARK_TIMEOUT).ok()?;
    let elem = got.find_partition(&key.0, key.1)?;
    match elem.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}
