//! The one way the integration tests wait for something: poll with a
//! deadline and a short interval, and on timeout say what was awaited and
//! what was last seen.
//!
//! Waiting for a condition with a deadline is fine; a fixed sleep that
//! decides "nothing happened" is not. To show that something did *not*
//! happen, wait for a marker event that would come after it instead.

use std::time::Duration;

/// How long [`assert_eventually!`] waits when not told: long enough for a
/// cold start on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Pause between two looks. Short, so a test never waits much longer than
/// the condition takes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Polls until a condition holds and evaluates to the value last observed.
///
/// `assert_eventually!(what, [within,] observe, done)`: evaluates `observe`
/// (an expression, which may `.await`) every [`POLL_INTERVAL`] until
/// `done(&value)` holds, and returns that value. After `within` (default
/// [`DEADLINE`]) it panics with `what` and the last observed value, which
/// must be `Debug`.
///
/// ```ignore
/// let n = assert_eventually!("3 requests", app.count(), |n: &usize| *n >= 3);
/// ```
macro_rules! assert_eventually {
    ($what:expr, $observe:expr, $done:expr $(,)?) => {
        $crate::support::eventually::assert_eventually!(
            $what,
            $crate::support::eventually::DEADLINE,
            $observe,
            $done
        )
    };
    ($what:expr, $within:expr, $observe:expr, $done:expr $(,)?) => {{
        let within: ::std::time::Duration = $within;
        let deadline = ::std::time::Instant::now() + within;
        loop {
            let observed = $observe;
            if ($done)(&observed) {
                break observed;
            }
            if ::std::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {within:?} waiting for {}; last observed: {observed:?}",
                    $what
                );
            }
            ::tokio::time::sleep($crate::support::eventually::POLL_INTERVAL).await;
        }
    }};
}

pub(crate) use assert_eventually;
