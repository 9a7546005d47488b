//! End-to-end tests of the conversations of text and chat interactions
//! (upstream `GET /interactions/{id}/convo` and `POST .../convo/join`,
//! `.../close`, `.../leave`): who may join (the agent right), the join
//! types, leaving, closing (statusDetails `textConvoClosedByAgent`),
//! refusals, and the conversation surviving restarts (journal and
//! store).

use compliance_guard::pb::{
    CloseInteractionConvoRequest, GetInteractionConvoRequest, GetInteractionRequest, Interaction,
    InteractionConvo, JoinInteractionConvoRequest, LeaveInteractionConvoRequest,
};
use prost_types::Timestamp;
use tonic::{Code, Status};

use crate::ops::durability::{assert_read_from_the_store, assert_store_at, frames};
use crate::support::consts::{ANN_KEY, AUDITOR_KEY, BOB_KEY, CAT_KEY, P, T0};
use crate::support::server::{Interactions, start_on};

fn message(channel: &str) -> Interaction {
    Interaction {
        channel: channel.into(),
        direction: "outbound".into(),
        status: "inProgress".into(),
        started_at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        ..Interaction::default()
    }
}

async fn create(records: &mut Interactions, i: Interaction) -> Interaction {
    crate::support::server::create_in(records, P, i).await
}

async fn get(records: &mut Interactions, id: &str) -> Result<InteractionConvo, Status> {
    Ok(records
        .get_interaction_convo(GetInteractionConvoRequest {
            interaction_id: id.into(),
            person_id: String::new(),
        })
        .await?
        .into_inner()
        .data
        .unwrap())
}

async fn join(
    records: &mut Interactions,
    id: &str,
    join_type: &str,
) -> Result<InteractionConvo, Status> {
    Ok(records
        .join_interaction_convo(JoinInteractionConvoRequest {
            interaction_id: id.into(),
            person_id: P.into(),
            join_type: join_type.into(),
        })
        .await?
        .into_inner()
        .data
        .unwrap())
}

async fn leave(records: &mut Interactions, id: &str) -> Result<InteractionConvo, Status> {
    Ok(records
        .leave_interaction_convo(LeaveInteractionConvoRequest {
            interaction_id: id.into(),
            person_id: String::new(),
        })
        .await?
        .into_inner()
        .data
        .unwrap())
}

async fn close(records: &mut Interactions, id: &str) -> Result<InteractionConvo, Status> {
    Ok(records
        .close_interaction_convo(CloseInteractionConvoRequest {
            interaction_id: id.into(),
            person_id: String::new(),
        })
        .await?
        .into_inner()
        .data
        .unwrap())
}

/// The agents in a conversation, with their join types.
fn agents(c: &InteractionConvo) -> Vec<(String, String)> {
    c.agents
        .iter()
        .map(|a| {
            assert!(a.joined_at.is_some(), "{c:?}");
            (a.name.clone(), a.join_type.clone())
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn agents_join_solo_add_takeover_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.interactions().await;
    let mut ann = server.interactions_as(ANN_KEY).await;
    let mut bob = server.interactions_as(BOB_KEY).await;
    let mut cat = server.interactions_as(CAT_KEY).await;
    let text = create(&mut pipeline, message("text")).await;

    // Nobody in it yet.
    let c = get(&mut pipeline, &text.id).await.unwrap();
    assert_eq!(c.interaction_id, text.id);
    assert_eq!(c.channel, "text");
    assert!(c.agents.is_empty() && !c.closed, "{c:?}");

    // Solo (the default) into an empty conversation.
    let c = join(&mut ann, &text.id, "").await.unwrap();
    assert_eq!(agents(&c), pairs(&[("ann", "solo")]));
    // Joining again changes nothing.
    let again = join(&mut ann, &text.id, "add").await.unwrap();
    assert_eq!(again, c);

    // Solo is refused while another agent is in it, naming who.
    let e = join(&mut bob, &text.id, "solo").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("`ann`"), "{}", e.message());

    // Add joins alongside.
    let c = join(&mut bob, &text.id, "add").await.unwrap();
    assert_eq!(agents(&c), pairs(&[("ann", "solo"), ("bob", "add")]));

    // Takeover removes every other agent.
    let c = join(&mut cat, &text.id, "takeover").await.unwrap();
    assert_eq!(agents(&c), pairs(&[("cat", "takeover")]));
    assert_eq!(get(&mut ann, &text.id).await.unwrap(), c);

    // Leaving when not in it is refused; leaving when in it leaves.
    let e = leave(&mut ann, &text.id).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("not in the conversation"),
        "{}",
        e.message()
    );
    let c = leave(&mut cat, &text.id).await.unwrap();
    assert!(c.agents.is_empty(), "{c:?}");
    // Solo is possible again.
    let c = join(&mut bob, &text.id, "solo").await.unwrap();
    assert_eq!(agents(&c), pairs(&[("bob", "solo")]));

    // A bad join type is INVALID_ARGUMENT naming the field.
    let e = join(&mut ann, &text.id, "merge").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("joinType"), "{}", e.message());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn only_agents_join_and_only_text_and_chat_have_a_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.interactions().await;
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let mut ann = server.interactions_as(ANN_KEY).await;
    let chat = create(&mut pipeline, message("chat")).await;

    for client in [&mut pipeline, &mut auditor] {
        let e = join(client, &chat.id, "add").await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("agent"), "{}", e.message());
    }
    assert!(
        get(&mut pipeline, &chat.id)
            .await
            .unwrap()
            .agents
            .is_empty()
    );

    let mut voice = message("voice");
    voice.status = "attempted".into();
    let voice = create(&mut pipeline, voice).await;
    let e = join(&mut ann, &voice.id, "solo").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("`voice`") && e.message().contains("`text` and `chat`"),
        "{}",
        e.message()
    );
    for e in [
        get(&mut ann, &voice.id).await.unwrap_err(),
        close(&mut ann, &voice.id).await.unwrap_err(),
        leave(&mut ann, &voice.id).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    }
    let e = get(&mut ann, "IT-NONE-0001").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn closing_records_who_and_when_sets_status_details_and_bars_joins() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.interactions().await;
    let mut ann = server.interactions_as(ANN_KEY).await;
    let mut bob = server.interactions_as(BOB_KEY).await;
    let text = create(&mut pipeline, message("text")).await;
    join(&mut ann, &text.id, "solo").await.unwrap();

    let before = chrono::Utc::now().timestamp();
    let c = close(&mut ann, &text.id).await.unwrap();
    assert!(c.closed, "{c:?}");
    assert_eq!(c.closed_by, "ann");
    assert!(c.closed_at.unwrap().seconds >= before, "{c:?}");
    assert_eq!(agents(&c), pairs(&[("ann", "solo")]), "kept for the record");

    let record = pipeline
        .get_interaction(GetInteractionRequest {
            searchable: false,
            interaction_id: text.id.clone(),
            person_id: P.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(
        record.status_details.as_deref(),
        Some("textConvoClosedByAgent")
    );
    assert_eq!(record.status, "attempted");
    assert_eq!(record.updated_by.as_deref(), Some("ann"));

    for e in [
        join(&mut bob, &text.id, "add").await.unwrap_err(),
        join(&mut bob, &text.id, "takeover").await.unwrap_err(),
        close(&mut bob, &text.id).await.unwrap_err(),
        leave(&mut ann, &text.id).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("closed by `ann`"), "{}", e.message());
    }

    // A chat closes without a text detail: its status stays.
    let chat = create(&mut pipeline, message("chat")).await;
    let c = close(&mut pipeline, &chat.id).await.unwrap();
    assert!(c.closed && c.closed_by == "pipeline", "{c:?}");
    let record = pipeline
        .get_interaction(GetInteractionRequest {
            searchable: false,
            interaction_id: chat.id.clone(),
            person_id: P.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(record.status, "inProgress");
    assert_eq!(record.status_details, None);
    server.stop().await.unwrap();
}

/// A conversation (its agents, how each joined, its closing) is a record
/// of its own beside its interaction's: a start reads both back from the
/// journal, and from the store once the journal is materialized into it;
/// a change after that is journaled on top of the store.
#[tokio::test]
async fn conversations_survive_restarts_from_the_journal_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.interactions().await;
    let mut ann = server.interactions_as(ANN_KEY).await;
    let mut bob = server.interactions_as(BOB_KEY).await;
    let open = create(&mut pipeline, message("text")).await;
    let shut = create(&mut pipeline, message("text")).await;
    join(&mut ann, &open.id, "solo").await.unwrap();
    let open_convo = join(&mut bob, &open.id, "add").await.unwrap();
    join(&mut bob, &shut.id, "solo").await.unwrap();
    let shut_convo = close(&mut bob, &shut.id).await.unwrap();
    server.stop().await.unwrap();

    // Replayed from the journal (the store empty, at generation 0); then
    // the same, and materialized into the store at start (compact_after 0),
    // the journal rolled over to an empty generation 1; then from the
    // store alone.
    let data = dir.path().join("data");
    for (compact_after, generation) in [(1_000_000, 0), (0, 1), (1_000_000, 1)] {
        let server = start_on(dir.path(), compact_after).await;
        let mut pipeline = server.interactions().await;
        let mut cat = server.interactions_as(CAT_KEY).await;
        assert_eq!(get(&mut pipeline, &open.id).await.unwrap(), open_convo);
        assert_eq!(get(&mut pipeline, &shut.id).await.unwrap(), shut_convo);
        let e = join(&mut cat, &open.id, "solo").await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{compact_after}: {e:?}");
        let e = join(&mut cat, &shut.id, "add").await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{compact_after}: {e:?}");
        let record = pipeline
            .get_interaction(GetInteractionRequest {
                searchable: false,
                interaction_id: shut.id.clone(),
                person_id: P.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert_eq!(
            record.status_details.as_deref(),
            Some("textConvoClosedByAgent")
        );
        server.stop().await.unwrap();
        assert_store_at(&data, generation, &format!("compact_after {compact_after}"));
    }
    // A start now reads it all from the store, as the last one did: the
    // person, the two interactions and their two conversations, the journal
    // after it empty.
    assert_read_from_the_store(&data, 5);

    // A change after the materialization is journaled on top of the store.
    let server = start_on(dir.path(), 1_000_000).await;
    let mut ann = server.interactions_as(ANN_KEY).await;
    let c = leave(&mut ann, &open.id).await.unwrap();
    assert_eq!(agents(&c), pairs(&[("bob", "add")]));
    server.stop().await.unwrap();
    assert_store_at(&data, 1, "after the leave");
    let journal = std::fs::read(data.join("journal").join("journal-00000001.log")).unwrap();
    assert_eq!(frames(&journal, 0).len(), 1, "the leave, one record");
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.interactions().await;
    assert_eq!(get(&mut pipeline, &open.id).await.unwrap(), c);
    server.stop().await.unwrap();
}
