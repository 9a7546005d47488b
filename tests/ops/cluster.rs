//! Guards as a cluster on a real 3-server NATS JetStream cluster on
//! loopback ([`crate::support::nats`]): three `compliance-guard serve
//! --cluster` processes, each with its own data directory, and the cases
//! the cluster promises: the cap exact across nodes, identity made once,
//! a write on one node binding the next Check on another, a killed guard
//! catching up, and NATS stopped answering UNAVAILABLE, never an allow.

use std::collections::BTreeSet;
use std::sync::Arc;

use compliance_guard::pb::{
    CheckRequest, CheckResponse, CreateInteractionRequest, GetInteractionRequest, Interaction,
    UpdateInteractionRequest,
};
use tokio::sync::Barrier;

use super::durability::{call, check, create, get, mask, placed_call, with_ext};
use crate::support::nats::Cluster;
use crate::support::process::{ServeProcess, run, serve, stderr};
use crate::support::server::{Checks, Interactions, checks_on, connect, interactions_on};

/// The rule a 7th placed call in 7 days trips.
const RULE: &str = "us-regf-7-calls-in-7-days";

/// A guard of the cluster, and its data directory.
struct Node {
    process: ServeProcess,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
    name: String,
}

/// Starts `compliance-guard serve --cluster` on `dir` and waits for
/// SERVING (a node turns SERVING once it has caught up).
async fn start_node(cluster: &Cluster, name: &str, dir: tempfile::TempDir) -> Node {
    start_node_with(cluster, name, dir, &[]).await
}

/// [`start_node`] with more flags.
async fn start_node_with(
    cluster: &Cluster,
    name: &str,
    dir: tempfile::TempDir,
    more: &[&str],
) -> Node {
    let urls = cluster.urls();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--insecure-no-auth",
        "--reserve-tolerance-seconds",
        "4000000000",
        "--no-reload",
        "--cluster",
        &urls,
        "--node-id",
        name,
        "--cluster-timeout-ms",
        "1000",
    ];
    args.extend_from_slice(more);
    let process = serve(args).spawn();
    let addr = process.addr();
    process.wait_serving(addr).await;
    Node {
        process,
        addr,
        dir,
        name: name.to_owned(),
    }
}

async fn three_nodes(cluster: &Cluster) -> Vec<Node> {
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start_node(cluster, &format!("n{i}"), tempfile::tempdir().unwrap()).await);
    }
    nodes
}

async fn clients(node: &Node) -> (Checks, Interactions) {
    let channel = connect(node.addr).await;
    (
        checks_on(channel.clone(), None),
        interactions_on(channel, None),
    )
}

fn reserve(person: &str, loan: &str, request_id: String) -> CheckRequest {
    CheckRequest {
        reserve: true,
        request_id,
        ..call(person, loan)
    }
}

/// Sends every request at once, spread over the nodes.
async fn race(nodes: &[Node], requests: Vec<CheckRequest>) -> Vec<CheckResponse> {
    let mut all = Vec::new();
    for n in nodes {
        all.push(clients(n).await.0);
    }
    let start = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut c = all[i % all.len()].clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                // UNAVAILABLE (a leader election) is retried with the same
                // request id, as the pipeline retries: the answer is
                // recorded once.
                let limit = std::time::Instant::now() + std::time::Duration::from_secs(60);
                loop {
                    match c.check(r.clone()).await {
                        Ok(answer) => return answer.into_inner(),
                        Err(e) => {
                            assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                            assert!(std::time::Instant::now() < limit, "{e:?}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// 50 reserving Checks over 3 guards under a cap of 7, `rounds` times:
/// exactly 7 allows each round, 43 blocks by the cap, 7 distinct ids.
async fn reserve_race(nodes: &[Node], rounds: usize, tag: &str) {
    for round in 0..rounds {
        let person = format!("BO-RAC{tag}-{round:04}");
        let requests = (0..50)
            .map(|i| reserve(&person, "L1", format!("{tag}-{round}-{i}")))
            .collect();
        let answers = race(nodes, requests).await;
        let allowed: Vec<_> = answers.iter().filter(|a| a.allowed).collect();
        assert_eq!(allowed.len(), 7, "round {round}: {answers:#?}");
        let ids: BTreeSet<_> = allowed.iter().map(|a| a.interaction_id.clone()).collect();
        assert_eq!(ids.len(), 7, "round {round}: {ids:?}");
        for blocked in answers.iter().filter(|a| !a.allowed) {
            assert_eq!(blocked.compliance_guard_rule_id, RULE, "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cap_holds_across_three_guards_and_a_write_on_one_binds_a_check_on_another() {
    let cluster = Cluster::start();
    let nodes = three_nodes(&cluster).await;
    reserve_race(&nodes, 3, "A").await;

    // Freshness: six calls recorded through n0, a seventh through n1, and
    // the very next Check on n2 is blocked, counting all seven.
    let (_, mut records0) = clients(&nodes[0]).await;
    let (_, mut records1) = clients(&nodes[1]).await;
    let (mut checks2, _) = clients(&nodes[2]).await;
    let mut ids = BTreeSet::new();
    for m in 0..6 {
        ids.insert(
            create(&mut records0, "BO-FRSH-0001", placed_call("L9", 60 + m))
                .await
                .id,
        );
    }
    assert!(
        check(&mut checks2, call("BO-FRSH-0001", "L9"))
            .await
            .allowed
    );
    ids.insert(
        create(&mut records1, "BO-FRSH-0001", placed_call("L9", 50))
            .await
            .id,
    );
    let blocked = check(&mut checks2, call("BO-FRSH-0001", "L9")).await;
    assert!(!blocked.allowed);
    assert_eq!(blocked.compliance_guard_rule_id, RULE);
    let counted: BTreeSet<_> = blocked.violations[0]
        .counted_interaction_ids
        .iter()
        .cloned()
        .collect();
    assert_eq!(counted, ids);

    // A cease recorded on n0 binds the very next Check on n2.
    let (mut checks0, _) = clients(&nodes[0]).await;
    assert!(
        check(&mut checks2, call("BO-CEAS-0001", "L1"))
            .await
            .allowed
    );
    checks0
        .add_restriction(compliance_guard::pb::AddRestrictionRequest {
            person_id: "BO-CEAS-0001".into(),
            restriction: Some(compliance_guard::pb::Restriction {
                kind: "ceaseCommunication".into(),
                source: "letter".into(),
                received_at: super::durability::at(crate::support::consts::MONDAY_10 - 3600),
                loan_ids: vec!["L1".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let ceased = check(&mut checks2, call("BO-CEAS-0001", "L1")).await;
    assert!(!ceased.allowed);
    assert_eq!(
        ceased.compliance_guard_rule_id,
        "us-regf-cease-communication"
    );

    // Every answer of a node with default settings reflects every write
    // acknowledged before it: it says it is not stale.
    assert_eq!(blocked.stale_up_to_ms, 0);
    // A node allowed stale reads skips the leader's round trip within its
    // bound after a catch-up, and says how stale it may be.
    let stale = start_node_with(
        &cluster,
        "n3",
        tempfile::tempdir().unwrap(),
        &["--cluster-stale-reads-ms", "60000"],
    )
    .await;
    let (mut checks3, _) = clients(&stale).await;
    // Its catch-up at start counts: the first Check may be stale already.
    let first = check(&mut checks3, call("BO-FRSH-0001", "L9")).await;
    assert!(first.stale_up_to_ms < 60_000, "{}", first.stale_up_to_ms);
    assert_eq!(first.compliance_guard_rule_id, RULE);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = check(&mut checks3, call("BO-FRSH-0001", "L9")).await;
    assert!(
        (20..60_000).contains(&second.stale_up_to_ms),
        "{}",
        second.stale_up_to_ms
    );
    stale.process.terminate().await;

    // A retry of a reserving Check on another node repeats its answer.
    let first = check(
        &mut checks2,
        reserve("BO-RTRY-0001", "L1", "retry-1".into()),
    )
    .await;
    let again = check(
        &mut checks0,
        reserve("BO-RTRY-0001", "L1", "retry-1".into()),
    )
    .await;
    assert!(first.allowed && again.allowed);
    assert_eq!(again.interaction_id, first.interaction_id);

    // Every node's store took the stream: each stops cleanly.
    let first = nodes[0].dir.path().to_owned();
    let mut dirs = Vec::new();
    for n in nodes {
        n.process.terminate().await;
        dirs.push(n.dir);
    }
    // A backup of a node (its store: the stream up to the sequence it
    // applied, all of it once the node stopped) restores into a single
    // node that answers the same Check (the seven calls block it).
    let backup = dirs[1].path().join("backup.cgb");
    let out = run(&[
        "backup",
        "--data-dir",
        dirs[1].path().to_str().unwrap(),
        "--to",
        backup.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A node's directory alone is refused by a single node: it would
    // decide without the cluster's later writes.
    let alone = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--insecure-no-auth",
        "--data-dir",
        first.to_str().unwrap(),
    ]);
    assert!(!alone.status.success());
    assert!(
        stderr(&alone).contains("is a cluster node's data directory"),
        "{}",
        stderr(&alone)
    );
    let restored = tempfile::tempdir().unwrap();
    let out = run(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--data-dir",
        restored.path().join("d").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let single = serve([
        "--listen",
        "127.0.0.1:0",
        "--insecure-no-auth",
        "--no-reload",
        "--data-dir",
        restored.path().join("d").to_str().unwrap(),
    ])
    .spawn();
    let addr = single.addr();
    single.wait_serving(addr).await;
    let mut checks = checks_on(connect(addr).await, None);
    let again = check(&mut checks, call("BO-FRSH-0001", "L9")).await;
    assert_eq!(again.compliance_guard_rule_id, RULE);
    assert!(!again.allowed);
    single.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_is_made_once_across_guards() {
    let cluster = Cluster::start();
    let nodes = three_nodes(&cluster).await;
    let mut records = Vec::new();
    for n in &nodes {
        records.push(clients(n).await.1);
    }

    // The same externalId created on all three at once: one record.
    let start = Arc::new(Barrier::new(3));
    let tasks: Vec<_> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                r.create_interaction(CreateInteractionRequest {
                    searchable: false,
                    person_id: "ext-crm-77".into(),
                    interaction: Some(with_ext(placed_call("L1", 30), "call-77")),
                })
                .await
                .unwrap()
                .into_inner()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let made: Vec<_> = answers.iter().filter(|a| a.created).collect();
    assert_eq!(made.len(), 1, "{answers:#?}");
    let ids: BTreeSet<_> = answers
        .iter()
        .map(|a| a.interaction.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    // ...and one person for the new `ext-` name.
    let people: BTreeSet<_> = answers
        .iter()
        .map(|a| a.interaction.as_ref().unwrap().person_id.clone())
        .collect();
    assert_eq!(people.len(), 1, "{people:?}");

    // Updates of two fields of one interaction through two guards at
    // once: records carry the full new state, so one planned on the state
    // before the other would erase it; the fence makes the second plan
    // again on the first, and every node ends with both.
    let target = create(&mut records[0], "BO-UPDT-0001", placed_call("L1", 15)).await;
    let status = UpdateInteractionRequest {
        person_id: "BO-UPDT-0001".into(),
        interaction_id: target.id.clone(),
        interaction: Some(Interaction {
            status: "failed".into(),
            ..Interaction::default()
        }),
        update_mask: mask(&["status"]),
    };
    let ended = UpdateInteractionRequest {
        update_mask: mask(&["endedAt"]),
        interaction: Some(Interaction {
            ended_at: super::durability::at(crate::support::consts::MONDAY_10 - 10 * 60),
            ..Interaction::default()
        }),
        ..status.clone()
    };
    let (mut a, mut b) = (records[1].clone(), records[2].clone());
    let (ua, ub) = tokio::join!(a.update_interaction(status), b.update_interaction(ended));
    ua.unwrap();
    ub.unwrap();
    for r in &mut records {
        let got = r
            .get_interaction(GetInteractionRequest {
                searchable: false,
                interaction_id: target.id.clone(),
                person_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert_eq!(got.status, "failed", "{got:?}");
        assert!(got.ended_at.is_some(), "{got:?}");
    }

    // 300 creates spread over the nodes, 30 at a time: 300 distinct ids.
    let mut ids = BTreeSet::new();
    for wave in 0..10 {
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let mut r = records[i % 3].clone();
                tokio::spawn(async move {
                    create(
                        &mut r,
                        &format!("BO-IDS0-{:04}", wave * 30 + i),
                        placed_call("L1", 10),
                    )
                    .await
                    .id
                })
            })
            .collect();
        for t in tasks {
            ids.insert(t.await.unwrap());
        }
    }
    assert_eq!(ids.len(), 300);

    // A second process started under a node's name by mistake claims a
    // number of its own: both serve, and the ids they make differ.
    let twin = start_node(&cluster, "n1", tempfile::tempdir().unwrap()).await;
    let (_, mut first) = clients(&nodes[1]).await;
    let (_, mut second) = clients(&twin).await;
    let one = create(&mut first, "BO-TWIN-0001", placed_call("L1", 5))
        .await
        .id;
    let two = create(&mut second, "BO-TWIN-0002", placed_call("L1", 5))
        .await
        .id;
    assert_ne!(one[..7], two[..7], "{one} {two}: the node numbers differ");
}

/// Creates on every node until told to stop; returns the ids acknowledged.
async fn writer(
    mut records: Interactions,
    person: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    let mut acked = Vec::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        i += 1;
        let r = records
            .create_interaction(CreateInteractionRequest {
                searchable: false,
                person_id: person.clone(),
                interaction: Some(with_ext(
                    placed_call("L1", 600 + i),
                    &format!("{person}-{i}"),
                )),
            })
            .await;
        match r {
            Ok(r) => acked.push(r.into_inner().interaction.unwrap().id),
            // The killed node's connection: its outcome is unknown.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    acked
}

/// Writers creating through every node at once, one borrower each
/// (`BO-<tag>-<n>`), until stopped.
struct Writers {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
    tag: &'static str,
}

impl Writers {
    async fn start(nodes: &[Node], count: usize, tag: &'static str) -> Writers {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..count {
            let records = clients(&nodes[w % nodes.len()]).await.1;
            tasks.push(tokio::spawn(writer(
                records,
                format!("BO-{tag}-{w:04}"),
                Arc::clone(&stop),
            )));
        }
        Writers { stop, tasks, tag }
    }

    /// Stops them, and asserts that every write acknowledged is read on
    /// each of `nodes`; returns how many there were.
    async fn stop_and_find_on(self, nodes: &[Node]) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut acked = 0;
        for (w, task) in self.tasks.into_iter().enumerate() {
            let ids = task.await.unwrap();
            acked += ids.len();
            let person = format!("BO-{}-{w:04}", self.tag);
            for n in nodes {
                let found = count_on(n, &person).await;
                for id in &ids {
                    assert!(found.contains(id), "{id} of {person} not on {}", n.name);
                }
            }
        }
        acked
    }
}

async fn count_on(node: &Node, person: &str) -> BTreeSet<String> {
    let (_, mut records) = clients(node).await;
    let mut all = BTreeSet::new();
    let mut after = String::new();
    loop {
        let request = compliance_guard::pb::ListInteractionsRequest {
            person_id: person.into(),
            limit: 100,
            starting_after: after.clone(),
            ..Default::default()
        };
        // A node still catching up (its consumer was on a killed server)
        // answers UNAVAILABLE, never a page without what was acknowledged.
        let limit = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let page = loop {
            match records.list_interactions(request.clone()).await {
                Ok(page) => break page.into_inner(),
                Err(e) => {
                    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                    assert!(std::time::Instant::now() < limit, "{e:?}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let Some(last) = page.data.last() else {
            return all;
        };
        after.clone_from(&last.id);
        all.extend(page.data.into_iter().map(|i: Interaction| i.id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guard_killed_under_writes_loses_nothing_acknowledged_and_catches_up() {
    let cluster = Cluster::start();
    let mut nodes = three_nodes(&cluster).await;
    let writers = Writers::start(&nodes, 16, "KILL").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let killed = nodes.remove(2);
    let (dir, name) = (killed.dir, killed.name);
    killed.process.kill_9();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    // Every acknowledged write is readable on the nodes still up.
    let acked = writers.stop_and_find_on(&nodes).await;
    assert!(acked > 50, "{acked}");
    // The killed node restarts on its data directory, catches up, and
    // reads what the others read.
    let back = start_node(&cluster, &name, dir).await;
    for w in [0, 5, 11] {
        let person = format!("BO-KILL-{w:04}");
        assert_eq!(
            count_on(&back, &person).await,
            count_on(&nodes[0], &person).await
        );
    }
    // It writes too, to borrowers it has not seen a write for since it
    // started (their buckets' last sequences are asked of the leader).
    let (_, mut again) = clients(&back).await;
    create(&mut again, "BO-KILL-0001", placed_call("L1", 1)).await;
    create(&mut again, "BO-KILL-NEW0", placed_call("L1", 1)).await;
    let (mut a, _) = clients(&back).await;
    let reserved = check(
        &mut a,
        CheckRequest {
            reserve: true,
            ..call("BO-KILL-0002", "L2")
        },
    )
    .await;
    assert!(reserved.allowed, "{reserved:?}");
    let (mut b, _) = clients(&nodes[0]).await;
    let here = check(&mut a, call("BO-KILL-0000", "L1")).await;
    let there = check(&mut b, call("BO-KILL-0000", "L1")).await;
    assert_eq!(here.allowed, there.allowed);
    assert_eq!(
        here.compliance_guard_rule_id,
        there.compliance_guard_rule_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_nats_stopped_writes_and_checks_are_unavailable_and_the_guards_recover() {
    let mut cluster = Cluster::start();
    let nodes = three_nodes(&cluster).await;
    let (mut checks, mut records) = clients(&nodes[0]).await;
    create(&mut records, "BO-DOWN-0001", placed_call("L1", 30)).await;
    cluster.stop_all();
    let write = records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: "BO-DOWN-0001".into(),
            interaction: Some(placed_call("L1", 20)),
        })
        .await
        .unwrap_err();
    assert_eq!(write.code(), tonic::Code::Unavailable, "{write:?}");
    let refused = checks.check(call("BO-DOWN-0001", "L1")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let reserve = checks
        .check(reserve("BO-DOWN-0001", "L1", "down-1".into()))
        .await
        .unwrap_err();
    assert_eq!(reserve.code(), tonic::Code::Unavailable, "{reserve:?}");

    // NATS returns on its own stores: the guards recover by themselves.
    cluster.restart_stopped();
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match checks.check(call("BO-DOWN-0001", "L1")).await {
            Ok(answer) => {
                assert!(answer.into_inner().allowed);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                assert!(std::time::Instant::now() < limit, "no recovery: {e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    let (_, mut other) = clients(&nodes[1]).await;
    create(&mut other, "BO-DOWN-0001", placed_call("L1", 10)).await;
}

/// The name of the stream's leader (`s0`, `s1`, `s2`), as JetStream
/// reports it.
async fn stream_leader(cluster: &Cluster) -> String {
    let client = async_nats::connect(cluster.urls().split(',').next().unwrap())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let info = js
        .get_stream("compliance-guard")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    info.cluster.unwrap().leader.unwrap()
}

/// Asks the stream's leader to step down: another server leads after an
/// election.
async fn step_down(cluster: &Cluster) {
    let client = async_nats::connect(cluster.urls().split(',').next().unwrap())
        .await
        .unwrap();
    client
        .request(
            "$JS.API.STREAM.LEADER.STEPDOWN.compliance-guard",
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_leader_killed_under_writes_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start();
    let nodes = three_nodes(&cluster).await;
    let writers = Writers::start(&nodes, 8, "LEAD").await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let leader = stream_leader(&cluster).await;
    let index: usize = leader.trim_start_matches('s').parse().unwrap();
    cluster.kill(index);
    // A new leader is elected within about 10 s; writes go on after it.
    let (_, mut records) = clients(&nodes[(index + 1) % 3]).await;
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = records
            .create_interaction(CreateInteractionRequest {
                searchable: false,
                person_id: "BO-LEAD-AFTR".into(),
                interaction: Some(placed_call("L1", 5)),
            })
            .await;
        match r {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                assert!(
                    std::time::Instant::now() < limit,
                    "no write after the kill: {e:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    writers.stop_and_find_on(&nodes).await;
}

/// The reserve race 100 times, the stream's leader stepping down every 10
/// rounds. Ignored: about a minute (`cargo test --test integration
/// cluster_reserve_race -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "about a minute; CI runs the race 3 times in the_cap_holds_across_three_guards"]
async fn cluster_reserve_race_100_rounds_across_leader_changes() {
    let cluster = Cluster::start();
    let nodes = three_nodes(&cluster).await;
    for ten in 0..10 {
        reserve_race(&nodes, 10, &format!("{}", (b'A' + ten) as char)).await;
        step_down(&cluster).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_with_different_rules_say_so() {
    let cluster = Cluster::start();
    let a = start_node(&cluster, "n0", tempfile::tempdir().unwrap()).await;
    // The shipped rules less one file: another version.
    let rules = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "us-wv.yaml")
        {
            std::fs::copy(&path, rules.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let b = start_node_with(
        &cluster,
        "n1",
        tempfile::tempdir().unwrap(),
        &["--rules", rules.path().to_str().unwrap()],
    )
    .await;
    for node in [&a, &b] {
        node.process.find_line(|l| {
            l.contains("the cluster's nodes have different rules in force")
                .then_some(())
        });
    }
}

/// Audio lives in the cluster's object store, so any guard serves any
/// recording: uploaded through one guard, it downloads by stream and by
/// link through the others, and the link one guard signs another serves
/// (one link key for the cluster). A guard that fetches audio checks it
/// against the size and SHA-256 recorded, so an object damaged in the
/// object store is never served as whole. Deleting the interaction
/// purges the object once the retention (zero here) has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_uploaded_through_one_guard_is_served_by_every_guard() {
    use crate::api::media::{http, path_of};
    use crate::ops::backup_import::{download_recording, upload_recording};
    use async_nats::jetstream;

    let cluster = Cluster::start();
    let flags = [
        "--media-listen",
        "127.0.0.1:0",
        "--media-retention-seconds",
        "0",
        "--media-sweep-seconds",
        "1",
    ];
    let mut nodes = Vec::new();
    for i in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        nodes.push(start_node_with(&cluster, &format!("n{i}"), dir, &flags).await);
    }
    let urls_of_cluster = cluster.urls();
    let mut records: Vec<Interactions> = Vec::new();
    for n in &nodes {
        records.push(clients(n).await.1);
    }
    let audio: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (id, key) = upload_recording(&mut records[0], "BO-AUDI-0001", "call-1", &audio).await;
    let cached = |n: &Node| n.dir.path().join("media").join(&key).exists();
    assert!(cached(&nodes[0]));
    assert!(!cached(&nodes[1]) && !cached(&nodes[2]));

    // By stream through n1, which fetches it and keeps a copy.
    assert_eq!(download_recording(&mut records[1], &id).await, audio);
    assert!(cached(&nodes[1]));

    // A link signed by n1 is served by n2's listener: same key, same audio.
    let got = records[1]
        .download_interaction_recording(compliance_guard::pb::DownloadInteractionRecordingRequest {
            interaction_id: id.clone(),
            return_url: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(compliance_guard::pb::download_interaction_recording_response::Part::Link(link)) =
        got.part
    else {
        panic!("a link: {got:?}");
    };
    let on_n1 = nodes[1].process.media_addr();
    let path = path_of(&link.url, on_n1);
    let on_n2 = http(nodes[2].process.media_addr(), "GET", &path, None).await;
    assert_eq!(on_n2.status, 200);
    assert_eq!(on_n2.body, audio);

    // A backup of n2, which holds the first recording but not a second
    // uploaded through n0: without the cluster's flags it says the second
    // is missing; with them it fetches it, checked, into the backup.
    let (id3, key3) = upload_recording(&mut records[0], "BO-AUDI-0001", "call-3", &audio).await;
    let backup = |with_cluster: bool| {
        let n2_dir = nodes[2].dir.path().to_str().unwrap().to_owned();
        let to = nodes[2]
            .dir
            .path()
            .join(format!("backup-{with_cluster}.cgb"));
        let urls = urls_of_cluster.clone();
        tokio::task::spawn_blocking(move || {
            let to_text = to.to_str().unwrap().to_owned();
            let mut args = vec!["backup", "--data-dir", &n2_dir, "--to", &to_text];
            if with_cluster {
                args.extend(["--cluster", &urls]);
            }
            (run(&args), to)
        })
    };
    // (n2's store takes the record a moment after n2 has applied it.)
    let missing = format!("stored audio `{key3}` is named by a record but is not on disk");
    let mut said = String::new();
    for _ in 0..100 {
        let (o, _) = backup(false).await.unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        said = stderr(&o);
        if said.contains(&missing) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(said.contains(&missing), "{said}");
    let (o, to) = backup(true).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("not in the backup"), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("and 2 recordings and voicemails (600000 bytes)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let copies = compliance_guard::ops::media_dir_of(&to);
    assert_eq!(std::fs::read(copies.join(&key3)).unwrap(), audio);
    assert_eq!(std::fs::read(copies.join(&key)).unwrap(), audio);
    assert!(!nodes[2].dir.path().join("media").join(&key3).exists());
    let _ = id3;

    // The object damaged in the object store: a guard that has no copy yet
    // refuses it (DATA_LOSS), and keeps nothing; n1's copy still serves.
    let nats = async_nats::connect(urls_of_cluster.split(',').collect::<Vec<_>>())
        .await
        .unwrap();
    let objects = jetstream::new(nats)
        .get_object_store("compliance-guard-media")
        .await
        .unwrap();
    let (id2, key2) = upload_recording(&mut records[0], "BO-AUDI-0001", "call-2", &audio).await;
    let mut damaged = audio.clone();
    damaged[1000] ^= 1;
    // This client is new to the servers: one of them may not know the
    // object store's stream for a moment ("no responders").
    let mut tries = 0;
    while let Err(e) = objects.put(key2.as_str(), &mut damaged.as_slice()).await {
        tries += 1;
        assert!(tries < 50, "{e}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = records[2]
        .download_interaction_recording(compliance_guard::pb::DownloadInteractionRecordingRequest {
            interaction_id: id2.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::DataLoss, "{refused:?}");
    assert!(!nodes[2].dir.path().join("media").join(&key2).exists());
    assert_eq!(download_recording(&mut records[0], &id2).await, audio);

    // Deleted through n2: the object is purged by the sweep (retention 0),
    // and the link answers 404 everywhere.
    records[2]
        .delete_interaction(compliance_guard::pb::DeleteInteractionRequest {
            interaction_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut left = true;
    for _ in 0..100 {
        left = objects.info(key.as_str()).await.unwrap().deleted;
        if !left {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if left {
        for n in &nodes {
            for l in n.process.log() {
                if l.contains("sweep") || l.contains("WARN") || l.contains("ERROR") {
                    eprintln!("{}: {l}", n.name);
                }
            }
        }
    }
    assert!(
        !left,
        "the deleted interaction's audio is purged from the object store"
    );
    for n in &nodes {
        let gone = http(n.process.media_addr(), "GET", &path, None).await;
        assert_eq!(gone.status, 404, "{}", n.name);
    }
    assert!(
        !objects.info(key2.as_str()).await.unwrap().deleted,
        "the other stays"
    );
}

/// `import --cluster` writes into a running cluster: a process of its own
/// opens a node on a fresh directory, catches up, and publishes every good
/// line, fenced as any write. The guards serve the records at once, a
/// Check on another guard counts them, and a second import (on the same,
/// now stopped, importer's directory) finds every one already present.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn import_writes_into_a_running_cluster_once() {
    use crate::ops::backup_import::{
        BAD, GOOD, LINES, assert_imported, expected_stderr, import_file, now_key,
    };
    let cluster = Cluster::start();
    let nodes = [
        start_node(&cluster, "n0", tempfile::tempdir().unwrap()).await,
        start_node(&cluster, "n1", tempfile::tempdir().unwrap()).await,
    ];
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("history.jsonl");
    std::fs::write(&file, import_file()).unwrap();
    let importer = root.path().join("importer");
    let urls = cluster.urls();
    let args: Vec<String> = [
        "import",
        "--cluster",
        &urls,
        "--node-id",
        "importer",
        "--data-dir",
        importer.to_str().unwrap(),
        "--created-by",
        "legacy-crm",
        file.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    let import = || {
        let args = args.clone();
        tokio::task::spawn_blocking(move || {
            run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let before = now_key();
    let o = import().await.unwrap();
    let after = now_key();
    let said = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    for line in expected_stderr(file.to_str().unwrap()).lines() {
        assert!(said.contains(line), "{line:?} in {said}");
    }
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("imported {GOOD} of {LINES} lines; 0 already present; {BAD} refused\n")
    );

    let (mut checks, mut records) = clients(&nodes[1]).await;
    assert_imported(&mut records, &mut checks, "legacy-crm", (before, after)).await;

    let o = import().await.unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("imported 0 of {LINES} lines; {GOOD} already present; {BAD} refused\n")
    );
    let (_, mut first) = clients(&nodes[0]).await;
    assert_eq!(
        crate::ops::backup_import::list_all(&mut first).await.len(),
        GOOD
    );

    // The same ids given to other people's records by two imports at once
    // (each line a person of its own, so 32 are in flight in each): the
    // cluster takes each id once (a client-given id is fenced), and the
    // other import refuses it, as a single node's index would.
    let mut runs = Vec::new();
    for side in ["a", "b"] {
        let file = root.path().join(format!("ids-{side}.jsonl"));
        let text: String = (0..200)
            .map(|i| {
                format!(
                    "{{\"id\":\"IT-TWICE-{i:04}\",\"personId\":\"ext-tw{side}-{i:04}\",\"channel\":\"email\",\"direction\":\"outbound\",\"status\":\"succeeded\",\"statusDetails\":\"emailDelivered\",\"startedAt\":\"2026-11-20T12:00:00Z\"}}\n"
                )
            })
            .collect();
        std::fs::write(&file, text).unwrap();
        let mut args = args.clone();
        args[4] = format!("importer-{side}");
        args[6] = root
            .path()
            .join(format!("importer-{side}"))
            .to_str()
            .unwrap()
            .to_owned();
        *args.last_mut().unwrap() = file.to_str().unwrap().to_owned();
        runs.push(tokio::task::spawn_blocking(move || {
            run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        }));
    }
    let (mut imported, mut refused) = (0, 0);
    for run in runs {
        let o = run.await.unwrap();
        let said = String::from_utf8_lossy(&o.stdout).into_owned();
        let counts: Vec<u64> = said
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        assert_eq!(counts.len(), 4, "{said} {}", stderr(&o));
        assert_eq!(counts[1], 200, "{said}");
        imported += counts[0];
        refused += counts[3];
    }
    assert_eq!((imported, refused), (200, 200));
}

/// A single node's history moves into a cluster: its backup, restored
/// with `restore --cluster` into a stream with no history, is published
/// record by record (its audio put in the object store, checked), and
/// every node then serves it as the single node did: the records as
/// imported, the Check counting them, the recording. A second restore is
/// refused: the cluster holds history now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_nodes_backup_restores_into_a_cluster() {
    use crate::ops::backup_import::{
        assert_imported, download_recording, import_file, now_key, upload_to,
    };
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("history.jsonl");
    std::fs::write(&file, import_file()).unwrap();
    let single = root.path().join("single");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let before = now_key();
    let o = run(&["import", "--data-dir", &path(&single), &path(&file)]);
    let after = now_key();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let audio: Vec<u8> = (0..200_000u32).map(|i| (i * 11 % 241) as u8).collect();
    {
        let server = crate::support::server::options()
            .data_dir(&single)
            .open()
            .sync()
            .serving()
            .await;
        let mut records = server.interactions().await;
        upload_to(&mut records, "IT-IMPT-0004", &audio).await;
        drop(records);
        server.stop().await.unwrap();
    }
    let backup = root.path().join("single.cgb");
    let o = run(&[
        "backup",
        "--data-dir",
        &path(&single),
        "--to",
        &path(&backup),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let cluster = Cluster::start();
    let urls = cluster.urls();
    let restore = |dir: std::path::PathBuf| {
        let (urls, backup) = (urls.clone(), path(&backup));
        tokio::task::spawn_blocking(move || {
            run(&[
                "restore",
                "--from",
                &backup,
                "--data-dir",
                dir.to_str().unwrap(),
                "--cluster",
                &urls,
                "--node-id",
                "restorer",
            ])
        })
    };
    let o = restore(root.path().join("restorer")).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        said.starts_with("restored ")
            && said.contains("into the cluster's stream `compliance-guard`"),
        "{said}"
    );
    assert!(
        said.contains("and 1 recordings and voicemails, each checked against its SHA-256"),
        "{said}"
    );

    let nodes = [
        start_node(&cluster, "n0", tempfile::tempdir().unwrap()).await,
        start_node(&cluster, "n1", tempfile::tempdir().unwrap()).await,
    ];
    let (mut checks, mut records) = clients(&nodes[1]).await;
    assert_imported(&mut records, &mut checks, "import", (before, after)).await;
    let (_, mut first) = clients(&nodes[0]).await;
    assert_eq!(download_recording(&mut first, "IT-IMPT-0004").await, audio);

    let o = restore(root.path().join("again")).await.unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("the cluster already holds history (2 people, 8 interactions)"),
        "{}",
        stderr(&o)
    );
}

/// A restore into a cluster must be the stream's only writer: each of its
/// messages is stored only right after the one before, so a write by
/// anyone else in between (a node started too early, a create through it)
/// stops the restore with FAILED_PRECONDITION rather than interleave with
/// it. Driven through the library's node, as `restore --cluster` drives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_stops_when_another_writer_writes() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let restorer = compliance_guard::server::open_node(
        compliance_guard::index::IndexConfig::default(),
        dir.path(),
        compliance_guard::cluster::ClusterConfig::new(cluster.urls(), "restorer"),
    )
    .await
    .unwrap();
    let at = restorer.cluster_state().unwrap().applied;
    // A message after the stream's end is stored, and the next one after it.
    let first = restorer.replay_published(&[], at).await.unwrap();
    assert_eq!(first, at + 1);
    let second = restorer.replay_published(&[], first).await.unwrap();
    assert_eq!(second, first + 1);
    // A node starts (it claims a number: a write), then takes a create.
    let node = start_node(&cluster, "n0", tempfile::tempdir().unwrap()).await;
    let refused = restorer.replay_published(&[], second).await.unwrap_err();
    assert!(
        matches!(&refused, compliance_guard::guard::GuardError::FailedPrecondition(m)
            if m.contains("another writer wrote to the cluster's stream during the restore")),
        "{refused:?}"
    );
    let (_, mut records) = clients(&node).await;
    create(&mut records, "BO-RSTR-0001", placed_call("L1", 5)).await;
    let refused = restorer.replay_published(&[], second).await.unwrap_err();
    assert!(
        matches!(
            refused,
            compliance_guard::guard::GuardError::FailedPrecondition(_)
        ),
        "{refused:?}"
    );
}

/// A cluster node's copies of audio are a cache: one nobody asked for in
/// `--media-cache-seconds` is removed by the sweep, and fetched again,
/// checked, when asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nodes_copy_of_audio_is_trimmed_and_fetched_again() {
    use crate::ops::backup_import::{download_recording, upload_recording};
    let cluster = Cluster::start();
    let n0 = start_node(&cluster, "n0", tempfile::tempdir().unwrap()).await;
    let n1 = start_node_with(
        &cluster,
        "n1",
        tempfile::tempdir().unwrap(),
        &["--media-cache-seconds", "1", "--media-sweep-seconds", "1"],
    )
    .await;
    let (_, mut r0) = clients(&n0).await;
    let (_, mut r1) = clients(&n1).await;
    let audio: Vec<u8> = (0..120_000u32).map(|i| (i * 5 % 239) as u8).collect();
    let (id, key) = upload_recording(&mut r0, "BO-TRIM-0001", "call-1", &audio).await;
    let copy = n1.dir.path().join("media").join(&key);
    assert_eq!(download_recording(&mut r1, &id).await, audio);
    let mut gone = false;
    for _ in 0..100 {
        if !copy.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "n1's copy is trimmed");
    assert_eq!(download_recording(&mut r1, &id).await, audio);
    // n0's own upload is kept: its cache holds audio a week by default.
    assert!(n0.dir.path().join("media").join(&key).exists());
}

/// A node restarted on its data directory holds the records of the
/// horizon more than a day old as counting entries and names only (read
/// from its store as it starts); a change another node makes to one of
/// them reaches it (its store read first), reads answer as on the other
/// node, and a Check answers as before the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_holds_old_records_as_entries_and_applies_changes_to_them() {
    const ANN: &str = "BO-LETG-0001";
    let cluster = Cluster::start();
    let n0 = start_node(&cluster, "n0", tempfile::tempdir().unwrap()).await;
    let (mut checks, mut records) = clients(&n0).await;
    let mut made = Vec::new();
    // Seven placed calls in the seven days before the Check, every one
    // more than a day old: the seventh fills Regulation F's cap.
    for hours in [150, 130, 110, 90, 70, 50, 30] {
        made.push(create(&mut records, ANN, placed_call("L1", hours * 60)).await);
    }
    let before = check(&mut checks, call(ANN, "L1")).await;
    assert!(!before.allowed, "{before:?}");
    drop((checks, records));
    let (dir, name) = (n0.dir, n0.name);
    n0.process.terminate().await;
    let n0 = start_node(&cluster, &name, dir).await;
    n0.process.find_line(|l| {
        (l.contains("interactions loaded") && l.contains("entries_only=7")).then_some(())
    });

    let n1 = start_node(&cluster, "n1", tempfile::tempdir().unwrap()).await;
    let (_, mut other) = clients(&n1).await;
    other
        .update_interaction(UpdateInteractionRequest {
            person_id: ANN.into(),
            interaction_id: made[0].id.clone(),
            interaction: Some(Interaction {
                status: "failed".into(),
                status_details: None,
                ..Interaction::default()
            }),
            update_mask: mask(&["status", "statusDetails"]),
        })
        .await
        .unwrap();
    let (mut checks, mut records) = clients(&n0).await;
    let got = get(&mut records, &made[0].id).await.unwrap();
    assert_eq!(got.status, "failed", "{got:?}");
    for r in &made[1..] {
        assert_eq!(&get(&mut records, &r.id).await.unwrap(), r);
    }
    // A failed call never reached anyone: six calls count, on both nodes.
    let after = check(&mut checks, call(ANN, "L1")).await;
    assert!(after.allowed, "{after:?}");
    let (mut there, _) = clients(&n1).await;
    assert_eq!(after, check(&mut there, call(ANN, "L1")).await);
}
