//! DeclareDebt, LinkPerson, ListReservations and CancelReservation: who a
//! history belongs to (debts and aliases), and the slots reserving Checks
//! hold.

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::Service;
use super::auth::caller;
use crate::guard::Reservation;
use crate::pb;
use crate::wire::{non_empty, pb_of, ts};

/// DeclareDebt: several loans form one debt. The guard records no author
/// for it, so it reads no caller.
pub(super) async fn declare_debt(
    service: &Service,
    req: Request<pb::DeclareDebtRequest>,
) -> Result<Response<pb::DeclareDebtResponse>, Status> {
    let r = req.get_ref();
    service
        .guard()?
        .declare_debt(&r.person_id, &r.debt_id, &r.loan_ids, Utc::now())
        .await?;
    Ok(Response::new(pb::DeclareDebtResponse {}))
}

/// LinkPerson: a borrower's id and external id name one history. The
/// guard records no author for it, so it reads no caller.
pub(super) async fn link_person(
    service: &Service,
    req: Request<pb::LinkPersonRequest>,
) -> Result<Response<pb::LinkPersonResponse>, Status> {
    let r = req.get_ref();
    let person_id = service
        .guard()?
        .link_person(&r.person_id, &r.external_id, Utc::now())
        .await?;
    Ok(Response::new(pb::LinkPersonResponse { person_id }))
}

/// ListReservations: the reservations never updated, which hold their
/// slot.
pub(super) async fn list_reservations(
    service: &Service,
    req: Request<pb::ListReservationsRequest>,
) -> Result<Response<pb::ListReservationsResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let list = service
        .guard()?
        .reservations(non_empty(&r.person_id).as_deref(), &who)?;
    Ok(Response::new(pb::ListReservationsResponse {
        reservations: list.iter().map(reservation_pb).collect(),
    }))
}

/// CancelReservation: releases an open reservation's slot.
pub(super) async fn cancel_reservation(
    service: &Service,
    req: Request<pb::CancelReservationRequest>,
) -> Result<Response<pb::CancelReservationResponse>, Status> {
    let who = caller(&req)?;
    let r = service
        .guard()?
        .cancel_reservation(&req.get_ref().interaction_id, &who, Utc::now())
        .await?;
    Ok(Response::new(pb::CancelReservationResponse {
        interaction: Some(pb_of(&r)),
    }))
}

/// A reservation as its message.
fn reservation_pb(r: &Reservation) -> pb::Reservation {
    pb::Reservation {
        interaction_id: r.interaction_id.clone(),
        person_id: r.person_id.clone(),
        request_id: r.request_id.clone().unwrap_or_default(),
        reserved_at: Some(ts(r.reserved_at)),
        channel: r.channel.as_str().to_owned(),
        loan_ids: r.loan_ids.clone(),
        reserved_by: r.reserved_by.clone(),
    }
}
