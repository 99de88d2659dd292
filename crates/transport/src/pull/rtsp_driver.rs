//! RTSP PLAY through retina: DESCRIBE, SETUP of the first H.264 video stream, PLAY, then
//! depacketized access units.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials, Demuxed, InitialSequenceNumberPolicy, PlayOptions, SessionGroup, SessionOptions,
    SetupOptions, Transport as RetinaTransport, UdpTransportOptions,
};
use retina::codec::{h26x::Framing, CodecItem, FrameFormat, ParameterSetInsertion, ParametersRef};
use tokio::time::{timeout, timeout_at, Instant};

use super::error::{PullError, PullStep};
use super::PullOptions;
use crate::h264::{AccessUnit, VideoTrack};
use crate::net::{resolve, ConnectError};
use crate::rtsp::RtspUrl;
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
    /// `a=framerate` from the SDP, used when the SPS has no timing information.
    sdp_frame_rate: Option<(u32, u32)>,
    url: String,
    idle_timeout: Duration,
    last_video: Instant,
    saw_video: bool,
    lost_packets: u64,
}

impl std::fmt::Debug for RtspPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspPull")
            .field("url", &self.url)
            .field("stream_i", &self.stream_i)
            .field("track", &self.track)
            .finish_non_exhaustive()
    }
}

impl RtspPull {
    /// DESCRIBE, SETUP and PLAY, each bounded by its timeout.
    ///
    /// retina opens the TCP connection inside `describe`, so that step is bounded by the
    /// connect and setup timeouts together; the host is resolved first, within the connect
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
        let describe_limit = options.connect_timeout + options.setup_timeout;
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
            Transport::Tcp => RetinaTransport::default(),
            Transport::Udp => RetinaTransport::Udp(UdpTransportOptions::default()),
        };
        // Length-prefixed NAL units (zero-copy into AccessUnit); SPS/PPS in-band only when they
        // change, so a decoder sees the new ones in the key frame that needs them.
        let frame_format = FrameFormat {
            h26x_framing: Framing::FourByteLength,
            parameter_set_insertion: ParameterSetInsertion::OnChange,
            ..FrameFormat::MP4
        };
        let setup = SetupOptions::default()
            .transport(transport)
            .frame_format(frame_format);
        match timeout(options.setup_timeout, session.setup(stream_i, setup)).await {
            Err(_) => return Err(timed_out(&shown, PullStep::Setup, options.setup_timeout)),
            Ok(Err(e)) => return Err(retina_error(&shown, PullStep::Setup, &e, &addrs)),
            Ok(Ok(())) => {}
        }
        // Start from the sequence numbers actually received rather than the PLAY response's
        // RTP-Info `seq`: a server relaying a shared live stream (GStreamer) may announce a seq
        // past packets already queued for this client, which retina takes for a reordered
        // stream over TCP and fails on.
        let play = PlayOptions::default().initial_seq(InitialSequenceNumberPolicy::Ignore);
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
            sdp_frame_rate,
            url: shown,
            idle_timeout: options.idle_timeout,
            last_video: Instant::now(),
            saw_video: false,
            lost_packets: 0,
        };
        me.refresh_track();
        Ok(me)
    }

    /// The video track, once known (from the SDP's `sprop-parameter-sets`, or in-band).
    pub(super) fn track(&self) -> Option<&VideoTrack> {
        self.track.as_ref()
    }

    /// RTP packets retina reported lost.
    pub(super) fn lost_packets(&self) -> u64 {
        self.lost_packets
    }

    /// The next access unit; `None` when the server closed the connection or sent an RTCP BYE
    /// for the stream.
    ///
    /// RTP carries only the presentation time (RFC 6184 §5.1: the RTP timestamp is the
    /// sampling timestamp of the content), so `dts` is set to `pts`: with B-frames it is not
    /// monotonic. Both are in the stream's clock (1/90000 for H.264) from the first packet.
    pub(super) async fn next(&mut self) -> Result<Option<AccessUnit>, PullError> {
        loop {
            let deadline = self.last_video + self.idle_timeout;
            let item = match timeout_at(deadline, self.demuxed.next()).await {
                Err(_) => {
                    let (url, after) = (self.url.clone(), self.idle_timeout);
                    return Err(if self.saw_video {
                        PullError::Stalled { url, after }
                    } else {
                        PullError::NoVideoReceived { url, after }
                    });
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(retina_error(&self.url, PullStep::Streaming, &e, &[]))
                }
                Ok(Some(Ok(item))) => item,
            };
            match item {
                CodecItem::VideoFrame(frame) if frame.stream_id() == self.stream_i => {
                    self.lost_packets += u64::from(frame.loss());
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
                    if au.nalus.is_empty() {
                        continue;
                    }
                    // RTP has no key frame flag: an IDR picture is the random access point.
                    au.key = au.has_idr();
                    self.saw_video = true;
                    self.last_video = Instant::now();
                    return Ok(Some(au));
                }
                // RFC 3550 §6.6: BYE, the source is leaving.
                CodecItem::Rtcp(rtcp)
                    if rtcp.stream_id() == self.stream_i
                        && rtcp.pkts().any(|p| p.payload_type() == RTCP_BYE) =>
                {
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// Drops the session (retina sends TEARDOWN in the background) and waits briefly for the
    /// TEARDOWN attempt, so the server stops sending (over UDP it would otherwise go on until
    /// the session times out).
    pub(super) async fn close(self) {
        let group = Arc::clone(&self.group);
        drop(self);
        let _ = timeout(CLOSE_LIMIT, group.await_teardown()).await;
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
