//! The input gate: every rule on a message from the network, in one place.
//!
//! `RawNode::step` hands each network message to [`Raft::check_remote`] before anything else
//! sees it. A message that breaks a rule is refused with a typed [`Reason`] and changes no
//! state; a message that passes is handed to the protocol (`Raft::step`), which may still
//! ignore it for the protocol's own reasons (a stale term, say), as etcd does.
//!
//! Two kinds of rules live here:
//! - shape: what every honest message looks like whatever the node's state (a known type, a
//!   sender, values in range, contiguous entries, a snapshot with a valid ConfState);
//! - trust: what a sender may ask of this node given the configuration the node knows. The
//!   transport authenticates who sent a message (docs/security.md); these rules bound what
//!   a sender outside the node's configuration can do to it.

use slog::debug;

use super::*;
use crate::raftpb::is_local_msg_target;

/// How far above the highest term this node heard from a member a message from a non-member
/// may move its term. Honest terms grow by one per election, so a leader this node does not
/// know yet (its configuration lags) is never this far ahead; a forged message moves the term
/// by at most this much, and cannot do it again until the group's members have followed (see
/// docs/security.md: exhausting the term space takes at least 2^32 such rounds).
pub const MAX_UNCONFIRMED_TERM_JUMP: u64 = 1 << 29;

/// Why the input gate refused a message from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The message type is not one raftpb defines.
    UnknownType,
    /// No sender, or the sender is one of the reserved local ids.
    NoSender,
    /// The message claims to come from this node (only proposals and read requests forwarded
    /// back to their origin may).
    FromSelf,
    /// The message is addressed to another node.
    WrongRecipient,
    /// Term 0 on a message type that must carry a term.
    MissingTerm,
    /// A term or index above [`MAX_REMOTE_VALUE`].
    OutOfRange,
    /// A term more than [`MAX_UNCONFIRMED_TERM_JUMP`] above what this node's members agree on,
    /// from a sender outside its configuration, or more than [`MAX_TERM_JUMP`] above this
    /// node's term from a member.
    TermTooFarAhead,
    /// An entry or snapshot term above the message's term.
    TermAboveMessage,
    /// An entry of unknown type.
    UnknownEntryType,
    /// `responses` set on a network message (they belong to local storage messages).
    UnexpectedResponses,
    /// A proposal without entries.
    EmptyProposal,
    /// A read request without exactly one entry.
    MalformedReadIndex,
    /// A read response without exactly one entry.
    MalformedReadIndexResp,
    /// A `MsgSnap` without a snapshot, or with a snapshot without an index or term.
    MissingSnapshot,
    /// Append entries that do not follow the previous index one by one.
    NonContiguousEntries,
    /// Append entries whose terms go down, or are 0.
    EntryTermsDecrease,
    /// An append that would rewrite an entry this node knows is committed (the log's own
    /// guard; the gate's rules make it unreachable from `step`).
    RewritesCommitted,
    /// A snapshot index far past this node's log.
    SnapshotTooFarAhead,
    /// An append acknowledgement, in the leader's term, of an index past the leader's log.
    AckPastLog,
    /// A snapshot whose ConfState is invalid, or does not contain this node.
    InvalidConfState,
    /// A vote request from a node outside every configuration this voter knows or will learn
    /// from its log.
    VoteFromNonMember,
    /// A snapshot from a node outside the configuration this node knows, whose configuration
    /// lists as voters neither that node nor another voter this node knows.
    SnapshotFromNonMember,
    /// A candidate or leader message from a non-member to a node campaigning in that term.
    LeaderNotMember,
    /// `MsgTimeoutNow` from a node other than the leader this node follows, or at another
    /// term.
    TimeoutNowNotFromLeader,
    /// A response or a leadership request from a node outside the configuration.
    NotAMember,
}

impl Reason {
    /// A short snake_case name, for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::UnknownType => "unknown_type",
            Reason::NoSender => "no_sender",
            Reason::FromSelf => "from_self",
            Reason::WrongRecipient => "wrong_recipient",
            Reason::MissingTerm => "missing_term",
            Reason::OutOfRange => "out_of_range",
            Reason::TermTooFarAhead => "term_too_far_ahead",
            Reason::TermAboveMessage => "term_above_message",
            Reason::UnknownEntryType => "unknown_entry_type",
            Reason::UnexpectedResponses => "unexpected_responses",
            Reason::EmptyProposal => "empty_proposal",
            Reason::MalformedReadIndex => "malformed_read_index",
            Reason::MalformedReadIndexResp => "malformed_read_index_resp",
            Reason::MissingSnapshot => "missing_snapshot",
            Reason::NonContiguousEntries => "non_contiguous_entries",
            Reason::EntryTermsDecrease => "entry_terms_decrease",
            Reason::RewritesCommitted => "rewrites_committed",
            Reason::SnapshotTooFarAhead => "snapshot_too_far_ahead",
            Reason::AckPastLog => "ack_past_log",
            Reason::InvalidConfState => "invalid_conf_state",
            Reason::VoteFromNonMember => "vote_from_non_member",
            Reason::SnapshotFromNonMember => "snapshot_from_non_member",
            Reason::LeaderNotMember => "leader_not_member",
            Reason::TimeoutNowNotFromLeader => "timeout_now_not_from_leader",
            Reason::NotAMember => "not_a_member",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shape of an append: entries at `prev_index+1, prev_index+2, ...` (none at `u64::MAX`,
/// whose successor does not exist), terms at least 1, at least `prev_term`, never going down.
/// Returns the index of the last entry (`prev_index` when there are none). The gate applies it
/// to every `MsgApp`; `RaftLog::maybe_append` asserts it again as its own invariant.
pub(crate) fn append_shape(
    prev_index: u64,
    prev_term: u64,
    ents: &[Entry],
) -> std::result::Result<u64, Reason> {
    let mut last_term = prev_term;
    // The usual case: the whole run fits below u64::MAX, so no index on the way can overflow
    // and the loop only compares (the same checks in the same order as the general loop).
    if let Some(last) = prev_index
        .checked_add(ents.len() as u64)
        .filter(|&l| l < u64::MAX)
    {
        let mut want = prev_index;
        // A term of 0 is below 1: one comparison checks both rules.
        let mut floor = last_term.max(1);
        for e in ents {
            want += 1;
            if e.index != want {
                return Err(Reason::NonContiguousEntries);
            }
            if e.term < floor {
                return Err(Reason::EntryTermsDecrease);
            }
            floor = e.term;
        }
        return Ok(last);
    }
    let mut last_index = prev_index;
    for e in ents {
        let want = last_index
            .checked_add(1)
            .filter(|&i| i < u64::MAX)
            .ok_or(Reason::OutOfRange)?;
        if e.index != want {
            return Err(Reason::NonContiguousEntries);
        }
        if e.term == 0 || e.term < last_term {
            return Err(Reason::EntryTermsDecrease);
        }
        last_index = want;
        last_term = e.term;
    }
    Ok(last_index)
}

impl<S: Storage> Raft<S> {
    /// The gate. Checks a network message against every rule and returns its type, or the
    /// error `step` returns for it. Reads state, changes none.
    /// Also returns whether the sender is a member of the configuration this node knows, when
    /// a rule needed to look (`None` when none did: the hot path of appends and heartbeats
    /// from the leader at the node's term skips the lookup).
    pub(super) fn check_remote(&self, m: &Message) -> Result<(MessageType, Option<bool>)> {
        let t = match self.check_shape(m) {
            Ok(t) => t,
            Err(Error::InvalidMessage(why)) => return Err(self.refuse(m, why)),
            Err(e) => return Err(e),
        };
        let mut known = None;
        if t.is_response() {
            if !self.is_member(m.from) {
                return Err(Error::StepPeerNotFound);
            }
            known = Some(true);
        }
        let known = self
            .check_trust(m, t, known)
            .map_err(|why| self.refuse(m, why))?;
        Ok((t, known))
    }

    fn refuse(&self, m: &Message, why: Reason) -> Error {
        debug!(self.cfg.logger, "refused message";
            "raft_id" => self.id, "reason" => why.as_str(),
            "type" => m.msg_type().map_or("unknown", |t| t.as_str_name()), "from" => m.from,
            "to" => m.to, "msg_term" => m.term, "index" => m.index, "term" => self.term);
        Error::InvalidMessage(why)
    }

    /// Shape rules: what every honest message looks like.
    fn check_shape(&self, m: &Message) -> Result<MessageType> {
        use Reason::*;
        let bad = |why| Err(Error::InvalidMessage(why));
        let Some(t) = m.msg_type() else {
            return bad(UnknownType);
        };
        if t.is_local() || t == MessageType::MsgForgetLeader {
            return Err(Error::StepLocalMsg);
        }
        if m.from == NONE || is_local_msg_target(m.from) {
            return bad(NoSender);
        }
        // Requests forwarded to the leader keep their origin as sender; after a leader change
        // one can come back to the node that first made it. It is still that node's request.
        let termless = matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex);
        if m.from == self.id && !termless {
            return bad(FromSelf);
        }
        if m.to != self.id {
            return bad(WrongRecipient);
        }
        if m.term == 0 && !termless {
            return bad(MissingTerm);
        }
        if m.term > MAX_REMOTE_VALUE
            || m.log_term > MAX_REMOTE_VALUE
            || m.index > MAX_REMOTE_VALUE
            || m.commit > MAX_REMOTE_VALUE
            || m.reject_hint > MAX_REMOTE_VALUE
        {
            return bad(OutOfRange);
        }
        if m.term != 0 && (m.log_term > m.term || m.entries.iter().any(|e| e.term > m.term)) {
            return bad(TermAboveMessage);
        }
        if m.term != 0 && m.snapshot.as_ref().is_some_and(|s| s.term() > m.term) {
            return bad(TermAboveMessage);
        }
        for e in &m.entries {
            if e.term > MAX_REMOTE_VALUE || e.index > MAX_REMOTE_VALUE {
                return bad(OutOfRange);
            }
            if EntryType::try_from(e.r#type).is_err() {
                return bad(UnknownEntryType);
            }
        }
        if let Some(s) = &m.snapshot {
            if s.index() > MAX_REMOTE_VALUE || s.term() > MAX_REMOTE_VALUE {
                return bad(OutOfRange);
            }
        }
        if !m.responses.is_empty() {
            return bad(UnexpectedResponses);
        }
        match t {
            MessageType::MsgProp if m.entries.is_empty() => bad(EmptyProposal),
            MessageType::MsgReadIndex if m.entries.len() != 1 => bad(MalformedReadIndex),
            MessageType::MsgReadIndexResp if m.entries.len() != 1 => bad(MalformedReadIndexResp),
            // An acknowledgement, in this leader's term, of entries it never had: counting it
            // toward a quorum could commit what no quorum holds.
            MessageType::MsgAppResp
                if !m.reject
                    && m.term == self.term
                    && self.clk.state == StateRole::Leader
                    && m.index > self.raft_log.last_index() =>
            {
                bad(AckPastLog)
            }
            MessageType::MsgApp => match append_shape(m.index, m.log_term, &m.entries) {
                Ok(_) => Ok(t),
                Err(why) => bad(why),
            },
            MessageType::MsgSnap => {
                let Some(s) = m.snapshot.as_ref().filter(|s| !s.is_empty()) else {
                    return bad(MissingSnapshot);
                };
                if s.term() == 0 || s.index() == 0 {
                    return bad(MissingSnapshot);
                }
                // Like terms, indexes do not leap: a snapshot far past this node's log would
                // use up the index space and leave the node unable to replicate.
                if s.index() > self.raft_log.last_index().saturating_add(MAX_TERM_JUMP) {
                    return bad(SnapshotTooFarAhead);
                }
                let cs = s.conf_state();
                if crate::confchange::validate_conf_state(&cs).is_err() {
                    return bad(InvalidConfState);
                }
                // A snapshot is for a member: one that does not name this node would leave it
                // with a configuration it is not part of.
                let id = self.id;
                if !(cs.voters.contains(&id)
                    || cs.learners.contains(&id)
                    || cs.voters_outgoing.contains(&id))
                {
                    return bad(InvalidConfState);
                }
                Ok(t)
            }
            _ => Ok(t),
        }
    }

    /// Trust rules: what a sender may ask of this node, given the configuration it knows.
    ///
    /// "Known" means a member of the configuration this node has applied (voters of either
    /// half, learners, learners to be). A node that knows no configuration yet (a new member
    /// waiting for its first snapshot) knows nobody and cannot judge: it takes leader
    /// messages from anyone, within the term bound.
    fn check_trust(
        &self,
        m: &Message,
        t: MessageType,
        known: Option<bool>,
    ) -> std::result::Result<Option<bool>, Reason> {
        use MessageType::*;
        if t == MsgTimeoutNow && (m.from != self.lead || m.term != self.term) {
            // Only the leader this node follows may start its election at once, ignoring
            // leases: anyone else could use it to depose a healthy leader.
            return Err(Reason::TimeoutNowNotFromLeader);
        }
        // The rules below that hold for strangers only ever restrict term increases, votes,
        // snapshots, transfers, and leader messages to a campaigning node. Anything else
        // passes whoever sent it.
        let campaigning = matches!(
            self.clk.state,
            StateRole::Candidate | StateRole::PreCandidate
        );
        let restricted = m.term > self.term
            || matches!(t, MsgVote | MsgPreVote | MsgSnap | MsgTransferLeader)
            || (campaigning && matches!(t, MsgApp | MsgHeartbeat | MsgQuiesce));
        if !restricted {
            return Ok(known);
        }
        let known = known.unwrap_or_else(|| self.is_member(m.from));
        if known {
            // Members are trusted to follow the protocol (docs/security.md), and no honest
            // member runs 2^48 elections ahead. The bound only matters for a sender that
            // claims a member's id without being it, which the transport rules out.
            if m.term > self.term.saturating_add(MAX_TERM_JUMP) {
                return Err(Reason::TermTooFarAhead);
            }
            return Ok(Some(true));
        }
        let voters = &self.trk.config.voters;
        let knows_config = !(voters.incoming.is_empty() && voters.outgoing.is_empty());
        // A non-member moves this node's term only so far above what members agreed on.
        if m.term > self.term
            && m.term
                > self
                    .confirmed_term
                    .saturating_add(MAX_UNCONFIRMED_TERM_JUMP)
        {
            return Err(Reason::TermTooFarAhead);
        }
        match t {
            MsgVote | MsgPreVote => {
                // A voter of its own configuration votes for members of it, or of the one its
                // log will take it to (a configuration change past the applied index, committed
                // or not, may name the candidate). A node that is no voter of the
                // configuration it knows (a learner, a removed node) may be one in a newer
                // configuration it has not learned yet, whose candidates need its vote:
                // refusing them could leave that configuration unable to elect anyone.
                //
                // A leaderless voter handles a stranger's request as etcd does (it adopts the
                // term, and grants only an up-to-date log): its configuration may simply be
                // stale, having missed the change that added the candidate, and refusing (or
                // not moving to the candidate's term) can leave the newer configuration without
                // a quorum for ever. That costs at most this term's vote, and only while the
                // node has no leader anyway. A voter that follows a leader refuses.
                let voter_here = self.trk.config.voters.contains(self.id);
                if knows_config
                    && voter_here
                    && self.lead != NONE
                    && !self.has_conf_change_in(self.raft_log.last_index())
                {
                    return Err(Reason::VoteFromNonMember);
                }
                Ok(Some(false))
            }
            MsgSnap => {
                // A snapshot replaces the configuration: from a stranger it could make this
                // node the sole voter of a group of its choosing, which then commits alone. A
                // leader this node does not know yet (its configuration lags) sends a snapshot
                // of a configuration whose voters include itself, or (a demoted leader) other
                // voters this node knows. A stranger's snapshot must do one or the other, so
                // it never leaves this node a quorum of its own.
                let cs = m
                    .snapshot
                    .as_ref()
                    .map(|s| s.conf_state())
                    .unwrap_or_default();
                let mut voters = cs.voters.iter().chain(&cs.voters_outgoing);
                let vouched = voters
                    .any(|&v| v == m.from || (v != self.id && self.trk.config.voters.contains(v)));
                if knows_config && !vouched {
                    return Err(Reason::SnapshotFromNonMember);
                }
                Ok(Some(false))
            }
            MsgApp | MsgHeartbeat | MsgQuiesce => {
                // A leader this node does not know yet may be honest: its configuration may lag
                // (a new member, or one that missed the change that added the leader). But a
                // stranger does not end this node's own campaign in the same term.
                if m.term == self.term
                    && matches!(
                        self.clk.state,
                        StateRole::Candidate | StateRole::PreCandidate
                    )
                    && knows_config
                {
                    return Err(Reason::LeaderNotMember);
                }
                Ok(Some(false))
            }
            MsgTransferLeader => Err(Reason::NotAMember),
            // Proposals and reads may be forwarded by any node that believes this one leads;
            // a response from a non-member is refused by `step` (etcd's StepPeerNotFound).
            _ => Ok(Some(false)),
        }
    }
}
