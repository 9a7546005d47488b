//! GetInteractionConvo, JoinInteractionConvo, CloseInteractionConvo and
//! LeaveInteractionConvo: who is in a text or chat conversation, and
//! whether it is closed.

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::Service;
use super::auth::caller;
use crate::model::Convo;
use crate::pb;
use crate::wire::{convo_pb_of, non_empty};

/// GetInteractionConvo: the conversation as it stands.
pub(super) async fn get(
    service: &Service,
    req: Request<pb::GetInteractionConvoRequest>,
) -> Result<Response<pb::GetInteractionConvoResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let convo =
        service
            .guard()?
            .convo(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)?;
    Ok(Response::new(answer(&convo)))
}

/// JoinInteractionConvo: the caller, an agent, joins as `joinType` says.
pub(super) async fn join(
    service: &Service,
    req: Request<pb::JoinInteractionConvoRequest>,
) -> Result<Response<pb::JoinInteractionConvoResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let convo = service
        .guard()?
        .join_convo(
            non_empty(&r.person_id).as_deref(),
            &r.interaction_id,
            &r.join_type,
            &who,
            Utc::now(),
        )
        .await?;
    Ok(Response::new(answer(&convo)))
}

/// CloseInteractionConvo: closes the conversation.
pub(super) async fn close(
    service: &Service,
    req: Request<pb::CloseInteractionConvoRequest>,
) -> Result<Response<pb::CloseInteractionConvoResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let convo = service
        .guard()?
        .close_convo(
            non_empty(&r.person_id).as_deref(),
            &r.interaction_id,
            &who,
            Utc::now(),
        )
        .await?;
    Ok(Response::new(answer(&convo)))
}

/// LeaveInteractionConvo: the caller leaves the conversation.
pub(super) async fn leave(
    service: &Service,
    req: Request<pb::LeaveInteractionConvoRequest>,
) -> Result<Response<pb::LeaveInteractionConvoResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let convo = service
        .guard()?
        .leave_convo(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)
        .await?;
    Ok(Response::new(answer(&convo)))
}

/// The answer every conversation RPC gives: the conversation after it
/// (each RPC has a response type of its own, with this one field).
fn answer<R: From<pb::InteractionConvo>>(convo: &Convo) -> R {
    R::from(convo_pb_of(convo))
}

/// Each conversation RPC's response from the conversation.
macro_rules! convo_response {
    ($($response:ident),+) => {$(
        impl From<pb::InteractionConvo> for pb::$response {
            fn from(data: pb::InteractionConvo) -> Self {
                pb::$response { data: Some(data) }
            }
        }
    )+};
}

convo_response!(
    GetInteractionConvoResponse,
    JoinInteractionConvoResponse,
    CloseInteractionConvoResponse,
    LeaveInteractionConvoResponse
);
