//! Answers to a message: `poll.vote`/`poll.vote.failed` and
//! `event.response`/`event.response.failed`.

use serde_json::Value;

use super::WahaCtx;
use super::notifications::{text_at, time_at};
use super::parties::customer_profile;
use crate::model::{EventType, NotificationData, Subject, SubjectKind};
use crate::providers::chat_id::WahaMessageId;

impl WahaCtx<'_> {
    /// `poll.vote`, `poll.vote.failed`: a vote on a poll.
    pub(super) fn poll_vote(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        let time = |p: &str| time_at(raw, p);
        n.kind = Some(
            if self.event == "poll.vote" {
                "vote"
            } else {
                "vote_failed"
            }
            .to_owned(),
        );
        n.subject = Some(Subject::new(SubjectKind::Poll, s("/poll/id")));
        n.occurred_at = time("/vote/timestamp");
        let voter = s("/vote/participant")
            .or_else(|| s("/vote/from"))
            .filter(|v| v != "me");
        n.contact = voter.as_deref().and_then(customer_profile);
        n.chat_id = s("/vote/id")
            .and_then(|id| WahaMessageId::parse(&id))
            .map(|p| p.chat);
        if self.event == "poll.vote" {
            EventType::PollVoted
        } else {
            EventType::PollVoteFailed
        }
    }

    /// `event.response`, `event.response.failed`: an answer to an event invitation.
    pub(super) fn event_response(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        let time = |p: &str| time_at(raw, p);
        n.kind = s("/eventResponse/response").or_else(|| Some("failed".to_owned()));
        n.status = s("/eventResponse/response");
        n.subject = Some(Subject::new(SubjectKind::Event, s("/eventCreationKey/id")));
        n.occurred_at = time("/eventResponse/timestampMs").or_else(|| time("/timestamp"));
        let responder = s("/participant").or_else(|| s("/from"));
        n.contact = responder.as_deref().and_then(customer_profile);
        n.chat_id = s("/id")
            .and_then(|id| WahaMessageId::parse(&id))
            .map(|p| p.chat);
        if self.event == "event.response" {
            EventType::EventResponded
        } else {
            EventType::EventResponseFailed
        }
    }
}
