//! One timeline, several destinations, each with its own connection, queue and reconnect
//! state.
//!
//! The pacer releases each unit once; [`Fanout::send`] hands it to every destination that is
//! connected, without waiting for any of them: a unit goes into the session's bounded queue
//! (1 MiB by default) and the session's task writes it out. A destination whose queue is full
//! (a slow server, a stalled link) drops that unit and everything after it up to its next key
//! frame, counting the drop, while the others go on undisturbed.
//!
//! A destination that loses its connection (reset, closed, timed out, stalled) is, with a
//! [`ReconnectPolicy`], reconnected in the background with capped exponential backoff:
//! connected → lost → backoff → reconnecting → resumed. While it is down the timeline does not
//! wait: its units go stale and are dropped and counted, never sent later as a catch-up burst.
//! It resumes at a key frame (the encoder is asked for an IDR through the
//! [`KeyFrameRequest`]; copy mode waits for the input's next one), with the timestamps of the
//! timeline, so the outage is a gap and every track stays aligned. A failure that cannot heal
//! ([`PublishError::heals`]) ends the destination at once, and so does any loss without a
//! policy. The stream goes on while one destination is left.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;
use tokio::task::JoinHandle;

use crate::reconnect::{Jitter, ReconnectPolicy};
use crate::transport::session::MediaCheck;
use crate::transport::{redact_url, Media, PublishError, PublishOptions, Publisher, Track};

use super::{DestinationState, DestinationStats, KeyFrameRequest, ServerError};

/// How a reconnection in the background is getting on.
#[derive(Debug, Default)]
struct Attempts {
    /// The attempt under way (1-based).
    current: AtomicU32,
    /// Why the last attempt failed.
    last_error: Mutex<Option<String>>,
}

/// Why a destination ended early.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// The session failed (and was not, or could not be, reconnected).
    Error(PublishError),
    /// Reconnection gave up after this many attempts; the last attempt's error.
    GaveUp(u32, PublishError),
    /// The stream ended while the destination was still reconnecting; the last attempt's
    /// error, if an attempt was made.
    EndedReconnecting(Option<String>),
    /// The reconnection task died.
    Task(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Error(e) => f.write_str(&mpegcoder_types::error_chain(e)),
            Failure::GaveUp(n, e) => write!(
                f,
                "gave up after {n} reconnection attempt{}: {}",
                if *n == 1 { "" } else { "s" },
                mpegcoder_types::error_chain(e)
            ),
            Failure::EndedReconnecting(Some(e)) => {
                write!(f, "the stream ended while reconnecting (last attempt: {e})")
            }
            Failure::EndedReconnecting(None) => f.write_str("the stream ended while reconnecting"),
            Failure::Task(e) => write!(f, "the reconnection stopped: {e}"),
        }
    }
}

/// A connection the reconnection task made, and when it was made: the outage ends there,
/// not at the later moment the stream loop takes it over (up to a frame interval after).
struct Connected {
    publisher: Publisher,
    at: Instant,
}

/// The connection of a destination.
enum Link {
    Up(Box<Publisher>),
    Down {
        task: JoinHandle<Result<Connected, Failure>>,
        since: Instant,
        attempts: Arc<Attempts>,
    },
    Failed(Failure),
    Closed,
}

/// What the books keep of a unit.
#[derive(Debug, Clone, Copy)]
struct Kind {
    video: bool,
    key: bool,
}

/// One destination.
struct Destination {
    /// The address as given (credentials included, for reconnecting).
    address: String,
    link: Link,
    /// Drop everything up to the next video key frame.
    need_key: bool,
    /// Connected at least once.
    ever_up: bool,
    /// Bytes written by the sessions before the current one.
    bytes_before: u64,
    /// When the current connection was (re-)established, until its first frame left.
    resumed_at: Option<Instant>,
    stats: DestinationStats,
}

impl Destination {
    fn new(address: &str, link: Link) -> Destination {
        Destination {
            address: address.to_string(),
            ever_up: matches!(link, Link::Up(_)),
            link,
            need_key: false,
            bytes_before: 0,
            resumed_at: None,
            stats: DestinationStats::new(redact_url(address)),
        }
    }

    fn dropped(&mut self, unit: Kind) {
        if unit.video {
            self.stats.frames_dropped += 1;
        } else {
            self.stats.audio_frames_dropped += 1;
        }
    }

    fn sent(&mut self, unit: Kind, now: Instant) {
        if unit.video {
            self.stats.frames_sent += 1;
            self.stats.key_frames_sent += u64::from(unit.key);
            if let Some(at) = self.resumed_at.take() {
                self.stats.last_resume_wait_ms = Some(now.duration_since(at).as_secs_f64() * 1e3);
            }
        } else {
            self.stats.audio_frames_sent += 1;
        }
    }

    /// The statistics as of `now`.
    fn snapshot(&self, now: Instant) -> DestinationStats {
        let mut s = self.stats.clone();
        match &self.link {
            Link::Up(p) => {
                s.state = DestinationState::Connected;
                s.bytes_written = self.bytes_before + p.stats().bytes_written;
            }
            Link::Down {
                since, attempts, ..
            } => {
                s.state = if self.ever_up {
                    DestinationState::Reconnecting
                } else {
                    DestinationState::Connecting
                };
                let outage = now.duration_since(*since).as_secs_f64();
                s.current_outage_s = Some(outage);
                s.outage_s += outage;
                s.attempt = attempts.current.load(Ordering::Relaxed);
                s.bytes_written = self.bytes_before;
                if let Ok(e) = attempts.last_error.lock() {
                    s.error.clone_from(&e);
                }
            }
            Link::Failed(f) => {
                // Stopped while still reconnecting: it had not failed, the stream ended.
                s.state = match f {
                    Failure::EndedReconnecting(_) if self.ever_up => DestinationState::Reconnecting,
                    Failure::EndedReconnecting(_) => DestinationState::Connecting,
                    _ => DestinationState::Failed,
                };
                s.error = Some(f.to_string());
            }
            Link::Closed => s.state = DestinationState::Closed,
        }
        s
    }
}

/// Every destination of a server.
pub(super) struct Fanout {
    dests: Vec<Destination>,
    handle: tokio::runtime::Handle,
    tracks: Arc<[Track]>,
    options: PublishOptions,
    policy: Option<ReconnectPolicy>,
    key_frames: KeyFrameRequest,
    /// The up-front check of every unit, so a unit no destination could carry is refused
    /// once, whichever destinations are up.
    check: MediaCheck,
    jitter: Jitter,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field(
                "destinations",
                &self.dests.iter().map(|d| &d.stats.url).collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What every destination shares: the tracks, the session options, the reconnect policy, the
/// key frame flag, and the runtime reconnections run on.
pub(super) struct Setup {
    pub(super) tracks: Arc<[Track]>,
    pub(super) options: PublishOptions,
    pub(super) policy: Option<ReconnectPolicy>,
    pub(super) key_frames: KeyFrameRequest,
    pub(super) handle: tokio::runtime::Handle,
}

/// Connects to every address at once; one result per address, in order.
pub(super) async fn connect_all(
    addresses: Vec<String>,
    tracks: Arc<[Track]>,
    options: PublishOptions,
) -> Vec<Result<Publisher, PublishError>> {
    let connects = addresses.iter().map(|a| {
        let tracks = Arc::clone(&tracks);
        let options = options.clone();
        async move { Publisher::connect(a, &tracks, options).await }
    });
    futures::future::join_all(connects).await
}

impl Fanout {
    /// The destinations from the results of their first connection. A destination that could
    /// not connect reconnects in the background when the failure may heal and there is a
    /// policy; otherwise it has failed. Errors when every destination failed (with the first
    /// one's error, so a single destination fails exactly as a plain publisher would).
    pub(super) fn new(
        addresses: &[String],
        connected: Vec<Result<Publisher, PublishError>>,
        setup: Setup,
        now: Instant,
    ) -> Result<Fanout, ServerError> {
        let mut fanout = Fanout {
            dests: Vec::with_capacity(addresses.len()),
            check: MediaCheck::new(&setup.tracks),
            handle: setup.handle,
            tracks: setup.tracks,
            options: setup.options,
            policy: setup.policy,
            key_frames: setup.key_frames,
            jitter: Jitter::new(),
        };
        let mut first_error = None;
        for (address, result) in addresses.iter().zip(connected) {
            let link = match result {
                Ok(p) => Link::Up(Box::new(p)),
                Err(e) => match fanout.policy.filter(|_| e.heals()) {
                    Some(policy) => {
                        tracing::warn!(
                            url = %redact_url(address),
                            "cannot connect ({}); retrying",
                            mpegcoder_types::error_chain(&e)
                        );
                        fanout.spawn_reconnect(address, policy, e, now)
                    }
                    None => {
                        if addresses.len() > 1 {
                            tracing::warn!(
                                url = %redact_url(address),
                                "{}",
                                mpegcoder_types::error_chain(&e)
                            );
                        }
                        first_error.get_or_insert_with(|| e.clone());
                        Link::Failed(Failure::Error(e))
                    }
                },
            };
            fanout.dests.push(Destination::new(address, link));
        }
        if fanout.all_failed() {
            if let Some(e) = first_error {
                return Err(e.into());
            }
        }
        Ok(fanout)
    }

    /// The URL of the first destination, credentials removed.
    pub(super) fn url(&self) -> &str {
        self.dests.first().map_or("", |d| d.stats.url.as_str())
    }

    /// How many destinations there are.
    pub(super) fn len(&self) -> usize {
        self.dests.len()
    }

    fn all_failed(&self) -> bool {
        self.dests.iter().all(|d| matches!(d.link, Link::Failed(_)))
    }

    fn spawn_reconnect(
        &mut self,
        address: &str,
        policy: ReconnectPolicy,
        cause: PublishError,
        now: Instant,
    ) -> Link {
        let attempts = Arc::new(Attempts::default());
        let task = self.handle.spawn(reconnect(
            Target {
                address: address.to_string(),
                tracks: Arc::clone(&self.tracks),
                options: self.options.clone(),
            },
            policy,
            cause,
            Jitter::seeded(self.jitter.next()),
            Arc::clone(&attempts),
        ));
        Link::Down {
            task,
            since: now,
            attempts,
        }
    }

    /// Takes over the connections that came back, and the failures of those that gave up.
    fn poll_reconnects(&mut self, now: Instant) {
        for d in &mut self.dests {
            let Link::Down { task, since, .. } = &mut d.link else {
                continue;
            };
            if !task.is_finished() {
                continue;
            }
            let result = match task.now_or_never() {
                Some(Ok(r)) => r,
                Some(Err(e)) => Err(Failure::Task(e.to_string())),
                None => continue,
            };
            let ended = match &result {
                Ok(c) => c.at.clamp(*since, now.max(*since)),
                Err(_) => now,
            };
            let outage = ended.duration_since(*since).as_secs_f64();
            d.stats.outage_s += outage;
            match result {
                Ok(Connected { publisher, .. }) => {
                    if d.ever_up {
                        d.stats.reconnects += 1;
                        tracing::info!(
                            url = %d.stats.url,
                            "reconnected after {outage:.1} s; resuming at the next key frame"
                        );
                    } else {
                        tracing::info!(url = %d.stats.url, "connected after {outage:.1} s");
                    }
                    d.ever_up = true;
                    d.need_key = true;
                    d.resumed_at = Some(now);
                    d.stats.error = None;
                    d.link = Link::Up(Box::new(publisher));
                    self.key_frames.request();
                }
                Err(failure) => {
                    tracing::warn!(url = %d.stats.url, "{failure}");
                    d.link = Link::Failed(failure);
                }
            }
        }
    }

    /// A destination lost its connection with `error`: reconnect it, or it has failed.
    fn lose(&mut self, index: usize, error: PublishError, now: Instant) {
        let policy = self.policy.filter(|_| error.heals());
        let address = self.dests[index].address.clone();
        let link = match policy {
            Some(policy) => {
                tracing::warn!(
                    url = %redact_url(&address),
                    "connection lost ({}); reconnecting",
                    mpegcoder_types::error_chain(&error)
                );
                self.spawn_reconnect(&address, policy, error, now)
            }
            None => {
                if self.dests.len() > 1 {
                    tracing::warn!(
                        url = %redact_url(&address),
                        "{}; the other destinations go on",
                        mpegcoder_types::error_chain(&error)
                    );
                }
                Link::Failed(Failure::Error(error))
            }
        };
        let d = &mut self.dests[index];
        if let Link::Up(p) = std::mem::replace(&mut d.link, link) {
            d.bytes_before += p.stats().bytes_written;
            // Dropping the failed session ends its task.
            drop(p);
        }
        d.need_key = true;
    }

    /// Hands `media` to every destination that is up, as described in the module docs;
    /// `wait_for_room`: wait while a queue is full instead of dropping (unpaced sending, where
    /// the slowest destination sets the pace). True when some destination took it. Errors
    /// when the unit cannot be carried at all ([`PublishError::Media`]), or when every
    /// destination has failed (the first one's error).
    pub(super) async fn send(
        &mut self,
        media: Media,
        wait_for_room: bool,
        now: Instant,
    ) -> Result<bool, ServerError> {
        self.check.check(&media).map_err(PublishError::from)?;
        self.poll_reconnects(now);
        let kind = Kind {
            video: media.video().is_some(),
            key: media.video().is_some_and(|au| au.key),
        };
        let mut taken = false;
        let mut lost = Vec::new();
        let last = self.dests.len().saturating_sub(1);
        let mut media = Some(media);
        for i in 0..self.dests.len() {
            let unit = if i == last {
                media.take()
            } else {
                media.clone()
            };
            let Some(unit) = unit else { break };
            let d = &mut self.dests[i];
            let Link::Up(publisher) = &mut d.link else {
                if matches!(d.link, Link::Down { .. }) {
                    d.dropped(kind);
                }
                continue;
            };
            if d.need_key {
                if !kind.key {
                    d.dropped(kind);
                    continue;
                }
                d.need_key = false;
            }
            let result = if wait_for_room {
                publisher.send(unit).await.map(|()| true)
            } else {
                publisher.try_send(unit)
            };
            match result {
                Ok(true) => {
                    d.sent(kind, now);
                    taken = true;
                }
                Ok(false) => {
                    d.dropped(kind);
                    d.stats.queue_overflows += 1;
                    d.need_key = true;
                    self.key_frames.request();
                    tracing::debug!(url = %d.stats.url, "queue full: dropping to the next key frame");
                }
                Err(e) if e.is_media_error() => {
                    d.stats.refused += 1;
                    tracing::warn!(url = %d.stats.url, "unit refused: {e}");
                }
                // The unit that found the connection gone did not reach the server.
                Err(e) => {
                    d.dropped(kind);
                    lost.push((i, e));
                }
            }
        }
        for (i, e) in lost {
            self.lose(i, e, now);
        }
        if self.all_failed() {
            if let Some(Link::Failed(f)) = self.dests.first().map(|d| &d.link) {
                return Err(self.failure_error(f.clone()));
            }
        }
        Ok(taken)
    }

    /// The error of a failed destination, as the server reports it.
    fn failure_error(&self, f: Failure) -> ServerError {
        match f {
            Failure::Error(e) => e.into(),
            other => ServerError::Destinations {
                failures: vec![(self.url().to_string(), other.to_string())],
            },
        }
    }

    /// Per-destination statistics as of now.
    pub(super) fn stats(&self, now: Instant) -> Vec<DestinationStats> {
        self.dests.iter().map(|d| d.snapshot(now)).collect()
    }

    /// The session counters of the first destination that is up (receiver reports, server
    /// status), for the server's own statistics.
    pub(super) fn primary_stats(&self) -> crate::transport::PublisherStats {
        self.dests
            .iter()
            .find_map(|d| match &d.link {
                Link::Up(p) => Some(p.stats()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Ends every session gracefully (all at once) and stops every reconnection; the final
    /// statistics of each destination and, for those that did not receive the stream to the
    /// end, why.
    pub(super) async fn close(
        &mut self,
        now: Instant,
    ) -> (Vec<DestinationStats>, Vec<(String, String)>) {
        self.poll_reconnects(now);
        let mut closing = Vec::new();
        for (i, d) in self.dests.iter_mut().enumerate() {
            match std::mem::replace(&mut d.link, Link::Closed) {
                Link::Up(p) => closing.push((i, p)),
                Link::Down {
                    task,
                    since,
                    attempts,
                } => {
                    task.abort();
                    d.stats.outage_s += now.duration_since(since).as_secs_f64();
                    d.stats.attempt = attempts.current.load(Ordering::Relaxed);
                    let last = attempts.last_error.lock().ok().and_then(|e| e.clone());
                    d.link = Link::Failed(Failure::EndedReconnecting(last));
                }
                other => d.link = other,
            }
        }
        let closes = closing.into_iter().map(|(i, p)| async move {
            let bytes = p.stats().bytes_written;
            (i, bytes, p.close().await)
        });
        for (i, bytes, result) in futures::future::join_all(closes).await {
            let d = &mut self.dests[i];
            match result {
                Ok(stats) => {
                    d.bytes_before += stats.bytes_written;
                    d.link = Link::Closed;
                }
                Err(e) => {
                    d.bytes_before += bytes;
                    d.link = Link::Failed(Failure::Error(e));
                }
            }
        }
        let stats: Vec<DestinationStats> = self
            .dests
            .iter()
            .map(|d| {
                let mut s = d.snapshot(now);
                s.bytes_written = d.bytes_before;
                s
            })
            .collect();
        let failures = self
            .dests
            .iter()
            .filter_map(|d| match &d.link {
                Link::Failed(f) => Some((d.stats.url.clone(), f.to_string())),
                _ => None,
            })
            .collect();
        (stats, failures)
    }

    /// The error of the only destination, when there is one and it failed: reported as the
    /// publisher's own error, as without fan-out.
    pub(super) fn sole_failure(&self) -> Option<ServerError> {
        match self.dests.as_slice() {
            [d] => match &d.link {
                Link::Failed(f) => Some(self.failure_error(f.clone())),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for d in &self.dests {
            if let Link::Down { task, .. } = &d.link {
                task.abort();
            }
        }
    }
}

/// What a reconnection connects to.
struct Target {
    address: String,
    tracks: Arc<[Track]>,
    options: PublishOptions,
}

/// Reconnects until it works, the failure cannot heal, or the policy gives up; `cause` is the
/// failure that started the outage.
async fn reconnect(
    target: Target,
    policy: ReconnectPolicy,
    cause: PublishError,
    mut jitter: Jitter,
    attempts: Arc<Attempts>,
) -> Result<Connected, Failure> {
    let url = redact_url(&target.address);
    let mut last = cause;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        if !policy.allows(attempt) {
            return Err(Failure::GaveUp(attempt - 1, last));
        }
        tokio::time::sleep(policy.delay(attempt, jitter.next())).await;
        attempts.current.store(attempt, Ordering::Relaxed);
        match Publisher::connect(&target.address, &target.tracks, target.options.clone()).await {
            Ok(publisher) => {
                return Ok(Connected {
                    publisher,
                    at: Instant::now(),
                })
            }
            Err(e) if e.heals() => {
                tracing::debug!(%url, attempt, "reconnect failed: {e}");
                if let Ok(mut slot) = attempts.last_error.lock() {
                    *slot = Some(mpegcoder_types::error_chain(&e));
                }
                last = e;
            }
            Err(e) => return Err(Failure::Error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_why_the_destination_ended() {
        let error = PublishError::UnsupportedScheme {
            url: "http://h/x".into(),
        };
        assert!(Failure::Error(error.clone())
            .to_string()
            .starts_with("unsupported URL http://h/x"));
        assert!(Failure::GaveUp(3, error)
            .to_string()
            .starts_with("gave up after 3 reconnection attempts: unsupported URL"));
        assert_eq!(
            Failure::EndedReconnecting(Some("refused".into())).to_string(),
            "the stream ended while reconnecting (last attempt: refused)"
        );
    }
}
