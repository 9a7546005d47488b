//! The upstream vocabularies (channel, direction, theme, subject, status,
//! statusDetails, agentOutcome), one Rust enum each.
//!
//! Every value is spelled exactly as the upstream Interactions API spells it,
//! so that a record moved from the upstream service keeps its meaning. The
//! enums are `Copy` bytes so that the per-borrower index stays compact.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Returns the vocabulary value closest to `input`, if one is close enough to
/// be a likely typo, so that error messages can say "did you mean ...".
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate.to_ascii_lowercase() == lower {
            return Some(candidate);
        }
        // The distance is at least the difference in length, and a
        // suggestion is at most 3 away: far longer input (a 1 MiB value)
        // costs nothing instead of a quadratic comparison per candidate.
        if lower.len().abs_diff(candidate.len()) > 3 {
            continue;
        }
        let distance = edit_distance(&lower, &candidate.to_ascii_lowercase());
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    // A suggestion further than a third of the word away is noise.
    best.filter(|(d, c)| *d <= 3 && *d * 3 <= c.len().max(3))
        .map(|(_, c)| c)
}

/// Levenshtein distance over bytes; the vocabularies are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.bytes().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Describes what a vocabulary allows, for error messages: the whole list
/// when it is short, otherwise its size and the closest value.
pub fn describe_allowed(input: &str, all: &[&'static str]) -> String {
    let suggestion = closest(input, all.iter().copied());
    let list = if all.len() <= 30 {
        all.join(", ")
    } else {
        format!("one of the {} upstream values", all.len())
    };
    match suggestion {
        Some(s) => format!("{list} (did you mean `{s}`?)"),
        None => list,
    }
}

macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $label:literal {
            $( $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                #[doc = concat!("Upstream value `", $text, "`.")]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in upstream order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every value's upstream spelling, in upstream order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            /// The vocabulary's name, as used in error messages.
            pub const LABEL: &'static str = $label;

            /// The value's place in [`Self::ALL`], for bit sets.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The upstream spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses the exact upstream spelling; anything else is `None`.
            #[allow(clippy::should_implement_trait, reason = "returns Option, not Result")]
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // A visitor, not `String::deserialize` then a check: the
                // error is raised while the parser still stands on the value,
                // so YAML errors point at the value itself.
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} name", $label)
                    }
                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$name, E> {
                        $name::parse(text).ok_or_else(|| {
                            E::custom(format!(
                                "unknown {} `{}`, allowed: {}",
                                $label,
                                text,
                                describe_allowed(text, $name::NAMES)
                            ))
                        })
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

vocabulary! {
    /// The channel by which an interaction occurs (upstream `InteractionChannel`).
    Channel, "channel" {
        Voice = "voice",
        Email = "email",
        Fax = "fax",
        Text = "text",
        Chat = "chat",
        Mail = "mail",
        Gui = "gui",
        Document = "document",
    }
}

vocabulary! {
    /// Who started the communication (upstream `InteractionDirection`).
    Direction, "direction" {
        Outbound = "outbound",
        Inbound = "inbound",
    }
}

vocabulary! {
    /// The reason an interaction occurred (upstream `InteractionTheme`).
    ///
    /// `outOpsLoan` appears only in the upstream prose ("statements or payment
    /// reminders should be marked as outOpsLoan"), not in its enum; we accept
    /// it because real records carry it. `inbHumanLove` and `inbBug` are
    /// deprecated upstream and accepted as they are.
    Theme, "theme" {
        AgentNotification = "agentNotification",
        OpsCollDebt = "opsCollDebt",
        OpsCollLocateBorrower = "opsCollLocateBorrower",
        OpsCollVerifyEmployment = "opsCollVerifyEmployment",
        OpsCollContactEmployerNotice = "opsCollContactEmployerNotice",
        OpsServicingDebtValidation = "opsServicingDebtValidation",
        OpsServicingNegativeCreditReportNotice = "opsServicingNegativeCreditReportNotice",
        OpsServicingTimeBarredNotice = "opsServicingTimeBarredNotice",
        OpsServicing = "opsServicing",
        OpsAccountCredentials = "opsAccountCredentials",
        InbMissingFeature = "inbMissingFeature",
        InbEducation = "inbEducation",
        InbBug = "inbBug",
        InbRequest = "inbRequest",
        InbHumanLove = "inbHumanLove",
        InbUnknown = "inbUnknown",
        InbOther = "inbOther",
        InbServicing = "inbServicing",
        InbCollections = "inbCollections",
        InbPayments = "inbPayments",
        InbFraud = "inbFraud",
        InbGeneralInquiry = "inbGeneralInquiry",
        OutOpsLoan = "outOpsLoan",
    }
}

impl Theme {
    /// True for the collection themes (`opsColl*`), the group that rules
    /// name as `collection`.
    pub fn is_collection(self) -> bool {
        self.as_str().starts_with("opsColl")
    }

    /// True for the servicing themes (`opsServicing*`), the group `servicing`.
    pub fn is_servicing(self) -> bool {
        self.as_str().starts_with("opsServicing")
    }

    /// True for the themes of borrower-initiated contact (`inb*`), the group
    /// `inbound`.
    pub fn is_inbound(self) -> bool {
        self.as_str().starts_with("inb")
    }
}

vocabulary! {
    /// The state of an interaction (upstream `InteractionStatus`).
    ///
    /// Upstream lists `null` in the enum but says it "is not a valid status
    /// name" and exists only to query for a missing status, so it is not a
    /// value here.
    Status, "status" {
        Attempted = "attempted",
        Succeeded = "succeeded",
        Failed = "failed",
        Scheduled = "scheduled",
        Canceled = "canceled",
        InProgress = "inProgress",
    }
}

vocabulary! {
    /// The technical detail of a status (upstream `InteractionStatusDetails`).
    /// The query-only value `null` is left out, as for [`Status`].
    StatusDetails, "statusDetails" {
        VoiceSpokeWithFirstParty = "voiceSpokeWithFirstParty",
        VoiceSpokeWithThirdParty = "voiceSpokeWithThirdParty",
        VoiceLeftVoicemailFirstParty = "voiceLeftVoicemailFirstParty",
        VoiceLeftVoicemailThirdParty = "voiceLeftVoicemailThirdParty",
        VoiceLeftVoicemail = "voiceLeftVoicemail",
        VoiceLineBusyNoRing = "voiceLineBusyNoRing",
        VoiceReachedVoicemailNoMessageLeft = "voiceReachedVoicemailNoMessageLeft",
        VoiceRangNoPickup = "voiceRangNoPickup",
        VoicePickedHungUp = "voicePickedHungUp",
        VoiceFailedToInitiate = "voiceFailedToInitiate",
        VoiceNumberDisconnected = "voiceNumberDisconnected",
        VoiceReceivedOutsideOpenHours = "voiceReceivedOutsideOpenHours",
        VoiceUnexpectedDisconnect = "voiceUnexpectedDisconnect",
        VoiceDisconnectedWhileQueuedOnHold = "voiceDisconnectedWhileQueuedOnHold",
        VoiceReceivedNoAgentsAvailable = "voiceReceivedNoAgentsAvailable",
        VoiceLenderDisabledInboundCalls = "voiceLenderDisabledInboundCalls",
        VoiceConnected = "voiceConnected",
        VoiceNumberInvalid = "voiceNumberInvalid",
        EmailSent = "emailSent",
        EmailDelivered = "emailDelivered",
        EmailBlocked = "emailBlocked",
        EmailBounced = "emailBounced",
        EmailOpened = "emailOpened",
        EmailClick = "emailClick",
        EmailDropped = "emailDropped",
        EmailFailedToSend = "emailFailedToSend",
        EmailReportedAsSpam = "emailReportedAsSpam",
        LetterCreated = "letterCreated",
        LetterFailedToCreate = "letterFailedToCreate",
        LetterRenderedPdf = "letterRenderedPdf",
        LetterRenderedThumbnails = "letterRenderedThumbnails",
        LetterProcessedForDelivery = "letterProcessedForDelivery",
        LetterRerouted = "letterRerouted",
        LetterInLocalArea = "letterInLocalArea",
        LetterInTransit = "letterInTransit",
        LetterDelivered = "letterDelivered",
        LetterReturnedToSender = "letterReturnedToSender",
        LetterDeleted = "letterDeleted",
        ChatPosted = "chatPosted",
        ChatRead = "chatRead",
        ChatBorrowerInactivity = "chatBorrowerInactivity",
        ChatReceivedOutsideOpenHours = "chatReceivedOutsideOpenHours",
        TextConvoTimeoutAutoclose = "textConvoTimeoutAutoclose",
        TextConvoClosedStale = "textConvoClosedStale",
        TextConvoUnknownNumberRejected = "textConvoUnknownNumberRejected",
        TextConvoClosedByAgent = "textConvoClosedByAgent",
        TextLenderDisabledInboundTexts = "textLenderDisabledInboundTexts",
        TextUnsubscribedRecipient = "textUnsubscribedRecipient",
        TextQueueOverflow = "textQueueOverflow",
        TextAccountSuspended = "textAccountSuspended",
        TextDeviceUnreachable = "textDeviceUnreachable",
        TextMessageBlocked = "textMessageBlocked",
        TextNumberDisconnected = "textNumberDisconnected",
        TextLandlineOrUnreachableCarrier = "textLandlineOrUnreachableCarrier",
        TextCarrierViolation = "textCarrierViolation",
        TextUnknownError = "textUnknownError",
        TextMissingSegment = "textMissingSegment",
        TextMessagePriceExceedsMax = "textMessagePriceExceedsMax",
        TextA2PCampaignUnregistered = "textA2PCampaignUnregistered",
        TextRegionInvalid = "textRegionInvalid",
        BlockedByComplianceGuard = "blockedByComplianceGuard",
        InvalidContact = "invalidContact",
    }
}

vocabulary! {
    /// The human outcome of an interaction, according to an agent (upstream
    /// `InteractionAgentOutcome`).
    ///
    /// `voiceDisconnectedWhileQueuedOnHold` ("Caller hung up while on
    /// hold") is listed in the reference's prose but not in its enum; it is
    /// accepted, last so that the earlier values keep their places. Records
    /// carry outcomes by name (journal, snapshots, backups), so nothing
    /// stored before it changes meaning. For counting it says the call
    /// connected (it was answered and queued) and does not rule out a
    /// conversation, so it makes no answer more permissive than the same
    /// record without an outcome.
    AgentOutcome, "agentOutcome" {
        VoiceSpokeWithFirstParty = "voiceSpokeWithFirstParty",
        VoiceSpokeWithThirdParty = "voiceSpokeWithThirdParty",
        VoiceLeftVoicemail = "voiceLeftVoicemail",
        VoiceLineBusyNoRing = "voiceLineBusyNoRing",
        VoiceReachedVoicemailNoMessageLeft = "voiceReachedVoicemailNoMessageLeft",
        VoiceRangNoPickup = "voiceRangNoPickup",
        VoicePickedHungUp = "voicePickedHungUp",
        VoiceFailedToInitiate = "voiceFailedToInitiate",
        VoiceNumberDisconnected = "voiceNumberDisconnected",
        VoiceUnexpectedDisconnect = "voiceUnexpectedDisconnect",
        VoiceDisconnectedWhileQueuedOnHold = "voiceDisconnectedWhileQueuedOnHold",
    }
}

vocabulary! {
    /// The category of a message's content (upstream `InteractionSubject`).
    Subject, "subject" {
        AnnualPrivacyPolicyNotice = "annualPrivacyPolicyNotice",
        AutopayAgreement = "autopayAgreement",
        AutopayAmountChanged = "autopayAmountChanged",
        AutopayCanceledBySystem = "autopayCanceledBySystem",
        AutopayEnabled = "autopayEnabled",
        AutopayEnableReminder = "autopayEnableReminder",
        AutopayPaymentCanceled = "autopayPaymentCanceled",
        AutopayPaymentMethodUpdated = "autopayPaymentMethodUpdated",
        AutopayPaymentReminder = "autopayPaymentReminder",
        AutopayPaymentRescheduled = "autopayPaymentRescheduled",
        CardExpiresReminder = "cardExpiresReminder",
        CaseEscalation = "caseEscalation",
        CeaseCommunicationAcknowledgement = "ceaseCommunicationAcknowledgement",
        CeaseCommunicationRefuseToPay = "ceaseCommunicationRefuseToPay",
        ConfirmationCode = "confirmationCode",
        ContactTakeover = "contactTakeover",
        CreditNegativeInfoReported = "creditNegativeInfoReported",
        CreditPositiveInfoReported = "creditPositiveInfoReported",
        Custom1 = "custom1",
        Custom2 = "custom2",
        Custom3 = "custom3",
        Custom4 = "custom4",
        Custom5 = "custom5",
        Custom6 = "custom6",
        Custom7 = "custom7",
        Custom8 = "custom8",
        Custom9 = "custom9",
        Custom10 = "custom10",
        Custom11 = "custom11",
        Custom12 = "custom12",
        Custom13 = "custom13",
        Custom14 = "custom14",
        Custom15 = "custom15",
        Custom16 = "custom16",
        Custom17 = "custom17",
        Custom18 = "custom18",
        Custom19 = "custom19",
        Custom20 = "custom20",
        DebtValidationNotice = "debtValidationNotice",
        DebtValidationNoticeArizona = "debtValidationNoticeArizona",
        DebtValidationNoticeAutomatic = "debtValidationNoticeAutomatic",
        DebtValidationNoticeNycYonkers = "debtValidationNoticeNYCYonkers",
        DebtValidationNoticePuertoRico = "debtValidationNoticePuertoRico",
        DeceasedConfirmationOfPayoff = "deceasedConfirmationOfPayoff",
        DeceasedNoticeToRepresentative = "deceasedNoticeToRepresentative",
        DeceasedNotificationUponDeath = "deceasedNotificationUponDeath",
        DisputeOfDebtConfirmed = "disputeOfDebtConfirmed",
        DisputeOfDebtSubmitDocumentation = "disputeOfDebtSubmitDocumentation",
        DisputeOfDebtSubmitDocumentationReminder = "disputeOfDebtSubmitDocumentationReminder",
        DisputeOfDebtUnableToConfirm = "disputeOfDebtUnableToConfirm",
        DisputeOfDebtUnableToResolve = "disputeOfDebtUnableToResolve",
        DocumentUploadFailed = "documentUploadFailed",
        DownpaymentFailed = "downpaymentFailed",
        DrawFundsDisclosure = "drawFundsDisclosure",
        ElectronicConsentOptOut = "electronicConsentOptOut",
        FailedSettlementInvestor = "failedSettlementInvestor",
        FailedSettlementPeach = "failedSettlementPeach",
        FreeForm = "freeForm",
        FreeFormBranded = "freeFormBranded",
        FuturepayCanceled = "futurepayCanceled",
        FuturepayPaymentDueReminder = "futurepayPaymentDueReminder",
        IdentityTheftIncompleteDocumentation = "identityTheftIncompleteDocumentation",
        IdentityTheftNotValidated = "identityTheftNotValidated",
        IdentityTheftSubmitDocumentation = "identityTheftSubmitDocumentation",
        IdentityTheftSubmitDocumentationFirstReminder = "identityTheftSubmitDocumentationFirstReminder",
        IdentityTheftSubmitDocumentationSecondReminder = "identityTheftSubmitDocumentationSecondReminder",
        IdentityTheftValidated = "identityTheftValidated",
        LetterReturnedToSender = "letterReturnedToSender",
        LoanAccelerated = "loanAccelerated",
        LoanCanceled = "loanCanceled",
        LoanChargedOffUnsecured = "loanChargedOffUnsecured",
        LoanDetails = "loanDetails",
        LoanFeeCharged = "loanFeeCharged",
        LoanFreeze = "loanFreeze",
        LoanManualPaymentDisclosure = "loanManualPaymentDisclosure",
        LoanOverdueFifthNotice = "loanOverdueFifthNotice",
        LoanOverdueFirstNotice = "loanOverdueFirstNotice",
        LoanOverdueFourthNotice = "loanOverdueFourthNotice",
        LoanOverdueSecondNotice = "loanOverdueSecondNotice",
        LoanOverdueSixthNotice = "loanOverdueSixthNotice",
        LoanOverdueThirdNotice = "loanOverdueThirdNotice",
        LoanPaidOff = "loanPaidOff",
        LoanPaymentScheduleChanged = "loanPaymentScheduleChanged",
        LoanPayoffStatement = "loanPayoffStatement",
        LoanRefundProcessed = "loanRefundProcessed",
        LoanRightToCurePersonalUnsecured = "loanRightToCurePersonalUnsecured",
        LoanTermsChangeAgreement = "loanTermsChangeAgreement",
        LoanUnfreeze = "loanUnfreeze",
        LocCreditLimitChanged = "locCreditLimitChanged",
        LocInterestRateChanged = "locInterestRateChanged",
        LocLineClosed = "locLineClosed",
        LocStatementGenerated = "locStatementGenerated",
        LocStatementRegenerated = "locStatementRegenerated",
        LoginFirstPaymentReminder = "loginFirstPaymentReminder",
        MicrodepositFailed = "microdepositFailed",
        MicrodepositProcessing = "microdepositProcessing",
        MicrodepositReminder = "microdepositReminder",
        OneTimeCode = "oneTimeCode",
        PaydayConsumerRightsNotice = "paydayConsumerRightsNotice",
        PaydayFirstPaymentWithdrawal = "paydayFirstPaymentWithdrawal",
        PaymentDisputed = "paymentDisputed",
        PaymentDueDateReminder = "paymentDueDateReminder",
        PaymentFailed = "paymentFailed",
        PaymentMethodAdded = "paymentMethodAdded",
        PaymentMethodUpdated = "paymentMethodUpdated",
        PaymentProcessing = "paymentProcessing",
        PaymentRescheduled = "paymentRescheduled",
        PaymentReversalFailed = "paymentReversalFailed",
        PaymentReversalProcessing = "paymentReversalProcessing",
        PaymentSuccessful = "paymentSuccessful",
        PayoffStatementDocument = "payoffStatementDocument",
        PromiseToPayPeriodKept = "promiseToPayPeriodKept",
        PromiseToPayPeriodMissed = "promiseToPayPeriodMissed",
        PromiseToPayPlanCanceled = "promiseToPayPlanCanceled",
        PromiseToPayPlanCreated = "promiseToPayPlanCreated",
        PromoProgramCanceled = "promoProgramCanceled",
        PromoProgramEligibilityAtRisk = "promoProgramEligibilityAtRisk",
        PromoProgramExercised = "promoProgramExercised",
        PromoProgramReminder = "promoProgramReminder",
        ReimbursementFailed = "reimbursementFailed",
        ReimbursementProcessed = "reimbursementProcessed",
        ReimbursementScheduled = "reimbursementScheduled",
        ScraApplicationDenied = "scraApplicationDenied",
        ScraBenefitsApplied = "scraBenefitsApplied",
        ScraBenefitsExpiringNotice = "scraBenefitsExpiringNotice",
        ScraCgFlaggedDocumentRequest = "scraCGFlaggedDocumentRequest",
        ScraServicemanNotifiedDocumentRequest = "scraServicemanNotifiedDocumentRequest",
        SettlementOffer = "settlementOffer",
        SettlementOfferFirstReminder = "settlementOfferFirstReminder",
        Statement = "statement",
        StatementLoc = "statementLOC",
        StatementGenerated = "statementGenerated",
        StatementRegenerated = "statementRegenerated",
        UnmonitoredEmailAddress = "unmonitoredEmailAddress",
        UpdateBankAccountConnection = "updateBankAccountConnection",
    }
}

impl Subject {
    /// The subject a deprecated one is converted to: upstream converts
    /// `locStatementGenerated` and `locStatementRegenerated` to
    /// `statementGenerated` and `statementRegenerated`.
    pub fn normalized(self) -> Subject {
        match self {
            Subject::LocStatementGenerated => Subject::StatementGenerated,
            Subject::LocStatementRegenerated => Subject::StatementRegenerated,
            other => other,
        }
    }

    /// True for the subjects that carry no implicit theme, so that a record
    /// using them must name its theme (`freeForm`, `custom1`..`custom20`).
    pub fn requires_theme(self) -> bool {
        self == Subject::FreeForm || self.as_str().starts_with("custom")
    }

    /// The theme implied by this subject, where upstream documents one.
    ///
    /// Upstream says "most subjects have an associated implicit theme" but
    /// gives only one pair, `loanOverdueFirstNotice` → `opsCollDebt`. The
    /// table is [`SUBJECT_THEMES`]; a subject outside it implies no theme,
    /// and rules then treat the theme as unknown (matching every theme
    /// filter, which is the stricter reading).
    pub fn implied_theme(self) -> Option<Theme> {
        SUBJECT_THEMES
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, t)| *t)
    }
}

/// The subject → theme pairs that upstream documents. Only one is given
/// ("loanOverdueFirstNotice has a theme of opsCollDebt"); add a pair here
/// only with a citation of the upstream text that states it.
pub const SUBJECT_THEMES: &[(Subject, Theme)] =
    &[(Subject::LoanOverdueFirstNotice, Theme::OpsCollDebt)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(*c));
        }
        for s in Subject::ALL {
            assert_eq!(Subject::parse(s.as_str()), Some(*s));
        }
        for d in StatusDetails::ALL {
            assert_eq!(StatusDetails::parse(d.as_str()), Some(*d));
        }
        assert_eq!(Subject::ALL.len(), Subject::NAMES.len());
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            closest("voise", Channel::NAMES.iter().copied()),
            Some("voice")
        );
        assert_eq!(
            closest("Email", Channel::NAMES.iter().copied()),
            Some("email")
        );
        assert_eq!(closest("zzzzzzzz", Channel::NAMES.iter().copied()), None);
    }
}
