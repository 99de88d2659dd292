//! A check of the server's chunk stream before rml_rtmp reads it ([`PeerInput`]), used by both
//! the publisher and the player.
//!
//! rml_rtmp 0.8.0 panics on some malformed input instead of returning an error, and its
//! session is unusable after a panic:
//! - Its `ChunkDeserializer` keeps one buffer for the message being reassembled, whatever its
//!   chunk stream. A chunk that starts another message before that one is complete (a new
//!   message header with another length on the same chunk stream, or any chunk of another
//!   chunk stream) makes it compute `message length - bytes so far` (`deserializer.rs:371`),
//!   which underflows: a panic, or a `reserve` of nearly 2^64 bytes ("capacity overflow").
//!   When it does not underflow, two messages are silently mixed. RTMP spec §5.3.1 lets a
//!   sender interleave chunk streams; rml_rtmp cannot reassemble that.
//! - The extended timestamp of a Type 1, 2 or 3 header that starts a message is taken as a
//!   delta above 0xFFFFFF, and a value below that underflows (§5.3.1.3 says the field holds
//!   values of 0xFFFFFF and more).
//! - An AMF0 command with fewer than three values panics (`amf0_command.rs:35`, `drain(..3)`);
//!   §7.1.1 gives every command a name, a transaction id and a command object.
//! - rml_amf0 parses nested objects and arrays by recursion without a limit: nesting deep
//!   enough overflows the stack, which aborts the process (nothing to catch).
//!
//! [`PeerInput`] follows the chunk stream itself (§5.3.1: basic header, message header,
//! extended timestamp, payload split at the peer's chunk size) and reads the payload of the
//! only messages that matter for that or that rml_rtmp decodes in a way that can panic: Set
//! Chunk Size (§5.4.1), commands (§7.1.1) and data messages (§7.1.2). The bytes before the
//! first chunk it refuses go to rml_rtmp, and the refusal then ends the session. Every call into
//! rml_rtmp runs inside [`contain`], so a panic this check did not foresee ends the session
//! with an error too instead of unwinding into the caller.

use std::collections::HashMap;
use std::fmt;

use super::contain::contain;
use crate::rtmp::connect::{ClientConnection, Received, RtmpStartError};

/// What a client receives of the handshake: S0 (1 byte), S1 and S2 (1536 bytes each), RTMP spec
/// §5.2.2–§5.2.4. rml_rtmp's handshake consumes exactly these; chunks follow.
const HANDSHAKE_BYTES: usize = 1 + 1536 + 1536;
/// The chunk size until the peer sets another (§5.4.1).
const INITIAL_CHUNK_SIZE: u32 = 128;
/// The largest chunk size (§5.4.1: 31 bits).
const MAX_CHUNK_SIZE: u32 = 0x7fff_ffff;
/// A timestamp field with this value means an extended timestamp follows (§5.3.1.3).
const EXTENDED: u32 = 0xff_ffff;
/// The deepest nesting of AMF0 objects and arrays let through to rml_amf0 (whose recursion has
/// no limit). Real commands and metadata nest two or three levels.
pub(crate) const MAX_AMF0_DEPTH: usize = 64;

/// The name of an RTMP message type (RTMP spec §5.4 protocol control, §7.1 messages).
pub(crate) fn message_type_name(type_id: u8) -> &'static str {
    match type_id {
        1 => "Set Chunk Size",
        2 => "Abort",
        3 => "Acknowledgement",
        4 => "User Control",
        5 => "Window Acknowledgement Size",
        6 => "Set Peer Bandwidth",
        8 => "audio",
        9 => "video",
        15 => "AMF3 data",
        16 => "AMF3 shared object",
        17 => "AMF3 command",
        18 => "AMF0 data",
        19 => "AMF0 shared object",
        20 => "AMF0 command",
        22 => "aggregate",
        _ => "unknown",
    }
}

/// One chunk's header as the check understood it, to name it in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkInfo {
    /// The chunk type (`fmt`, 0 to 3; §5.3.1.2).
    pub(crate) fmt: u8,
    /// The chunk stream id (§5.3.1.1).
    pub(crate) csid: u32,
    /// The message type id.
    pub(crate) type_id: u8,
    /// The message stream id.
    pub(crate) stream_id: u32,
    /// The message length.
    pub(crate) length: u32,
}

impl fmt::Display for ChunkInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chunk type {} on chunk stream {}, message type {} ({}) on message stream {}, {} bytes",
            self.fmt,
            self.csid,
            self.type_id,
            message_type_name(self.type_id),
            self.stream_id,
            self.length
        )
    }
}

/// Why the server's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// The chunk that was refused (or the last one read, when rml_rtmp panicked).
    pub(crate) chunk: Option<ChunkInfo>,
    /// What is wrong.
    pub(crate) problem: String,
    /// True for chunks that are valid RTMP but that rml_rtmp cannot reassemble.
    pub(crate) unsupported: bool,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.unsupported {
            "the server sent RTMP chunks that rml_rtmp 0.8 cannot reassemble"
        } else {
            "the server sent a malformed RTMP message"
        })?;
        if let Some(chunk) = &self.chunk {
            write!(f, " ({chunk})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl Malformed {
    fn new(chunk: Option<ChunkInfo>, problem: impl Into<String>) -> Self {
        Malformed {
            chunk,
            problem: problem.into(),
            unsupported: false,
        }
    }
}

/// The last header seen on a chunk stream: what Type 1, 2 and 3 headers leave out (§5.3.1.2).
#[derive(Debug, Clone, Copy)]
struct StreamHeader {
    /// The 24-bit timestamp field as sent (0xFFFFFF: an extended timestamp follows, also in
    /// Type 3 chunks, §5.3.1.3).
    timestamp_field: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// The message being reassembled (rml_rtmp can hold one at a time).
#[derive(Debug, Clone, Copy)]
struct Open {
    chunk: ChunkInfo,
    /// Payload bytes still to come.
    remaining: u32,
    /// Whether its payload is kept for [`ChunkCheck::inspect`].
    keep: bool,
}

/// Follows the chunk stream (RTMP spec §5.3.1) the way rml_rtmp 0.8.0 reads it, refusing what
/// would make it panic, recurse without bound, or mix two messages.
#[derive(Debug)]
pub(crate) struct ChunkCheck {
    chunk_size: u32,
    streams: HashMap<u32, StreamHeader>,
    /// Header bytes of the chunk being read, until the header is complete (at most 18).
    header: Vec<u8>,
    /// Payload bytes left in the current chunk, once its header was read.
    chunk_left: Option<u32>,
    open: Option<Open>,
    /// The payload of the open message, when it is one that is inspected.
    payload: Vec<u8>,
    last: Option<ChunkInfo>,
}

impl Default for ChunkCheck {
    fn default() -> Self {
        ChunkCheck {
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: HashMap::new(),
            header: Vec::with_capacity(18),
            chunk_left: None,
            open: None,
            payload: Vec::new(),
            last: None,
        }
    }
}

/// Whether the payload of messages of this type is read: Set Chunk Size, AMF3/AMF0 data and
/// commands (the AMF is decoded by rml_rtmp for every message stream).
fn kept(type_id: u8) -> bool {
    matches!(type_id, 1 | 15 | 17 | 18 | 20)
}

/// The length of a chunk header (basic header §5.3.1.1, message header §5.3.1.2, extended
/// timestamp §5.3.1.3) once enough of it is known, with its chunk type and chunk stream id.
fn header_layout(
    bytes: &[u8],
    streams: &HashMap<u32, StreamHeader>,
) -> Option<(usize, u8, u32, usize)> {
    let first = *bytes.first()?;
    let fmt = first >> 6;
    let (csid, basic) = match first & 0x3f {
        0 => (u32::from(*bytes.get(1)?) + 64, 2),
        1 => (
            u32::from(*bytes.get(2)?) * 256 + u32::from(*bytes.get(1)?) + 64,
            3,
        ),
        id => (u32::from(id), 1),
    };
    let message = match fmt {
        0 => 11,
        1 => 7,
        2 => 3,
        _ => 0,
    };
    let field = if fmt == 3 {
        // Type 3 repeats the last header's timestamp field (an unknown stream is refused once
        // the header is parsed; its length does not matter then).
        streams.get(&csid).map_or(0, |h| h.timestamp_field)
    } else {
        let b = bytes.get(basic..basic + 3)?;
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    };
    let extended = if field == EXTENDED { 4 } else { 0 };
    Some((basic + message + extended, fmt, csid, basic))
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

impl ChunkCheck {
    /// The last chunk header read, if any.
    pub(crate) fn last(&self) -> Option<ChunkInfo> {
        self.last
    }

    /// Reads `data` (any split). On refusal returns how many of its bytes came before the
    /// refused chunk (those may go to rml_rtmp: they do not complete it) and why.
    pub(crate) fn check(&mut self, data: &[u8]) -> Result<(), (usize, Malformed)> {
        let mut at = 0;
        // Where the current chunk began in `data` (0 when it began in an earlier call).
        let mut chunk_start = 0;
        while at < data.len() {
            if let Some(left) = self.chunk_left {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(data.len() - at);
                let open = self.open.as_mut().ok_or_else(|| {
                    (
                        chunk_start,
                        Malformed::new(self.last, "lost track of the message"),
                    )
                })?;
                if open.keep {
                    self.payload.extend_from_slice(&data[at..at + take]);
                }
                at += take;
                let taken = u32::try_from(take).unwrap_or(u32::MAX);
                open.remaining = open.remaining.saturating_sub(taken);
                let left = left.saturating_sub(taken);
                self.chunk_left = Some(left);
                if left == 0 {
                    self.end_chunk().map_err(|m| (chunk_start, m))?;
                }
                continue;
            }
            if self.header.is_empty() {
                chunk_start = at;
            }
            // Read the header: first enough to know its length, then the rest.
            let need = match header_layout(&self.header, &self.streams) {
                Some((len, ..)) => len,
                None => self.header.len() + 1,
            };
            let take = need.saturating_sub(self.header.len()).min(data.len() - at);
            self.header.extend_from_slice(&data[at..at + take]);
            at += take;
            if let Some((len, fmt, csid, basic)) = header_layout(&self.header, &self.streams) {
                if self.header.len() == len {
                    self.start_chunk(fmt, csid, basic)
                        .map_err(|m| (chunk_start, m))?;
                    self.header.clear();
                    if self.chunk_left == Some(0) {
                        self.end_chunk().map_err(|m| (chunk_start, m))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A complete chunk header in `self.header`.
    fn start_chunk(&mut self, fmt: u8, csid: u32, basic: usize) -> Result<(), Malformed> {
        let h = &self.header[basic..];
        let previous = self.streams.get(&csid).copied();
        let Some(previous) = previous.or((fmt == 0).then_some(StreamHeader {
            timestamp_field: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
        })) else {
            let info = ChunkInfo {
                fmt,
                csid,
                type_id: 0,
                stream_id: 0,
                length: 0,
            };
            self.last = Some(info);
            return Err(Malformed::new(
                Some(info),
                format!(
                    "a chunk of type {fmt} needs an earlier message header on chunk stream \
                     {csid} and there is none (RTMP spec §5.3.1.2)"
                ),
            ));
        };
        let mut header = previous;
        if fmt <= 2 {
            header.timestamp_field = u24(&h[0..3]);
        }
        if fmt <= 1 {
            header.length = u24(&h[3..6]);
            header.type_id = h[6];
        }
        if fmt == 0 {
            header.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        let extended = (header.timestamp_field == EXTENDED).then(|| {
            let e = &h[h.len() - 4..];
            u32::from_be_bytes([e[0], e[1], e[2], e[3]])
        });
        let info = ChunkInfo {
            fmt,
            csid,
            type_id: header.type_id,
            stream_id: header.stream_id,
            length: header.length,
        };
        self.last = Some(info);
        self.streams.insert(csid, header);
        let continuation = match &self.open {
            None => false,
            Some(open) if open.chunk.csid != csid => {
                return Err(Malformed {
                    chunk: Some(info),
                    problem: format!(
                        "it started a chunk on chunk stream {csid} while the {}-byte message \
                         on chunk stream {} still had {} bytes to come (RTMP spec §5.3.1 \
                         allows interleaving chunk streams)",
                        open.chunk.length, open.chunk.csid, open.remaining
                    ),
                    unsupported: true,
                });
            }
            // Type 2 and 3 carry no length: rml_rtmp continues the message. A Type 0 or 1
            // header that repeats the message's length, type and stream continues it too;
            // any other starts a new message over the unfinished one.
            Some(open) => {
                let same = header.length == open.chunk.length
                    && header.type_id == open.chunk.type_id
                    && header.stream_id == open.chunk.stream_id;
                if fmt <= 1 && !same {
                    return Err(Malformed::new(
                        Some(info),
                        format!(
                            "a new message header on chunk stream {csid} while its {}-byte \
                             message still had {} bytes to come (continuation chunks are \
                             Type 3, RTMP spec §5.3.1.2.4)",
                            open.chunk.length, open.remaining
                        ),
                    ));
                }
                true
            }
        };
        if !continuation {
            // rml_rtmp adds a Type 1/2/3 extended timestamp to the stream's time as
            // `value - 0xFFFFFF`.
            if let Some(value) = extended.filter(|&v| fmt != 0 && v < EXTENDED) {
                return Err(Malformed::new(
                    Some(info),
                    format!(
                        "an extended timestamp delta of {value}, below 0xFFFFFF (RTMP spec \
                         §5.3.1.3: the field is used for values of 0xFFFFFF and more)"
                    ),
                ));
            }
            self.open = Some(Open {
                chunk: info,
                remaining: header.length,
                keep: kept(header.type_id),
            });
            self.payload.clear();
        }
        let remaining = self.open.as_ref().map_or(0, |o| o.remaining);
        self.chunk_left = Some(remaining.min(self.chunk_size));
        Ok(())
    }

    /// The current chunk's payload is complete.
    fn end_chunk(&mut self) -> Result<(), Malformed> {
        self.chunk_left = None;
        match self.open {
            Some(open) if open.remaining == 0 => {
                self.open = None;
                let payload = std::mem::take(&mut self.payload);
                let result = if open.keep {
                    self.inspect(open.chunk, &payload)
                } else {
                    Ok(())
                };
                // Keep the allocation for the next message.
                self.payload = payload;
                self.payload.clear();
                result
            }
            _ => Ok(()),
        }
    }

    /// A complete message whose payload rml_rtmp decodes.
    fn inspect(&mut self, chunk: ChunkInfo, payload: &[u8]) -> Result<(), Malformed> {
        match chunk.type_id {
            // Set Chunk Size (§5.4.1): 4 bytes, the first bit zero, at least 1.
            1 => {
                let Some(b) = payload.get(..4) else {
                    return Err(Malformed::new(
                        Some(chunk),
                        format!(
                            "a Set Chunk Size message of {} bytes (RTMP spec §5.4.1: 4)",
                            payload.len()
                        ),
                    ));
                };
                let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(Malformed::new(
                        Some(chunk),
                        format!("Set Chunk Size {size} (RTMP spec §5.4.1: 1 to 2147483647)"),
                    ));
                }
                self.chunk_size = size;
                Ok(())
            }
            // Commands (§7.1.1). rml_rtmp reads an AMF3 command (17) as AMF0 after a leading
            // zero byte, when there is one.
            17 | 20 => {
                let body = match payload {
                    [0, rest @ ..] if chunk.type_id == 17 => rest,
                    _ => payload,
                };
                match amf0_values(body) {
                    Ok(n) if n < 3 => Err(Malformed::new(
                        Some(chunk),
                        format!(
                            "a command of {n} AMF0 value{}; a command is a name, a transaction \
                             id and a command object (RTMP spec §7.1.1)",
                            if n == 1 { "" } else { "s" }
                        ),
                    )),
                    Err(Amf0Problem::TooDeep) => Err(too_deep(chunk)),
                    // rml_amf0 refuses it with an error of its own.
                    Ok(_) | Err(Amf0Problem::Invalid) => Ok(()),
                }
            }
            // Data messages (§7.1.2).
            _ => match amf0_values(payload) {
                Err(Amf0Problem::TooDeep) => Err(too_deep(chunk)),
                _ => Ok(()),
            },
        }
    }
}

fn too_deep(chunk: ChunkInfo) -> Malformed {
    Malformed::new(
        Some(chunk),
        format!("AMF0 objects or arrays nested more than {MAX_AMF0_DEPTH} levels deep"),
    )
}

/// Why [`amf0_values`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Amf0Problem {
    /// rml_amf0 would return an error.
    Invalid,
    /// Nested deeper than [`MAX_AMF0_DEPTH`].
    TooDeep,
}

/// How many values rml_amf0 0.3 would decode from `data` at the top level (AMF0 spec §2: it
/// stops at the end of the data or at an object-end marker), reading exactly as it does.
pub(crate) fn amf0_values(data: &[u8]) -> Result<usize, Amf0Problem> {
    let mut reader = Amf0Reader { data, at: 0 };
    let mut n = 0;
    while reader.value(0)? {
        n += 1;
    }
    Ok(n)
}

struct Amf0Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Amf0Reader<'_> {
    fn exact(&mut self, n: usize) -> Result<&[u8], Amf0Problem> {
        let bytes = self
            .data
            .get(self.at..self.at.saturating_add(n))
            .ok_or(Amf0Problem::Invalid)?;
        self.at += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<usize, Amf0Problem> {
        let b = self.exact(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A UTF-8 string body of `len` bytes. rml_amf0 reads what is there and pads the rest with
    /// zeros, so a short string is no error; invalid UTF-8 is.
    fn text(&mut self, len: usize) -> Result<(), Amf0Problem> {
        let end = self.at.saturating_add(len).min(self.data.len());
        let text = &self.data[self.at..end];
        self.at = end;
        std::str::from_utf8(text)
            .map(|_| ())
            .map_err(|_| Amf0Problem::Invalid)
    }

    /// One value; false at the end of the data or at an object-end marker.
    fn value(&mut self, depth: usize) -> Result<bool, Amf0Problem> {
        let Some(&marker) = self.data.get(self.at) else {
            return Ok(false);
        };
        self.at += 1;
        match marker {
            // number, boolean
            0x00 => self.exact(8).map(|_| true),
            0x01 => self.exact(1).map(|_| true),
            // string
            0x02 => {
                let len = self.u16()?;
                self.text(len).map(|_| true)
            }
            // object; ECMA array (a count, then properties like an object)
            0x03 => self.object(depth + 1).map(|_| true),
            0x08 => {
                self.exact(4)?;
                self.object(depth + 1).map(|_| true)
            }
            // null, undefined
            0x05 | 0x06 => Ok(true),
            0x09 => Ok(false),
            // strict array: a count, then up to that many values
            0x0a => {
                let b = self.exact(4)?;
                let count = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if depth + 1 > MAX_AMF0_DEPTH {
                    return Err(Amf0Problem::TooDeep);
                }
                for _ in 0..count {
                    if !self.value(depth + 1)? {
                        break;
                    }
                }
                Ok(true)
            }
            _ => Err(Amf0Problem::Invalid),
        }
    }

    /// Properties until an empty name and the object-end marker.
    fn object(&mut self, depth: usize) -> Result<(), Amf0Problem> {
        if depth > MAX_AMF0_DEPTH {
            return Err(Amf0Problem::TooDeep);
        }
        loop {
            let len = self.u16()?;
            if len == 0 {
                return match self.exact(1)? {
                    [0x09] => Ok(()),
                    _ => Err(Amf0Problem::Invalid),
                };
            }
            self.text(len)?;
            if !self.value(depth)? {
                return Err(Amf0Problem::Invalid);
            }
        }
    }
}

/// What [`PeerInput::receive`] got from rml_rtmp.
#[derive(Debug)]
pub(crate) struct Checked {
    /// What the connection made of the bytes before the first refused chunk.
    pub(crate) received: Received,
    /// The refusal, if a chunk was refused: the session ends with it once `received` was
    /// acted on.
    pub(crate) refused: Option<Malformed>,
}

/// Why [`PeerInput::receive`] returned nothing.
#[derive(Debug, Clone)]
pub(crate) enum InputError {
    /// The handshake or the session's start failed.
    Start(RtmpStartError),
    /// rml_rtmp panicked (or the input was refused before).
    Malformed(Malformed),
}

/// The server's bytes on their way to a [`ClientConnection`]: the handshake as it is, then the
/// chunk stream through [`ChunkCheck`], and every call inside [`contain`].
#[derive(Debug, Default)]
pub(crate) struct PeerInput {
    handshake_seen: usize,
    check: ChunkCheck,
    refused: Option<Malformed>,
}

impl PeerInput {
    /// Feeds `data` (any split) to `conn`. Once a chunk was refused or rml_rtmp panicked, the
    /// connection is not used again: every later call returns that error.
    pub(crate) fn receive(
        &mut self,
        conn: &mut ClientConnection,
        data: &[u8],
    ) -> Result<Checked, InputError> {
        if let Some(m) = &self.refused {
            return Err(InputError::Malformed(m.clone()));
        }
        let handshake = (HANDSHAKE_BYTES - self.handshake_seen).min(data.len());
        self.handshake_seen += handshake;
        let (usable, refused) = match self.check.check(&data[handshake..]) {
            Ok(()) => (data.len(), None),
            Err((before, m)) => (handshake + before, Some(m)),
        };
        self.refused.clone_from(&refused);
        let fed = &data[..usable];
        match contain(|| conn.receive(fed)) {
            Ok(Ok(received)) => Ok(Checked { received, refused }),
            Ok(Err(e)) => Err(InputError::Start(e)),
            Err(panic) => {
                tracing::debug!(panic = %panic, "rml_rtmp panicked reading the server's bytes");
                let m = Malformed::new(
                    self.check.last(),
                    format!("rml_rtmp could not read it (it panicked: {panic})"),
                );
                self.refused = Some(m.clone());
                Err(InputError::Malformed(m))
            }
        }
    }
}
