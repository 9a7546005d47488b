//! `InteractionInput::validate`: one test per validation rule of the
//! upstream Interactions API, through the public model API only.

use chrono::{DateTime, TimeZone, Utc};
use compliance_guard::model::{
    Channel, ContactInput, ContactKind, Direction, Interaction, InteractionInput, Status,
    StatusDetails, Subject, Theme, ValidationError,
};

/// The moment of recording used throughout.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, 14, 30, 0).unwrap()
}

/// A minimal valid record: channel, direction and status.
fn record(channel: &str, direction: &str, status: &str) -> InteractionInput {
    InteractionInput {
        channel: Some(channel.to_owned()),
        direction: Some(direction.to_owned()),
        status: Some(status.to_owned()),
        ..InteractionInput::default()
    }
}

fn with_details(channel: &str, direction: &str, status: &str, details: &str) -> InteractionInput {
    InteractionInput {
        status_details: Some(details.to_owned()),
        ..record(channel, direction, status)
    }
}

fn ok(input: &InteractionInput) -> Interaction {
    match input.validate(now()) {
        Ok(i) => i,
        Err(e) => panic!("expected {input:?} to be accepted, got: {e}"),
    }
}

fn refused(input: &InteractionInput) -> ValidationError {
    match input.validate(now()) {
        Ok(i) => panic!("expected {input:?} to be refused, got: {i:?}"),
        Err(e) => e,
    }
}

/// The Display of an error; also checks that it starts in lower case or
/// with a backticked field name, as every message of ours does.
fn message(e: &ValidationError) -> String {
    let m = e.to_string();
    let first = m.chars().next().unwrap();
    assert!(
        first == '`' || first.is_lowercase(),
        "message not lower-case: {m}"
    );
    m
}

// --- required fields -------------------------------------------------------

#[test]
fn missing_channel_is_refused() {
    let input = InteractionInput {
        channel: None,
        ..record("voice", "outbound", "attempted")
    };
    let e = refused(&input);
    assert_eq!(e, ValidationError::Missing { field: "channel" });
    assert_eq!(message(&e), "`channel` is required");
}

#[test]
fn missing_direction_is_refused() {
    let input = InteractionInput {
        direction: None,
        ..record("voice", "outbound", "attempted")
    };
    let e = refused(&input);
    assert_eq!(e, ValidationError::Missing { field: "direction" });
    assert_eq!(message(&e), "`direction` is required");
}

#[test]
fn missing_status_is_refused() {
    let input = InteractionInput {
        status: None,
        ..record("voice", "outbound", "attempted")
    };
    let e = refused(&input);
    assert_eq!(e, ValidationError::Missing { field: "status" });
    assert_eq!(message(&e), "`status` is required");
}

// --- vocabularies ----------------------------------------------------------

#[test]
fn unknown_channel_names_field_value_and_suggestion() {
    let e = refused(&record("voise", "outbound", "attempted"));
    assert_eq!(
        e,
        ValidationError::UnknownValue {
            field: "channel",
            value: "voise".to_owned(),
            allowed: "voice, email, fax, text, chat, mail, gui, document (did you mean `voice`?)"
                .to_owned(),
        }
    );
    let m = message(&e);
    assert!(
        m.starts_with("`channel` value `voise` is not allowed; allowed: voice, email,"),
        "{m}"
    );
    assert!(m.ends_with("(did you mean `voice`?)"), "{m}");
}

#[test]
fn unknown_direction_and_status_are_refused_with_suggestions() {
    let e = refused(&record("voice", "outbund", "attempted"));
    assert_eq!(
        e,
        ValidationError::UnknownValue {
            field: "direction",
            value: "outbund".to_owned(),
            allowed: "outbound, inbound (did you mean `outbound`?)".to_owned(),
        }
    );
    let e = refused(&record("voice", "outbound", "succeded"));
    assert_eq!(
        e,
        ValidationError::UnknownValue {
            field: "status",
            value: "succeded".to_owned(),
            allowed: "attempted, succeeded, failed, scheduled, canceled, inProgress (did you mean `succeeded`?)"
                .to_owned(),
        }
    );
    assert!(message(&e).contains("`status` value `succeded` is not allowed"));
}

#[test]
fn unknown_value_far_from_every_name_gets_no_suggestion() {
    let e = refused(&record("carrierPigeon", "outbound", "attempted"));
    assert_eq!(
        e,
        ValidationError::UnknownValue {
            field: "channel",
            value: "carrierPigeon".to_owned(),
            allowed: "voice, email, fax, text, chat, mail, gui, document".to_owned(),
        }
    );
    assert!(!message(&e).contains("did you mean"));
}

#[test]
fn unknown_status_details_in_the_long_vocabulary_gets_count_and_suggestion() {
    let e = refused(&with_details(
        "email",
        "outbound",
        "succeeded",
        "emailDelivred",
    ));
    assert_eq!(
        e,
        ValidationError::UnknownValue {
            field: "statusDetails",
            value: "emailDelivred".to_owned(),
            allowed: "one of the 62 upstream values (did you mean `emailDelivered`?)".to_owned(),
        }
    );
    assert_eq!(StatusDetails::NAMES.len(), 62);
}

#[test]
fn unknown_theme_and_subject_are_refused_by_field() {
    let input = InteractionInput {
        theme: Some("opsColDebt".to_owned()),
        ..record("voice", "outbound", "attempted")
    };
    match refused(&input) {
        ValidationError::UnknownValue {
            field,
            value,
            allowed,
        } => {
            assert_eq!(field, "theme");
            assert_eq!(value, "opsColDebt");
            assert!(
                allowed.ends_with("(did you mean `opsCollDebt`?)"),
                "{allowed}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let input = InteractionInput {
        subject: Some("fre-form".to_owned()),
        ..record("voice", "outbound", "attempted")
    };
    match refused(&input) {
        ValidationError::UnknownValue {
            field,
            value,
            allowed,
        } => {
            assert_eq!(field, "subject");
            assert_eq!(value, "fre-form");
            assert_eq!(
                allowed,
                "one of the 135 upstream values (did you mean `freeForm`?)"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

// --- the query value `null` ------------------------------------------------

#[test]
fn null_status_is_refused() {
    let e = refused(&record("voice", "outbound", "null"));
    assert_eq!(e, ValidationError::NullValue { field: "status" });
    assert_eq!(
        message(&e),
        "`status` value `null` is a query value, not a status; omit the field instead"
    );
}

#[test]
fn null_status_details_is_refused() {
    let e = refused(&with_details("voice", "outbound", "attempted", "null"));
    assert_eq!(
        e,
        ValidationError::NullValue {
            field: "statusDetails"
        }
    );
    let m = message(&e);
    assert!(
        m.starts_with("`statusDetails` value `null` is a query value"),
        "{m}"
    );
    assert!(m.contains("omit the field"), "{m}");
    // Leaving the field out is the way to say "no details".
    assert_eq!(
        ok(&record("voice", "outbound", "attempted")).status_details,
        None
    );
}

// --- statusDetails against status ------------------------------------------

/// The upstream lists, copied from the reference (statusDetails, Status).
const SUCCEEDED: &[&str] = &[
    "emailDelivered",
    "emailOpened",
    "emailClick",
    "letterDelivered",
    "chatRead",
];
const ATTEMPTED: &[&str] = &[
    "voiceReceivedOutsideOpenHours",
    "voiceConnected",
    "emailSent",
    "letterCreated",
    "letterRenderedPdf",
    "letterRenderedThumbnails",
    "letterInTransit",
    "letterInLocalArea",
    "letterProcessedForDelivery",
    "letterRerouted",
    "chatPosted",
    "textConvoTimeoutAutoclose",
    "textConvoClosedStale",
    "textConvoClosedByAgent",
];
const FAILED: &[&str] = &[
    "emailBlocked",
    "emailBounced",
    "emailDropped",
    "emailFailedToSend",
    "emailReportedAsSpam",
    "letterDeleted",
    "letterFailedToCreate",
    "letterReturnedToSender",
    "textA2PCampaignUnregistered",
    "textAccountSuspended",
    "textCarrierViolation",
    "textConvoUnknownNumberRejected",
    "textDeviceUnreachable",
    "textLandlineOrUnreachableCarrier",
    "textLenderDisabledInboundTexts",
    "textMessageBlocked",
    "textMessagePriceExceedsMax",
    "textMissingSegment",
    "textNumberDisconnected",
    "textQueueOverflow",
    "textRegionInvalid",
    "textUnknownError",
    "textUnsubscribedRecipient",
    "voiceFailedToInitiate",
    "voiceLenderDisabledInboundCalls",
    "voiceNumberDisconnected",
    "voiceNumberInvalid",
    "voiceReceivedNoAgentsAvailable",
];

#[test]
fn email_delivered_with_status_attempted_is_refused() {
    let e = refused(&with_details(
        "email",
        "outbound",
        "attempted",
        "emailDelivered",
    ));
    assert_eq!(
        e,
        ValidationError::DetailsStatus {
            details: StatusDetails::EmailDelivered,
            status: Status::Attempted,
            required: Status::Succeeded,
        }
    );
    assert_eq!(
        message(&e),
        "`statusDetails` `emailDelivered` requires `status` `succeeded`, not `attempted`"
    );
    let r = ok(&with_details(
        "email",
        "outbound",
        "succeeded",
        "emailDelivered",
    ));
    assert_eq!(
        (r.status, r.status_details),
        (Status::Succeeded, Some(StatusDetails::EmailDelivered))
    );
}

#[test]
fn attempted_and_failed_details_refuse_other_statuses() {
    assert_eq!(
        refused(&with_details(
            "voice",
            "outbound",
            "succeeded",
            "voiceConnected"
        )),
        ValidationError::DetailsStatus {
            details: StatusDetails::VoiceConnected,
            status: Status::Succeeded,
            required: Status::Attempted,
        }
    );
    assert_eq!(
        refused(&with_details(
            "email",
            "outbound",
            "attempted",
            "emailBounced"
        )),
        ValidationError::DetailsStatus {
            details: StatusDetails::EmailBounced,
            status: Status::Attempted,
            required: Status::Failed,
        }
    );
    // Even a scheduled or in-progress record may not carry them.
    assert!(matches!(
        refused(&with_details(
            "text",
            "outbound",
            "scheduled",
            "textQueueOverflow"
        )),
        ValidationError::DetailsStatus {
            required: Status::Failed,
            status: Status::Scheduled,
            ..
        }
    ));
}

#[test]
fn every_listed_detail_requires_exactly_its_listed_status() {
    for (list, status) in [
        (SUCCEEDED, Status::Succeeded),
        (ATTEMPTED, Status::Attempted),
        (FAILED, Status::Failed),
    ] {
        for name in list {
            let d = StatusDetails::parse(name).unwrap();
            assert_eq!(d.required_status(), Some(status), "{name}");
            let channel = d.required_channel().unwrap().as_str();
            let direction = d
                .required_direction()
                .unwrap_or(Direction::Outbound)
                .as_str();
            for other in Status::ALL {
                let input = with_details(channel, direction, other.as_str(), name);
                if *other == status {
                    assert_eq!(ok(&input).status_details, Some(d), "{name} with {other}");
                } else {
                    assert_eq!(
                        refused(&input),
                        ValidationError::DetailsStatus {
                            details: d,
                            status: *other,
                            required: status
                        },
                        "{name} with {other}"
                    );
                }
            }
        }
    }
}

#[test]
fn details_on_no_list_go_with_any_status() {
    let listed: Vec<&str> = SUCCEEDED
        .iter()
        .chain(ATTEMPTED)
        .chain(FAILED)
        .copied()
        .collect();
    let unlisted: Vec<StatusDetails> = StatusDetails::ALL
        .iter()
        .copied()
        .filter(|d| !listed.contains(&d.as_str()))
        .collect();
    assert!(unlisted.contains(&StatusDetails::VoiceSpokeWithFirstParty));
    assert!(unlisted.contains(&StatusDetails::ChatBorrowerInactivity));
    for d in unlisted {
        assert_eq!(d.required_status(), None, "{d}");
        let channel = d.required_channel().unwrap_or(Channel::Voice).as_str();
        let direction = d
            .required_direction()
            .unwrap_or(Direction::Inbound)
            .as_str();
        for status in Status::ALL {
            let r = ok(&with_details(
                channel,
                direction,
                status.as_str(),
                d.as_str(),
            ));
            assert_eq!((r.status, r.status_details), (*status, Some(d)));
        }
    }
}

// --- statusDetails against channel -----------------------------------------

#[test]
fn details_belong_to_their_channel() {
    let cases = [
        ("voiceConnected", "attempted", Channel::Voice, "email"),
        ("emailSent", "attempted", Channel::Email, "voice"),
        ("letterDelivered", "succeeded", Channel::Mail, "email"),
        ("letterInTransit", "attempted", Channel::Mail, "document"),
        ("chatPosted", "attempted", Channel::Chat, "text"),
        ("textConvoClosedByAgent", "attempted", Channel::Text, "chat"),
        (
            "voiceSpokeWithFirstParty",
            "succeeded",
            Channel::Voice,
            "fax",
        ),
    ];
    for (details, status, required, wrong) in cases {
        let d = StatusDetails::parse(details).unwrap();
        let e = refused(&with_details(wrong, "outbound", status, details));
        assert_eq!(
            e,
            ValidationError::DetailsChannel {
                details: d,
                channel: Channel::parse(wrong).unwrap(),
                required
            },
            "{details} on {wrong}"
        );
        assert_eq!(
            message(&e),
            format!("`statusDetails` `{details}` is for `channel` `{required}`, not `{wrong}`")
        );
        let r = ok(&with_details(
            required.as_str(),
            "outbound",
            status,
            details,
        ));
        assert_eq!(r.channel, required);
    }
}

#[test]
fn every_prefixed_detail_requires_its_channel() {
    for d in StatusDetails::ALL {
        let name = d.as_str();
        let expected = if name.starts_with("voice") {
            Some(Channel::Voice)
        } else if name.starts_with("email") {
            Some(Channel::Email)
        } else if name.starts_with("letter") {
            Some(Channel::Mail)
        } else if name.starts_with("chat") {
            Some(Channel::Chat)
        } else if name.starts_with("text") {
            Some(Channel::Text)
        } else {
            None
        };
        assert_eq!(d.required_channel(), expected, "{name}");
    }
}

#[test]
fn invalid_contact_and_blocked_by_compliance_guard_fit_every_channel() {
    for details in ["invalidContact", "blockedByComplianceGuard"] {
        for channel in Channel::ALL {
            for direction in Direction::ALL {
                let r = ok(&with_details(
                    channel.as_str(),
                    direction.as_str(),
                    "failed",
                    details,
                ));
                assert_eq!(r.channel, *channel);
                assert_eq!(r.status_details, StatusDetails::parse(details));
            }
        }
    }
}

// --- statusDetails against direction ---------------------------------------

#[test]
fn no_agents_available_is_inbound_only() {
    let e = refused(&with_details(
        "voice",
        "outbound",
        "failed",
        "voiceReceivedNoAgentsAvailable",
    ));
    assert_eq!(
        e,
        ValidationError::DetailsDirection {
            details: StatusDetails::VoiceReceivedNoAgentsAvailable,
            direction: Direction::Outbound,
            required: Direction::Inbound,
        }
    );
    assert_eq!(
        message(&e),
        "`statusDetails` `voiceReceivedNoAgentsAvailable` is only for `direction` `inbound`, not `outbound`"
    );
    let r = ok(&with_details(
        "voice",
        "inbound",
        "failed",
        "voiceReceivedNoAgentsAvailable",
    ));
    assert_eq!(r.direction, Direction::Inbound);
}

#[test]
fn number_disconnected_is_outbound_only() {
    assert_eq!(
        refused(&with_details(
            "voice",
            "inbound",
            "failed",
            "voiceNumberDisconnected"
        )),
        ValidationError::DetailsDirection {
            details: StatusDetails::VoiceNumberDisconnected,
            direction: Direction::Inbound,
            required: Direction::Outbound,
        }
    );
    let r = ok(&with_details(
        "voice",
        "outbound",
        "failed",
        "voiceNumberDisconnected",
    ));
    assert_eq!(r.direction, Direction::Outbound);
}

#[test]
fn unexpected_disconnect_goes_either_way() {
    assert_eq!(
        StatusDetails::VoiceUnexpectedDisconnect.required_direction(),
        None
    );
    for direction in ["inbound", "outbound"] {
        let r = ok(&with_details(
            "voice",
            direction,
            "attempted",
            "voiceUnexpectedDisconnect",
        ));
        assert_eq!(r.direction.as_str(), direction);
        assert_eq!(
            r.status_details,
            Some(StatusDetails::VoiceUnexpectedDisconnect)
        );
    }
}

// --- subject and theme -----------------------------------------------------

#[test]
fn free_form_and_custom_subjects_need_a_theme() {
    let mut subjects = vec!["freeForm".to_owned()];
    subjects.extend((1..=20).map(|n| format!("custom{n}")));
    for name in &subjects {
        let subject = Subject::parse(name).unwrap();
        let bare = InteractionInput {
            subject: Some(name.clone()),
            ..record("email", "outbound", "attempted")
        };
        let e = refused(&bare);
        assert_eq!(e, ValidationError::ThemeRequired { subject });
        assert_eq!(
            message(&e),
            format!("`subject` `{name}` has no implicit theme, so `theme` is required")
        );

        let themed = InteractionInput {
            theme: Some("opsServicing".to_owned()),
            ..bare
        };
        let r = ok(&themed);
        assert_eq!(
            (r.subject, r.theme),
            (Some(subject), Some(Theme::OpsServicing))
        );
        assert_eq!(r.effective_theme(), Some(Theme::OpsServicing));
    }
}

#[test]
fn loan_overdue_first_notice_implies_ops_coll_debt() {
    let input = InteractionInput {
        subject: Some("loanOverdueFirstNotice".to_owned()),
        ..record("email", "outbound", "attempted")
    };
    let r = ok(&input);
    assert_eq!(r.subject, Some(Subject::LoanOverdueFirstNotice));
    assert_eq!(
        r.theme, None,
        "the implied theme is not written into the record"
    );
    assert_eq!(r.effective_theme(), Some(Theme::OpsCollDebt));

    // A theme given explicitly wins over the implied one.
    let explicit = InteractionInput {
        theme: Some("opsServicing".to_owned()),
        ..input
    };
    assert_eq!(ok(&explicit).effective_theme(), Some(Theme::OpsServicing));

    // A subject with no documented theme leaves the theme unknown.
    let other = InteractionInput {
        subject: Some("paymentFailed".to_owned()),
        ..record("email", "outbound", "attempted")
    };
    assert_eq!(ok(&other).effective_theme(), None);
}

#[test]
fn deprecated_loc_statement_subjects_are_converted() {
    for (given, converted) in [
        ("locStatementGenerated", Subject::StatementGenerated),
        ("locStatementRegenerated", Subject::StatementRegenerated),
    ] {
        let input = InteractionInput {
            subject: Some(given.to_owned()),
            ..record("email", "outbound", "attempted")
        };
        assert_eq!(ok(&input).subject, Some(converted), "{given}");
    }
}

#[test]
fn deprecated_themes_are_accepted() {
    for (name, theme) in [
        ("inbHumanLove", Theme::InbHumanLove),
        ("inbBug", Theme::InbBug),
    ] {
        let input = InteractionInput {
            theme: Some(name.to_owned()),
            borrower_selected_theme: Some(name.to_owned()),
            ..record("chat", "inbound", "succeeded")
        };
        let r = ok(&input);
        assert_eq!(
            (r.theme, r.borrower_selected_theme),
            (Some(theme), Some(theme))
        );
    }
}

#[test]
fn out_ops_loan_theme_is_accepted() {
    let input = InteractionInput {
        theme: Some("outOpsLoan".to_owned()),
        ..record("mail", "outbound", "attempted")
    };
    let r = ok(&input);
    assert_eq!(r.theme, Some(Theme::OutOpsLoan));
    assert_eq!(r.effective_theme(), Some(Theme::OutOpsLoan));
}

// --- lengths ---------------------------------------------------------------

fn with_external_id(id: String) -> InteractionInput {
    InteractionInput {
        external_id: Some(id),
        ..record("voice", "outbound", "attempted")
    }
}

#[test]
fn external_id_must_have_1_to_255_characters() {
    let e = refused(&with_external_id(String::new()));
    assert_eq!(
        e,
        ValidationError::Length {
            field: "externalId",
            len: 0,
            min: 1,
            max: 255
        }
    );
    assert_eq!(
        message(&e),
        "`externalId` has 0 characters; allowed: 1 to 255"
    );

    assert_eq!(
        refused(&with_external_id("x".repeat(256))),
        ValidationError::Length {
            field: "externalId",
            len: 256,
            min: 1,
            max: 255
        }
    );
    assert_eq!(
        ok(&with_external_id("x".to_owned())).external_id.as_deref(),
        Some("x")
    );
    assert_eq!(
        ok(&with_external_id("x".repeat(255)))
            .external_id
            .map(|s| s.len()),
        Some(255)
    );
}

#[test]
fn external_id_length_counts_characters_not_bytes() {
    // 255 two-byte characters: 510 bytes, accepted.
    let r = ok(&with_external_id("é".repeat(255)));
    assert_eq!(
        r.external_id.as_ref().map(|s| (s.len(), s.chars().count())),
        Some((510, 255))
    );
    // 255 four-byte characters: 1020 bytes, accepted.
    assert!(
        ok(&with_external_id("😀".repeat(255)))
            .external_id
            .is_some()
    );
    // One character too many is refused, with the length in characters.
    assert_eq!(
        refused(&with_external_id("é".repeat(256))),
        ValidationError::Length {
            field: "externalId",
            len: 256,
            min: 1,
            max: 255
        }
    );
}

#[test]
fn twilio_error_code_has_at_most_10_characters() {
    let input = |code: &str| InteractionInput {
        twilio_error_code: Some(code.to_owned()),
        ..with_details("text", "outbound", "failed", "textUnknownError")
    };
    let e = refused(&input("12345678901"));
    assert_eq!(
        e,
        ValidationError::Length {
            field: "twilioErrorCode",
            len: 11,
            min: 0,
            max: 10
        }
    );
    assert!(message(&e).starts_with("`twilioErrorCode` has 11 characters"));
    assert_eq!(
        ok(&input("1234567890")).twilio_error_code.as_deref(),
        Some("1234567890")
    );
}

// --- times -----------------------------------------------------------------

#[test]
fn started_at_and_created_at_default_to_now() {
    let r = ok(&record("voice", "outbound", "attempted"));
    assert_eq!(r.started_at, now());
    assert_eq!(r.created_at, now());
    assert_eq!(r.occurs_at(), now());
}

#[test]
fn date_only_started_at_is_midnight_utc() {
    let input = InteractionInput {
        started_at: Some("2020-04-01".to_owned()),
        ..record("voice", "outbound", "attempted")
    };
    assert_eq!(
        ok(&input).started_at,
        Utc.with_ymd_and_hms(2020, 4, 1, 0, 0, 0).unwrap()
    );

    let offset = InteractionInput {
        started_at: Some("2020-04-01T14:00:00-04:00".to_owned()),
        ..record("voice", "outbound", "attempted")
    };
    assert_eq!(
        ok(&offset).started_at,
        Utc.with_ymd_and_hms(2020, 4, 1, 18, 0, 0).unwrap()
    );
}

#[test]
fn a_bad_time_names_its_field() {
    let base = record("voice", "outbound", "attempted");
    let e = refused(&InteractionInput {
        started_at: Some("yesterday".to_owned()),
        ..base.clone()
    });
    assert_eq!(
        e,
        ValidationError::Time {
            field: "startedAt",
            value: "yesterday".to_owned()
        }
    );
    let m = message(&e);
    assert!(
        m.starts_with("`startedAt` value `yesterday` is not a time; allowed: RFC 3339"),
        "{m}"
    );

    assert_eq!(
        refused(&InteractionInput {
            ended_at: Some("2020-13-01".to_owned()),
            ..base.clone()
        }),
        ValidationError::Time {
            field: "endedAt",
            value: "2020-13-01".to_owned()
        }
    );
    // A time without an offset is ambiguous, so it is refused too.
    assert_eq!(
        refused(&InteractionInput {
            scheduled_at_from: Some("2020-04-01T14:00:00".to_owned()),
            ..base
        }),
        ValidationError::Time {
            field: "scheduledAtFrom",
            value: "2020-04-01T14:00:00".to_owned()
        }
    );
}

// --- contact ---------------------------------------------------------------

#[test]
fn unknown_contact_kind_becomes_unknown() {
    let contact = |kind: Option<&str>| InteractionInput {
        contact: Some(ContactInput {
            kind: kind.map(str::to_owned),
            value: Some("+15555550100".to_owned()),
            name: None,
        }),
        ..record("voice", "outbound", "attempted")
    };
    let r = ok(&contact(Some("pagerNumber")));
    assert_eq!(r.contact_kind(), ContactKind::Unknown);
    let c = r.contact.unwrap();
    assert_eq!(c.kind, ContactKind::Unknown);
    assert_eq!(
        c.kind_as_given.as_deref(),
        Some("pagerNumber"),
        "the kind as given is kept"
    );
    assert_eq!(c.value.as_deref(), Some("+15555550100"));

    assert_eq!(ok(&contact(None)).contact_kind(), ContactKind::Unknown);
    assert_eq!(
        ok(&contact(Some("mobilePhone"))).contact_kind(),
        ContactKind::MobilePhone
    );
    // Kinds are read exactly: a different case is not the known kind.
    assert_eq!(
        ok(&contact(Some("MobilePhone"))).contact_kind(),
        ContactKind::Unknown
    );
    assert_eq!(
        ok(&record("voice", "outbound", "attempted")).contact_kind(),
        ContactKind::Unknown
    );
}

// --- JSON ------------------------------------------------------------------

#[test]
fn json_with_an_unknown_field_is_refused() {
    let err = serde_json::from_str::<InteractionInput>(
        r#"{"channel":"voice","direction":"outbound","status":"attempted","colour":"red"}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");

    // The snake_case spelling of a field is an unknown field too.
    let err = serde_json::from_str::<InteractionInput>(
        r#"{"channel":"voice","direction":"outbound","status":"attempted","status_details":"voiceConnected"}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `status_details`"),
        "{err}"
    );

    // And inside the contact object.
    let err = serde_json::from_str::<InteractionInput>(
        r#"{"channel":"voice","direction":"outbound","status":"attempted","contact":{"kind":"email","zip":"1"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `zip`"), "{err}");
}

#[test]
fn json_with_upstream_field_names_is_read() {
    let input: InteractionInput = serde_json::from_str(
        r#"{"channel":"voice","direction":"inbound","status":"attempted","statusDetails":"voiceConnected",
            "externalId":"call-1","startedAt":"2020-04-01","loanIds":["LN-1","LN-2"],"isExternal":false,
            "contact":{"kind":"homePhone","value":"+15555550100"}}"#,
    )
    .unwrap();
    let r = ok(&input);
    assert_eq!(r.status_details, Some(StatusDetails::VoiceConnected));
    assert_eq!(r.external_id.as_deref(), Some("call-1"));
    assert_eq!(
        r.started_at,
        Utc.with_ymd_and_hms(2020, 4, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(r.loans(), vec!["LN-1", "LN-2"]);
    assert!(!r.is_external);
    assert_eq!(r.contact_kind(), ContactKind::HomePhone);
}
