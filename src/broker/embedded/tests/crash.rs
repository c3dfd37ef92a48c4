//! SIGKILL crash test. The test re-runs its own binary as a child that
//! publishes from several tasks and prints each id once `publish` returned;
//! the parent kills it mid-stream, reopens the folder and checks that every
//! acknowledged id is stored.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::conformance::{await_markers, event, eventually, Recorder, DEADLINE};
use crate::broker::embedded::config::EmbeddedConfig;
use crate::broker::{PubSub, SubscribeRequest};

const CHILD_ENV: &str = "SIDEBUS_EMBEDDED_CRASH_CHILD";
const TEST_NAME: &str =
    "broker::embedded::tests::crash::killed_publisher_loses_no_acknowledged_event";
const TOPIC: &str = "crash";
const PUBLISHERS: usize = 8;
/// Keys each child publisher cycles through.
const KEYS_PER_PUBLISHER: u64 = 16;
/// Most acknowledgements the parent waits for before killing a child.
const KILL_AFTER: usize = 3000;
/// Children started and killed in the same folder.
const ROUNDS: usize = 3;
/// A stray child stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_publisher_loses_no_acknowledged_event() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return child(Path::new(&dir)).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked = HashSet::new();
    // Several kills at random points: each child also recovers the folder
    // the previous one was killed in, and appends after the cut.
    for round in 0..ROUNDS {
        let path = dir.path().to_path_buf();
        let kill_after = rand::random_range(KILL_AFTER / 2..=KILL_AFTER);
        let ids = tokio::task::spawn_blocking(move || run_and_kill(&path, kill_after))
            .await
            .expect("parent task");
        assert!(
            ids.len() >= kill_after,
            "round {round}: only {} acknowledged",
            ids.len()
        );
        acked.extend(ids);
    }

    let ps = super::open(dir.path(), EmbeddedConfig::default()).await;
    let rec = Recorder::ok();
    let req = SubscribeRequest {
        topic: TOPIC.into(),
        group: "verify".into(),
        metadata: BTreeMap::new(),
    };
    let sub = ps.subscribe(req, rec.clone()).await.expect("subscribe");
    let lost = eventually(
        "every acknowledged id (observed: how many missing)",
        || {
            acked
                .iter()
                .filter(|id| rec.count(id.as_bytes()) == 0)
                .count()
        },
        |lost| *lost == 0,
    )
    .await;
    // A marker behind every key the children used: a record stored twice
    // sits before its key's marker in the partition, so it has been
    // delivered by the time the markers are.
    let keys: Vec<String> = (0..PUBLISHERS)
        .flat_map(|t| (0..KEYS_PER_PUBLISHER).map(move |k| format!("k{t}-{k}")))
        .collect();
    let keys: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
    let dyn_ps: Arc<dyn PubSub> = ps.clone();
    await_markers(&dyn_ps, TOPIC, &keys, 0, &[&rec]).await;
    let deliveries = rec.deliveries();
    let stored = rec.distinct();
    let duplicates = deliveries.len() - stored;
    println!(
        "crash test: acknowledged={} stored={} (including unacknowledged in-flight) lost={lost} duplicates={duplicates}",
        acked.len(),
        stored
    );
    assert_eq!(lost, 0, "acknowledged events lost after SIGKILL");
    assert_eq!(duplicates, 0, "an event was stored or delivered twice");
    sub.stop().await;
    ps.close().await.expect("close");
}

/// Starts the child, reads acknowledged ids, SIGKILLs it, returns the ids.
fn run_and_kill(dir: &Path, kill_after: usize) -> HashSet<String> {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked = HashSet::new();
    let mut lines = BufReader::new(stdout).lines();
    let end = Instant::now() + DEADLINE;
    while acked.len() < kill_after {
        assert!(
            Instant::now() < end,
            "child acknowledged only {} in time",
            acked.len()
        );
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(id) = line.strip_prefix("ACK ") {
                    acked.insert(id.to_string());
                }
            }
            other => panic!("child output ended early: {other:?}"),
        }
    }
    child.kill().expect("SIGKILL child");
    // Ids printed before the kill are acknowledged too: read to EOF.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.insert(id.to_string());
        }
    }
    let status = child.wait().expect("reap child");
    assert!(!status.success(), "child exited by itself: {status}");
    acked
}

/// The child: publishes from several tasks until killed.
async fn child(dir: &Path) {
    let ps = super::open(dir, EmbeddedConfig::default()).await;
    let pid = std::process::id();
    let mut tasks = Vec::new();
    for t in 0..PUBLISHERS {
        let ps: Arc<super::Embedded> = ps.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut seq = 0u64;
            while started.elapsed() < CHILD_LIFETIME {
                let id = format!("{pid}-p{t}-{seq}");
                let key = format!("k{t}-{}", seq % KEYS_PER_PUBLISHER);
                match ps.publish(event(TOPIC, Some(&key), &id)).await {
                    Ok(()) => println!("ACK {id}"),
                    Err(e) => eprintln!("publish {id} failed: {e}"),
                }
                seq += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
