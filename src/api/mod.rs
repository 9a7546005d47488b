//! The gRPC services: `complianceguard.v1.ComplianceGuardService` and
//! `complianceguard.v1.InteractionsService`, translating between protobuf messages
//! and the [`Guard`]. This is the only module that builds a
//! [`tonic::Status`].
//!
//! This file holds the [`Service`], `timed` (how every RPC is measured
//! and logged) and the two trait impls tonic asks for, kept as tables:
//! each RPC is one call of `timed` with its name and its function in the
//! file of its area (`check.rs`, `restrictions.rs`, `people.rs`,
//! `interactions.rs`, `convos.rs`, `media.rs`). Around them: `status.rs`
//! turns errors into statuses, `codec.rs` decodes messages, `auth.rs` says
//! who is calling.
//!
//! Statuses a caller can get, and what to do with each:
//!
//! | status | when | what the caller does |
//! |---|---|---|
//! | `OK` | answered | act on `allowed`; a blocked send is not an error |
//! | `INVALID_ARGUMENT` | a field is wrong (google.rpc.BadRequest lists each), or the message is not valid protobuf ([`codec::ProtoCodec`]) | fix the request; do not send |
//! | `NOT_FOUND` | unknown person, interaction or restriction (or a sensitive interaction without the right, or another company's), or audio that is not there | check the id |
//! | `ALREADY_EXISTS` | an id or externalId already names another record | use another id |
//! | `FAILED_PRECONDITION` | the state forbids it (delete of a non-external interaction, a link joining two histories, ending a restriction already ended) | do not retry as is |
//! | `UNAUTHENTICATED` | missing or unknown key | send a valid key |
//! | `UNAVAILABLE` | not ready (rules not loaded yet) or shutting down | retry with backoff; do not send meanwhile |
//! | `DEADLINE_EXCEEDED` | the deadline passed before a reservation was committed; nothing was recorded | retry with the same request_id |
//! | `CANCELLED` | tonic cut the call at its deadline | retry with the same request_id; do not send |
//! | `PERMISSION_DENIED` | the key lacks a right (joining a conversation needs `agent`) | use a key with the right |
//! | `RESOURCE_EXHAUSTED` | an upload past the size bound; nothing was stored | send less |
//! | `DATA_LOSS` | a download's stored audio failed its checksum (ends the stream) | discard what arrived |
//! | `INTERNAL` | a broken invariant of ours, never a malformed request | do not send; report it |
//!
//! A Check that cannot be decided never answers `allowed`: every error is a
//! non-OK status, and a caller must treat any non-OK status as "do not send".

pub mod auth;
mod check;
pub mod codec;
mod convos;
mod interactions;
mod media;
mod people;
mod restrictions;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::guard::Guard;
use crate::media::MediaHub;
use crate::model::MediaKind;
use crate::pb;
use media::MediaStream;

/// Both gRPC services over one shared [`Guard`].
#[derive(Debug, Clone)]
pub struct Service {
    /// Set once start-up has replayed the journal; until then every RPC
    /// but health answers UNAVAILABLE.
    guard: Arc<std::sync::OnceLock<Arc<Guard>>>,
    /// The audio store and link signer, set with the guard.
    media: Arc<std::sync::OnceLock<Arc<MediaHub>>>,
    /// Where answered Checks are logged, if anywhere; set with the guard.
    decisions: Arc<std::sync::OnceLock<Arc<crate::decisions::DecisionLog>>>,
}

impl Service {
    /// A service over `guard`, without recordings and voicemails (those
    /// RPCs answer UNAVAILABLE).
    pub fn new(guard: Arc<Guard>) -> Service {
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(guard);
        Service {
            guard: Arc::new(cell),
            media: Arc::new(std::sync::OnceLock::new()),
            decisions: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// A service whose guard and media arrive later (after recovery), in
    /// the cells given.
    pub fn pending(
        cell: Arc<std::sync::OnceLock<Arc<Guard>>>,
        media: Arc<std::sync::OnceLock<Arc<MediaHub>>>,
        decisions: Arc<std::sync::OnceLock<Arc<crate::decisions::DecisionLog>>>,
    ) -> Service {
        Service {
            guard: cell,
            media,
            decisions,
        }
    }

    fn guard(&self) -> Result<&Guard, Status> {
        self.guard.get().map(|g| g.as_ref()).ok_or_else(|| {
            Status::unavailable("starting: the history is still being loaded; retry shortly")
        })
    }

    /// The guard, shared, for work moved off the async threads.
    fn guard_shared(&self) -> Result<std::sync::Arc<Guard>, Status> {
        self.guard.get().cloned().ok_or_else(|| {
            Status::unavailable("starting: the history is still being loaded; retry shortly")
        })
    }

    /// A read's work, after the read barrier on a cluster node
    /// ([`Guard::read_barrier`]): what it reads includes every write any
    /// node had acknowledged when it began, or it answers UNAVAILABLE.
    /// Nothing is waited for on a single node.
    async fn fresh<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        self.guard()?.read_barrier().await?;
        work.await
    }

    fn media(&self) -> Result<&MediaHub, Status> {
        self.media
            .get()
            .map(|m| m.as_ref())
            .ok_or_else(|| Status::unavailable("the media store is not open; retry shortly"))
    }
}

/// The `target` of the per-RPC log lines: this module's name before it
/// was `api`, kept so that a `RUST_LOG=compliance_guard::service=debug`
/// filter, and log queries on the target, still find them.
const LOG_TARGET: &str = "compliance_guard::service";

/// Runs one RPC's work, then logs one line for it at debug level and
/// records its duration in
/// `compliance_guard_rpc_duration_seconds{rpc, code}`: the one way every
/// handler is run, so that no RPC goes unmeasured. Both labels are static
/// strings, so recording allocates nothing for them.
async fn timed<T>(
    rpc: &'static str,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let started = Instant::now();
    let result = work.await;
    let elapsed = started.elapsed();
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    metrics::histogram!(
        "compliance_guard_rpc_duration_seconds",
        "rpc" => rpc,
        "code" => code_name(code)
    )
    .record(elapsed.as_secs_f64());
    let micros = elapsed.as_micros();
    match &result {
        Ok(_) => tracing::debug!(target: LOG_TARGET, rpc, micros, code = "OK"),
        Err(s) => {
            tracing::debug!(target: LOG_TARGET, rpc, micros, code = ?s.code(), message = s.message())
        }
    }
    result
}

/// A status code's canonical gRPC name (`OK`, `NOT_FOUND`), as the `code`
/// label of the RPC metrics: what dashboards and grpcurl show.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

// The two services as tonic asks for them: one line per RPC, naming its
// function in the file of its area and the name it is measured under.
#[tonic::async_trait]
impl pb::compliance_guard_service_server::ComplianceGuardService for Service {
    async fn check_baseline(
        &self,
        req: Request<pb::CheckBaselineRequest>,
    ) -> Result<Response<pb::CheckBaselineResponse>, Status> {
        timed("CheckBaseline", check::check_baseline(self, req)).await
    }

    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        timed("Check", check::check(self, req)).await
    }

    async fn list_rules(
        &self,
        req: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        timed("ListRules", check::list_rules(self, req)).await
    }

    async fn declare_debt(
        &self,
        req: Request<pb::DeclareDebtRequest>,
    ) -> Result<Response<pb::DeclareDebtResponse>, Status> {
        timed("DeclareDebt", people::declare_debt(self, req)).await
    }

    async fn link_person(
        &self,
        req: Request<pb::LinkPersonRequest>,
    ) -> Result<Response<pb::LinkPersonResponse>, Status> {
        timed("LinkPerson", people::link_person(self, req)).await
    }

    async fn list_reservations(
        &self,
        req: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        timed(
            "ListReservations",
            self.fresh(people::list_reservations(self, req)),
        )
        .await
    }

    async fn cancel_reservation(
        &self,
        req: Request<pb::CancelReservationRequest>,
    ) -> Result<Response<pb::CancelReservationResponse>, Status> {
        timed("CancelReservation", people::cancel_reservation(self, req)).await
    }

    async fn add_restriction(
        &self,
        req: Request<pb::AddRestrictionRequest>,
    ) -> Result<Response<pb::AddRestrictionResponse>, Status> {
        timed("AddRestriction", restrictions::add(self, req)).await
    }

    async fn end_restriction(
        &self,
        req: Request<pb::EndRestrictionRequest>,
    ) -> Result<Response<pb::EndRestrictionResponse>, Status> {
        timed("EndRestriction", restrictions::end(self, req)).await
    }

    async fn list_restrictions(
        &self,
        req: Request<pb::ListRestrictionsRequest>,
    ) -> Result<Response<pb::ListRestrictionsResponse>, Status> {
        timed(
            "ListRestrictions",
            self.fresh(restrictions::list(self, req)),
        )
        .await
    }

    async fn explain_restrictions(
        &self,
        req: Request<pb::ExplainRestrictionsRequest>,
    ) -> Result<Response<pb::ExplainRestrictionsResponse>, Status> {
        timed(
            "ExplainRestrictions",
            self.fresh(restrictions::explain(self, req)),
        )
        .await
    }
}

#[tonic::async_trait]
impl pb::interactions_service_server::InteractionsService for Service {
    async fn create_interaction(
        &self,
        req: Request<pb::CreateInteractionRequest>,
    ) -> Result<Response<pb::CreateInteractionResponse>, Status> {
        timed("CreateInteraction", interactions::create(self, req)).await
    }

    async fn get_interaction(
        &self,
        req: Request<pb::GetInteractionRequest>,
    ) -> Result<Response<pb::GetInteractionResponse>, Status> {
        timed("GetInteraction", self.fresh(interactions::get(self, req))).await
    }

    async fn update_interaction(
        &self,
        req: Request<pb::UpdateInteractionRequest>,
    ) -> Result<Response<pb::UpdateInteractionResponse>, Status> {
        timed("UpdateInteraction", interactions::update(self, req)).await
    }

    async fn delete_interaction(
        &self,
        req: Request<pb::DeleteInteractionRequest>,
    ) -> Result<Response<pb::DeleteInteractionResponse>, Status> {
        timed("DeleteInteraction", interactions::delete(self, req)).await
    }

    async fn list_interactions(
        &self,
        req: Request<pb::ListInteractionsRequest>,
    ) -> Result<Response<pb::ListInteractionsResponse>, Status> {
        timed(
            "ListInteractions",
            self.fresh(interactions::list(self, req)),
        )
        .await
    }

    async fn get_interaction_cases(
        &self,
        req: Request<pb::GetInteractionCasesRequest>,
    ) -> Result<Response<pb::GetInteractionCasesResponse>, Status> {
        timed(
            "GetInteractionCases",
            self.fresh(interactions::cases(self, req)),
        )
        .await
    }

    async fn get_previous_interactions(
        &self,
        req: Request<pb::GetPreviousInteractionsRequest>,
    ) -> Result<Response<pb::GetPreviousInteractionsResponse>, Status> {
        timed(
            "GetPreviousInteractions",
            self.fresh(interactions::previous(self, req)),
        )
        .await
    }

    async fn get_interaction_convo(
        &self,
        req: Request<pb::GetInteractionConvoRequest>,
    ) -> Result<Response<pb::GetInteractionConvoResponse>, Status> {
        timed("GetInteractionConvo", self.fresh(convos::get(self, req))).await
    }

    async fn join_interaction_convo(
        &self,
        req: Request<pb::JoinInteractionConvoRequest>,
    ) -> Result<Response<pb::JoinInteractionConvoResponse>, Status> {
        timed("JoinInteractionConvo", convos::join(self, req)).await
    }

    async fn close_interaction_convo(
        &self,
        req: Request<pb::CloseInteractionConvoRequest>,
    ) -> Result<Response<pb::CloseInteractionConvoResponse>, Status> {
        timed("CloseInteractionConvo", convos::close(self, req)).await
    }

    async fn leave_interaction_convo(
        &self,
        req: Request<pb::LeaveInteractionConvoRequest>,
    ) -> Result<Response<pb::LeaveInteractionConvoResponse>, Status> {
        timed("LeaveInteractionConvo", convos::leave(self, req)).await
    }

    async fn upload_interaction_recording(
        &self,
        req: Request<tonic::Streaming<pb::UploadInteractionRecordingRequest>>,
    ) -> Result<Response<pb::UploadInteractionRecordingResponse>, Status> {
        timed("UploadInteractionRecording", async {
            let interaction = media::upload(self, req, MediaKind::Recording).await?;
            Ok(Response::new(pb::UploadInteractionRecordingResponse {
                interaction: Some(interaction),
            }))
        })
        .await
    }

    async fn upload_interaction_voicemail(
        &self,
        req: Request<tonic::Streaming<pb::UploadInteractionVoicemailRequest>>,
    ) -> Result<Response<pb::UploadInteractionVoicemailResponse>, Status> {
        timed("UploadInteractionVoicemail", async {
            let interaction = media::upload(self, req, MediaKind::Voicemail).await?;
            Ok(Response::new(pb::UploadInteractionVoicemailResponse {
                interaction: Some(interaction),
            }))
        })
        .await
    }

    type DownloadInteractionRecordingStream = MediaStream<pb::DownloadInteractionRecordingResponse>;

    async fn download_interaction_recording(
        &self,
        req: Request<pb::DownloadInteractionRecordingRequest>,
    ) -> Result<Response<Self::DownloadInteractionRecordingStream>, Status> {
        timed(
            "DownloadInteractionRecording",
            media::download(self, req, MediaKind::Recording),
        )
        .await
    }

    type DownloadInteractionVoicemailStream = MediaStream<pb::DownloadInteractionVoicemailResponse>;

    async fn download_interaction_voicemail(
        &self,
        req: Request<pb::DownloadInteractionVoicemailRequest>,
    ) -> Result<Response<Self::DownloadInteractionVoicemailStream>, Status> {
        timed(
            "DownloadInteractionVoicemail",
            media::download(self, req, MediaKind::Voicemail),
        )
        .await
    }
}
