//! RTSP PLAY through retina: DESCRIBE, SETUP of the first H.264 video stream (and of the first
//! audio stream retina can depacketize into a codec of [`crate::audio`]), PLAY, then
//! depacketized access units and audio frames.
//!
//! Audio that retina 0.4.21 depacketizes and this driver hands out: AAC (`mpeg4-generic`,
//! RFC 3640; raw frames, the SDP's `config=` as the AudioSpecificConfig) and G.711
//! (`PCMA` / `PCMU`, RFC 3551 §4.5.14, through retina's "simple audio" depacketizer). retina
//! has no depacketizer for Opus (RFC 7587) or MPEG audio (RFC 2250 `MPA`); those streams, and
//! the other simple-audio codecs (G.722, G.726, L16, DVI4), are skipped with a log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials, Demuxed, InitialSequenceNumberPolicy, InitialTimestampPolicy, PlayOptions,
    SessionGroup, SessionOptions, SetupOptions, Stream, Transport as RetinaTransport,
    UdpTransportOptions,
};
use retina::codec::{h26x::Framing, CodecItem, FrameFormat, ParameterSetInsertion, ParametersRef};
use tokio::time::{timeout, timeout_at, Instant};

use super::error::{PullError, PullStep};
use super::PullOptions;
use crate::audio::{AudioCodec, AudioFrame, AudioTrack};
use crate::h264::{AccessUnit, VideoTrack};
use crate::net::{resolve, ConnectError};
use crate::rtsp::RtspUrl;
use crate::session::Media;
use crate::TimeBase;
use crate::Transport;

/// RTCP packet type of a BYE (RFC 3550 §6.6).
const RTCP_BYE: u8 = 203;
/// How long `close` waits for retina's TEARDOWN.
const CLOSE_LIMIT: Duration = Duration::from_millis(500);

/// An RTSP play session.
pub(super) struct RtspPull {
    demuxed: Demuxed,
    /// Tracks the session's TEARDOWN after the demuxer is dropped.
    group: Arc<SessionGroup>,
    stream_i: usize,
    track: Option<VideoTrack>,
    /// The audio stream set up, and its track.
    audio: Option<(usize, AudioTrack)>,
    /// The timestamp of the last audio frame handed out.
    last_audio_pts: Option<i64>,
    /// Audio frames dropped (empty, or going back in time).
    audio_dropped: u64,
    /// `a=framerate` from the SDP, used when the SPS has no timing information.
    sdp_frame_rate: Option<(u32, u32)>,
    url: String,
    idle_timeout: Duration,
    last_video: Instant,
    saw_video: bool,
    lost_packets: u64,
    /// RTP packets retina rejected (e.g. an FU-A fragment whose start was lost), each
    /// dropping the access unit it belonged to.
    depacketize_errors: u64,
    /// Access units dropped after a loss while waiting for the next IDR picture.
    dropped_after_loss: u64,
    /// A key frame was handed out: from then on a loss makes the driver wait for the next
    /// one (before it, the puller's join gate does).
    key_seen: bool,
    /// A loss happened since the last key frame handed out: inter frames are dropped.
    awaiting_key: bool,
    /// The last packet error since video last arrived: the reason to report if the session
    /// ends (retina stops after an error it cannot get past) or stalls before more video.
    packet_error: Option<retina::Error>,
    /// An RTCP BYE for the video stream arrived: the stream ended.
    ended: bool,
}

impl std::fmt::Debug for RtspPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspPull")
            .field("url", &self.url)
            .field("stream_i", &self.stream_i)
            .field("track", &self.track)
            .field("audio", &self.audio)
            .finish_non_exhaustive()
    }
}

impl RtspPull {
    /// DESCRIBE, SETUP and PLAY, each bounded by its timeout.
    ///
    /// retina opens the TCP connection inside `describe`, so that step (connecting and the
    /// reply) is bounded by the longer of the connect and setup timeouts: a caller that sets
    /// both to S gets every step bounded by S. The host is resolved first, within the connect
    /// timeout, so a bad host name fails with its own error.
    pub(super) async fn connect(url: RtspUrl, options: &PullOptions) -> Result<Self, PullError> {
        let shown = url.to_string();
        // retina opens the connection itself; resolving first gives a bad host name its own
        // error, and the address names the server in a connection error.
        let addrs = resolve(&url.host(), url.port(), &shown, options.connect_timeout).await?;
        let creds = url.credentials().map(|c| Credentials {
            username: c.username.clone(),
            password: c.password.clone(),
        });
        let group = Arc::new(SessionGroup::default());
        let session_options = SessionOptions::default()
            .creds(creds)
            .user_agent(options.user_agent.clone())
            .session_group(Arc::clone(&group));
        let describe_limit = options.connect_timeout.max(options.setup_timeout);
        let mut session = match timeout(
            describe_limit,
            retina::client::Session::describe(url.as_url().clone(), session_options),
        )
        .await
        {
            Err(_) => return Err(timed_out(&shown, PullStep::Describe, describe_limit)),
            Ok(Err(e)) => return Err(retina_error(&shown, PullStep::Describe, &e, &addrs)),
            Ok(Ok(s)) => s,
        };
        let streams = session.streams();
        let Some(stream_i) = streams.iter().position(|s| {
            s.media().eq_ignore_ascii_case("video")
                && s.encoding_name().eq_ignore_ascii_case("h264")
        }) else {
            let found: Vec<String> = streams
                .iter()
                .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                .collect();
            return Err(PullError::NoVideo {
                url: shown,
                found: if found.is_empty() {
                    "the SDP describes no streams".into()
                } else {
                    format!("the SDP offers {}", found.join(", "))
                },
            });
        };
        let sdp_frame_rate = streams
            .get(stream_i)
            .and_then(|s| s.framerate())
            .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)
            .map(|f| ((f64::from(f) * 1000.0).round() as u32, 1000));
        let transport = match options.transport {
            // Auto pulls over TCP, which works wherever the server offers it.
            Transport::Tcp | Transport::Auto => RetinaTransport::default(),
            Transport::Udp => RetinaTransport::Udp(UdpTransportOptions::default()),
        };
        // Length-prefixed NAL units (zero-copy into AccessUnit); SPS/PPS in-band only when they
        // change, so a decoder sees the new ones in the key frame that needs them.
        let frame_format = FrameFormat {
            h26x_framing: Framing::FourByteLength,
            parameter_set_insertion: ParameterSetInsertion::OnChange,
            ..FrameFormat::MP4
        };
        // Raw AAC frames (`..FrameFormat::MP4`): the AudioSpecificConfig travels in the track.
        let setup = || {
            SetupOptions::default()
                .transport(transport.clone())
                .frame_format(frame_format)
        };
        match timeout(options.setup_timeout, session.setup(stream_i, setup())).await {
            Err(_) => return Err(timed_out(&shown, PullStep::Setup, options.setup_timeout)),
            Ok(Err(e)) => return Err(retina_error(&shown, PullStep::Setup, &e, &addrs)),
            Ok(Ok(())) => {}
        }
        let mut audio = audio_stream(&shown, session.streams());
        if let Some((audio_i, _)) = &audio {
            match timeout(options.setup_timeout, session.setup(*audio_i, setup())).await {
                Err(_) => return Err(timed_out(&shown, PullStep::Setup, options.setup_timeout)),
                // The server refused the audio stream's SETUP: play the video alone.
                Ok(Err(e)) if e.status_code().is_some() => {
                    let error = retina_error(&shown, PullStep::Setup, &e, &addrs);
                    tracing::warn!(url = %shown, %error, "audio SETUP refused; pulling video only");
                    audio = None;
                }
                Ok(Err(e)) => return Err(retina_error(&shown, PullStep::Setup, &e, &addrs)),
                Ok(Ok(())) => {}
            }
        }
        // Start from the sequence numbers actually received rather than the PLAY response's
        // RTP-Info `seq`: a server relaying a shared live stream (GStreamer) may announce a seq
        // past packets already queued for this client, which retina takes for a reordered
        // stream over TCP and fails on.
        //
        // With audio, each stream's timestamps count from the RTP-Info `rtptime` when the
        // server gives it for both (then video and audio share one origin, RFC 2326 §12.33);
        // otherwise from each stream's first packet. (retina's default would require
        // `rtptime` as soon as two streams play.) Video alone keeps counting from its first
        // packet.
        let timestamps = if audio.is_some() {
            InitialTimestampPolicy::Permissive
        } else {
            InitialTimestampPolicy::Ignore
        };
        let play = PlayOptions::default()
            .initial_seq(InitialSequenceNumberPolicy::Ignore)
            .initial_timestamp(timestamps);
        let playing = match timeout(options.setup_timeout, session.play(play)).await {
            Err(_) => return Err(timed_out(&shown, PullStep::Play, options.setup_timeout)),
            Ok(Err(e)) => return Err(retina_error(&shown, PullStep::Play, &e, &addrs)),
            Ok(Ok(p)) => p,
        };
        let demuxed = playing
            .demuxed()
            .map_err(|e| retina_error(&shown, PullStep::Play, &e, &addrs))?;
        let mut me = RtspPull {
            demuxed,
            group,
            stream_i,
            track: None,
            audio,
            last_audio_pts: None,
            audio_dropped: 0,
            sdp_frame_rate,
            url: shown,
            idle_timeout: options.idle_timeout,
            last_video: Instant::from_std(crate::clock::now()),
            saw_video: false,
            lost_packets: 0,
            depacketize_errors: 0,
            dropped_after_loss: 0,
            key_seen: false,
            awaiting_key: false,
            packet_error: None,
            ended: false,
        };
        me.refresh_track();
        Ok(me)
    }

    /// The video track, once known (from the SDP's `sprop-parameter-sets`, or in-band).
    pub(super) fn track(&self) -> Option<&VideoTrack> {
        self.track.as_ref()
    }

    /// The audio track, if an audio stream was set up.
    pub(super) fn audio_track(&self) -> Option<&AudioTrack> {
        self.audio.as_ref().map(|(_, t)| t)
    }

    /// RTP packets retina reported lost (video and audio).
    pub(super) fn lost_packets(&self) -> u64 {
        self.lost_packets
    }

    /// RTP packets the depacketizer rejected (see [`super::PullStats::depacketize_errors`]).
    pub(super) fn depacketize_errors(&self) -> u64 {
        self.depacketize_errors
    }

    /// Access units dropped after a loss until the next key frame.
    pub(super) fn dropped_after_loss(&self) -> u64 {
        self.dropped_after_loss
    }

    /// Audio frames dropped: empty, or stamped before the previous one.
    pub(super) fn audio_dropped(&self) -> u64 {
        self.audio_dropped
    }

    /// The next access unit or audio frame, in arrival order; `None` once the server sent an
    /// RTCP BYE for the video stream (RFC 3550 §6.6: the source is leaving), the one explicit
    /// end of an RTSP stream. The server closing the connection without one is
    /// [`PullError::ConnectionClosed`] (step [`PullStep::Streaming`]): a server that was
    /// killed or a network that failed looks exactly like that, and must not pass for the end
    /// of the stream.
    ///
    /// Losses do not end the session. RFC 6184 §5.8: a receiver that misses a fragment of a
    /// NAL unit drops the fragments that follow it and the incomplete NAL unit; retina reports
    /// such a packet (e.g. an FU-A fragment without its start, from joining mid-frame or a lost
    /// UDP packet) as an error after discarding the access unit it belonged to, and carries on
    /// with the next one. The driver counts it, and since the pictures that follow may refer to
    /// the lost one, hands out no access unit until the next IDR picture. The same holds for
    /// a frame that retina reports with lost packets before it (it may lack its beginning).
    ///
    /// RTP carries only the presentation time (RFC 6184 §5.1: the RTP timestamp is the
    /// sampling timestamp of the content), so `dts` is set to `pts`: with B-frames it is not
    /// monotonic. Both are in the stream's clock (1/90000 for H.264). Audio frames are stamped
    /// in their stream's clock (the sampling rate for AAC, RFC 3640 §3.2.1; 8 kHz for G.711),
    /// never going back. Only video counts for the idle timeout.
    pub(super) async fn next(&mut self) -> Result<Option<Media>, PullError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            let deadline = self.last_video + self.idle_timeout;
            let item = match timeout_at(deadline, self.demuxed.next()).await {
                Err(_) => {
                    // Only rejected packets since the last video: that is the reason.
                    if let Some(e) = self.packet_error.take() {
                        return Err(retina_error(&self.url, PullStep::Streaming, &e, &[]));
                    }
                    let (url, after) = (self.url.clone(), self.idle_timeout);
                    return Err(if self.saw_video {
                        PullError::Stalled { url, after }
                    } else {
                        PullError::NoVideoReceived { url, after }
                    });
                }
                Ok(None) => {
                    // retina ends its stream after a packet error it cannot get past: report
                    // that error rather than the end.
                    if let Some(e) = self.packet_error.take() {
                        return Err(retina_error(&self.url, PullStep::Streaming, &e, &[]));
                    }
                    return Err(PullError::ConnectionClosed {
                        url: self.url.clone(),
                        step: PullStep::Streaming,
                    });
                }
                Ok(Some(Err(e))) => match packet_error_stream(&e) {
                    Some(stream) => {
                        self.on_packet_error(stream, e);
                        continue;
                    }
                    None => return Err(streaming_error(&self.url, &e)),
                },
                Ok(Some(Ok(item))) => item,
            };
            match item {
                CodecItem::VideoFrame(frame) if frame.stream_id() == self.stream_i => {
                    let loss = frame.loss();
                    self.lost_packets += u64::from(loss);
                    if frame.has_new_parameters() || self.track.is_none() {
                        self.refresh_track();
                    }
                    let ts = frame.timestamp();
                    let time_base =
                        TimeBase::checked(1, ts.clock_rate().get()).unwrap_or(TimeBase::RTP_VIDEO);
                    let pts = ts.elapsed();
                    let data = Bytes::from(frame.into_data());
                    let mut au =
                        AccessUnit::from_length_prefixed(&data, 4, pts, pts, time_base, false)
                            .map_err(|e| PullError::BadMedia {
                                url: self.url.clone(),
                                reason: e.to_string(),
                            })?;
                    // Video arrives: the session is alive, whatever the gate below decides.
                    self.saw_video = true;
                    self.last_video = Instant::from_std(crate::clock::now());
                    self.packet_error = None;
                    if au.nalus.is_empty() {
                        continue;
                    }
                    // RTP has no key frame flag: an IDR picture is the random access point.
                    au.key = au.has_idr();
                    if !self.pass_after_loss(&au, loss) {
                        continue;
                    }
                    return Ok(Some(Media::H264(au)));
                }
                CodecItem::AudioFrame(frame)
                    if self
                        .audio
                        .as_ref()
                        .is_some_and(|(i, _)| *i == frame.stream_id()) =>
                {
                    self.lost_packets += u64::from(frame.loss());
                    if let Some(frame) = self.audio_frame(&frame) {
                        return Ok(Some(Media::Audio(frame)));
                    }
                }
                // RFC 3550 §6.6: BYE, the source is leaving.
                CodecItem::Rtcp(rtcp)
                    if rtcp.stream_id() == self.stream_i
                        && rtcp.pkts().any(|p| p.payload_type() == RTCP_BYE) =>
                {
                    self.ended = true;
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// A packet retina rejected (its access unit is gone): counted; a video loss after the
    /// first key frame makes the driver wait for the next one. `stream`: the stream it
    /// belonged to, when retina says.
    fn on_packet_error(&mut self, stream: Option<usize>, e: retina::Error) {
        self.depacketize_errors += 1;
        let video = stream.is_none_or(|s| s == self.stream_i);
        let text = e.to_string();
        let reason = text.lines().next().unwrap_or("").trim();
        tracing::debug!(
            url = %self.url,
            stream,
            reason,
            "dropped an RTP packet and its access unit (RFC 6184 §5.8)"
        );
        if video && self.key_seen {
            self.awaiting_key = true;
        }
        self.packet_error = Some(e);
    }

    /// The loss gate: after a loss (a rejected packet, or packets missing before this access
    /// unit), inter pictures may refer to what was lost, so only the next IDR picture that
    /// arrived whole passes. Before the first key frame the puller's join gate decides.
    fn pass_after_loss(&mut self, au: &AccessUnit, loss: u16) -> bool {
        let whole_key = au.key && loss == 0;
        if !self.key_seen {
            if au.key && !whole_key {
                // A key frame that may lack its beginning: wait for the next one.
                self.dropped_after_loss += 1;
                return false;
            }
            self.key_seen = au.key;
            return true;
        }
        if loss > 0 {
            self.awaiting_key = true;
        }
        if self.awaiting_key {
            if !whole_key {
                self.dropped_after_loss += 1;
                return false;
            }
            self.awaiting_key = false;
            tracing::debug!(
                url = %self.url,
                dropped = self.dropped_after_loss,
                "resumed at a key frame after a loss"
            );
        }
        true
    }

    /// Drops the session (retina sends TEARDOWN in the background) and waits briefly for the
    /// TEARDOWN attempt, so the server stops sending (over UDP it would otherwise go on until
    /// the session times out).
    pub(super) async fn close(self) {
        let group = Arc::clone(&self.group);
        drop(self);
        let _ = timeout(CLOSE_LIMIT, group.await_teardown()).await;
    }

    /// Converts retina's audio frame; `None` (counted) for one that is empty or goes back in
    /// time.
    fn audio_frame(&mut self, frame: &retina::codec::AudioFrame) -> Option<AudioFrame> {
        let ts = frame.timestamp();
        let pts = ts.elapsed();
        if frame.data().is_empty() || self.last_audio_pts.is_some_and(|last| pts < last) {
            self.audio_dropped += 1;
            return None;
        }
        self.last_audio_pts = Some(pts);
        let time_base = TimeBase::new(1, ts.clock_rate().get());
        Some(AudioFrame::new(
            Bytes::copy_from_slice(frame.data()),
            pts,
            time_base,
        ))
    }

    fn refresh_track(&mut self) {
        let Some(stream) = self.demuxed.streams().get(self.stream_i) else {
            return;
        };
        let Some(ParametersRef::Video(params)) = stream.parameters() else {
            return;
        };
        // FourByteLength framing: the extra data is an avcC record.
        let Ok(mut track) =
            VideoTrack::from_extradata(&Bytes::copy_from_slice(params.extra_data()))
        else {
            return;
        };
        // The SPS's VUI timing gives the frame rate; else the SDP's `a=framerate`. (retina's
        // `frame_rate()` is a frame duration, not a rate.)
        if track.frame_rate.is_none() {
            track.frame_rate = self.sdp_frame_rate;
        }
        self.track = Some(track);
    }
}

/// The first audio stream of the SDP that retina depacketizes into a codec of
/// [`crate::audio`], with its track; every other audio stream is skipped with a log line.
fn audio_stream(url: &str, streams: &[Stream]) -> Option<(usize, AudioTrack)> {
    let mut found = None;
    for (i, stream) in streams.iter().enumerate() {
        if !stream.media().eq_ignore_ascii_case("audio") {
            continue;
        }
        let encoding = stream.encoding_name();
        if found.is_some() {
            tracing::info!(url, stream = i, encoding, "skipping a second audio stream");
            continue;
        }
        match audio_track(stream) {
            Ok(track) => found = Some((i, track)),
            Err(reason) => {
                tracing::info!(
                    url,
                    stream = i,
                    encoding,
                    reason,
                    "skipping an audio stream"
                )
            }
        }
    }
    found
}

/// The track of an audio stream, or why it cannot be pulled.
fn audio_track(stream: &Stream) -> Result<AudioTrack, String> {
    // retina knows the parameters from the SDP for every audio codec it depacketizes; none
    // means it has no depacketizer for this one (or the SDP's parameters are unusable).
    let Some(ParametersRef::Audio(params)) = stream.parameters() else {
        return Err("retina cannot depacketize it".into());
    };
    let encoding = stream.encoding_name();
    let codec = if encoding.eq_ignore_ascii_case("mpeg4-generic") {
        AudioCodec::Aac
    } else if encoding.eq_ignore_ascii_case("pcma") {
        AudioCodec::Pcma
    } else if encoding.eq_ignore_ascii_case("pcmu") {
        AudioCodec::Pcmu
    } else {
        return Err("not a codec this puller hands out".into());
    };
    let track = match codec {
        // RFC 3640 §4.1: `config` is the AudioSpecificConfig, which retina hands on as the
        // extra data.
        AudioCodec::Aac => AudioTrack::aac(Bytes::copy_from_slice(params.extra_data())),
        _ => {
            let channels = u8::try_from(params.channels().get()).unwrap_or(u8::MAX);
            AudioTrack::new(codec, params.clock_rate(), channels)
        }
    };
    track.map_err(|e| e.to_string())
}

/// `Some(stream)` when `e` concerns one RTP or RTCP packet (retina discarded it, and what
/// depended on it, and can go on with the next packet), with the stream it belonged to when
/// known; `None` for an error of the session (connection, framing, keepalive).
///
/// retina's errors are opaque (only the status code is exposed); their debug form names the
/// kind and its fields, e.g. `RtpPacketError { .., stream_id: 0, .. }`.
fn packet_error_stream(e: &retina::Error) -> Option<Option<usize>> {
    let debug = format!("{e:?}");
    if !(debug.starts_with("RtpPacketError") || debug.starts_with("PacketError")) {
        return None;
    }
    let stream = debug.split_once("stream_id: ").and_then(|(_, rest)| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    Some(stream)
}

/// An error of the session while playing. A failed read of the connection (e.g. reset by a
/// server that died) is [`PullError::Io`]: a lost connection, like a close without a BYE.
fn streaming_error(url: &str, e: &retina::Error) -> PullError {
    const READ: &str = "Error reading from RTSP peer: ";
    if format!("{e:?}").starts_with("RtspReadError") {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("").trim();
        let reason = first.strip_prefix(READ).unwrap_or(first);
        // "Connection reset by peer (os error 104)": keep the error's kind.
        let code = reason
            .rsplit_once("(os error ")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .and_then(|n| n.parse::<i32>().ok());
        let source = match code {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::other(reason.to_string()),
        };
        return PullError::Io {
            url: url.to_string(),
            step: PullStep::Streaming,
            source: Arc::new(source),
        };
    }
    retina_error(url, PullStep::Streaming, e, &[])
}

fn timed_out(url: &str, step: PullStep, after: Duration) -> PullError {
    PullError::Timeout {
        url: url.to_string(),
        step,
        after,
    }
}

/// Maps a retina error to a typed one. retina's errors are opaque apart from the status code;
/// their text's first line is the useful part (the rest is connection context).
fn retina_error(url: &str, step: PullStep, e: &retina::Error, addrs: &[SocketAddr]) -> PullError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if let Some(status) = e.status_code() {
        return PullError::RtspStatus {
            url: url.to_string(),
            step,
            status,
            message: first,
        };
    }
    const CONNECT: &str = "Unable to connect to RTSP server: ";
    if let (Some(reason), Some(&addr)) = (first.strip_prefix(CONNECT), addrs.first()) {
        let url = url.to_string();
        return PullError::Connect(if reason.contains("refused") {
            ConnectError::Refused { addr, url }
        } else {
            ConnectError::Io {
                addr,
                url,
                source: Arc::new(std::io::Error::other(reason.to_string())),
            }
        });
    }
    PullError::Rtsp {
        url: url.to_string(),
        step,
        message: first,
    }
}
