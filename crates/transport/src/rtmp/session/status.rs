//! A second reader of the server's byte stream for what rml_rtmp's `ClientSession` does not
//! report in full, used by both the publisher and the player.
//!
//! rml_rtmp 0.8.0 reduces status replies to less than a user needs: a rejected `connect` keeps
//! only the description, an `onStatus` it does not know (e.g. `NetStream.Publish.BadName`) only
//! the code, and an `_error` to `createStream` neither; it also drops user control events other
//! than pings. The RTMP spec gives the reply an information object with `level`, `code` and
//! `description` (§7.2.1.1, §7.2.2), and defines Stream EOF (§7.1.7, event 1). So the cores
//! run a second chunk deserializer over the same bytes (a client receives few and small
//! non-media messages) and report status replies, `_result`s and Stream EOF.
//!
//! It also reports the media and data messages of every message stream: rml_rtmp's session
//! passes on only those of the stream `play` created, and some servers send a played stream's
//! media on message stream 0 or another id (ffmpeg plays them). The player takes its media
//! from here.
//!
//! If this reader ever fails to parse, it switches itself off; the session goes on without the
//! extra detail.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::messages::{MessagePayload, RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::StreamMetadata;

/// A status reply from the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerStatus {
    /// The command that carried it (`onStatus` or `_error`).
    pub command: String,
    /// `level`: `status`, `warning` or `error` (rml_rtmp's server writes `_error`).
    pub level: String,
    /// `code`, e.g. `NetStream.Publish.Start`.
    pub code: String,
    /// `description`, free text.
    pub description: String,
}

impl ServerStatus {
    /// True for an `_error` reply or an error-level status.
    pub fn is_error(&self) -> bool {
        self.command == "_error"
            || self.level.eq_ignore_ascii_case("error")
            || self.level.eq_ignore_ascii_case("_error")
    }

    /// The code, or the command name when the server sent no code.
    pub fn code_or_command(&self) -> String {
        if self.code.is_empty() {
            self.command.clone()
        } else {
            self.code.clone()
        }
    }

    /// The refusal this error status means for a session of `url` at `step`.
    pub fn refusal(self, url: String, step: RefusedStep) -> ServerRefusal {
        ServerRefusal {
            url,
            step,
            code: self.code_or_command(),
            description: self.description,
        }
    }
}

/// What a session asked for when the server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusedStep {
    /// `connect` to the application (RTMP spec §7.2.1.1).
    Connect,
    /// `createStream` and `publish` (§7.2.2.6).
    Publish,
    /// `createStream` and `play` (§7.2.2.1).
    Play,
    /// Nothing: the error status came while media flowed.
    Streaming,
}

impl RefusedStep {
    fn phrase(self) -> &'static str {
        match self {
            RefusedStep::Connect => "rejected the connection",
            RefusedStep::Publish => "rejected publishing",
            RefusedStep::Play => "rejected playing",
            RefusedStep::Streaming => "reported an error",
        }
    }
}

/// An RTMP server answered with an error (`_error`, or an `onStatus` of level `error`): its
/// code and description as it sent them, e.g. `NetStream.Publish.BadName`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url} {}: {code}: {description}", step.phrase())]
pub struct ServerRefusal {
    /// The URL, credentials removed.
    pub url: String,
    /// What the session asked for.
    pub step: RefusedStep,
    /// The server's status code (or the command name when it sent none).
    pub code: String,
    /// The server's description (empty if it sent none).
    pub description: String,
}

/// What the tap saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TapEvent {
    /// An `onStatus` or `_error` reply.
    Status(ServerStatus),
    /// A `_result` to the command with this transaction id; `stream_id` is its first
    /// additional value when that is a number (the stream `createStream` created, §7.2.1.3).
    Result {
        transaction_id: f64,
        stream_id: Option<u32>,
    },
    /// User control Stream EOF for this message stream id.
    StreamEof { stream_id: Option<u32> },
    /// An audio (8, RTMP spec §7.1.4) or video (9, §7.1.5) message, on any message stream.
    Media {
        video: bool,
        stream_id: u32,
        timestamp: u32,
        data: Bytes,
    },
    /// An `onMetaData` data message (§7.1.2; also in the `@setDataFrame` form).
    Metadata {
        stream_id: u32,
        metadata: StreamMetadata,
    },
    /// Another data message: its first value when that is a string (e.g. `|RtmpSampleAccess`).
    Data {
        stream_id: u32,
        name: Option<String>,
    },
    /// A message of a type no session reads: shared objects (§7.1.3), aggregates (§7.1.6),
    /// unknown types.
    Other { type_id: u8, stream_id: u32 },
}

/// The shadow reader, shared by the publisher and the player.
pub(crate) struct StatusReader {
    deserializer: Option<ChunkDeserializer>,
}

impl fmt::Debug for StatusReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusReader")
            .field("active", &self.deserializer.is_some())
            .finish()
    }
}

impl StatusReader {
    pub(crate) fn new() -> Self {
        StatusReader {
            deserializer: Some(ChunkDeserializer::new()),
        }
    }

    /// Feeds bytes received after the handshake; returns what they completed.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<TapEvent> {
        let mut out = Vec::new();
        let Some(deserializer) = self.deserializer.as_mut() else {
            return out;
        };
        let mut input = data;
        let mut failed = false;
        loop {
            match deserializer.get_next_message(input) {
                Ok(Some(payload)) => {
                    input = &[];
                    // 1 Set Chunk Size, 4 user control, 17/20 AMF3/AMF0 command (RTMP spec §5.4,
                    // §7.1) are decoded; media and data messages are passed on; the other
                    // protocol control messages (2, 3, 5, 6) are the session's.
                    match payload.type_id {
                        1 | 4 | 17 | 20 => {}
                        8 | 9 => {
                            out.push(TapEvent::Media {
                                video: payload.type_id == 9,
                                stream_id: payload.message_stream_id,
                                timestamp: payload.timestamp.value,
                                data: payload.data,
                            });
                            continue;
                        }
                        15 | 18 => {
                            out.push(data_event(&payload));
                            continue;
                        }
                        2 | 3 | 5 | 6 => continue,
                        type_id => {
                            out.push(TapEvent::Other {
                                type_id,
                                stream_id: payload.message_stream_id,
                            });
                            continue;
                        }
                    }
                    match payload.to_rtmp_message() {
                        Ok(RtmpMessage::SetChunkSize { size }) => {
                            // RTMP spec §5.4.1: the peer's chunk size applies to what it sends.
                            let size = usize::try_from(size).unwrap_or(usize::MAX);
                            if deserializer.set_max_chunk_size(size).is_err() {
                                failed = true;
                                break;
                            }
                        }
                        Ok(RtmpMessage::UserControl {
                            event_type: UserControlEventType::StreamEof,
                            stream_id,
                            ..
                        }) => out.push(TapEvent::StreamEof { stream_id }),
                        Ok(RtmpMessage::Amf0Command {
                            command_name,
                            transaction_id,
                            command_object,
                            additional_arguments,
                        }) => match command_name.as_str() {
                            "_result" => out.push(TapEvent::Result {
                                transaction_id,
                                stream_id: match additional_arguments.first() {
                                    // Saturating: any number names some stream.
                                    Some(Amf0Value::Number(n)) => Some(*n as u32),
                                    _ => None,
                                },
                            }),
                            "_error" | "onStatus" => out.push(TapEvent::Status(status_from(
                                command_name,
                                command_object,
                                additional_arguments,
                            ))),
                            _ => {}
                        },
                        Ok(_) => {}
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            self.deserializer = None;
        }
        out
    }
}

/// What a data message (AMF0 18, or AMF3 15 read as AMF0 as rml_rtmp does) is.
fn data_event(payload: &MessagePayload) -> TapEvent {
    let stream_id = payload.message_stream_id;
    let values = match payload.to_rtmp_message() {
        Ok(RtmpMessage::Amf0Data { values }) => values,
        _ => {
            return TapEvent::Data {
                stream_id,
                name: None,
            }
        }
    };
    let mut values = values.into_iter().peekable();
    // A relayed publisher's `@setDataFrame onMetaData {…}` (FLV spec E.5 onMetaData).
    if matches!(values.peek(), Some(Amf0Value::Utf8String(s)) if s == "@setDataFrame") {
        values.next();
    }
    let name = match values.next() {
        Some(Amf0Value::Utf8String(s)) => s,
        _ => {
            return TapEvent::Data {
                stream_id,
                name: None,
            }
        }
    };
    match values.next() {
        Some(Amf0Value::Object(properties)) if name == "onMetaData" => {
            let mut metadata = StreamMetadata::new();
            metadata.apply_metadata_values(properties);
            TapEvent::Metadata {
                stream_id,
                metadata,
            }
        }
        _ => TapEvent::Data {
            stream_id,
            name: Some(name),
        },
    }
}

fn status_from(command: String, object: Amf0Value, args: Vec<Amf0Value>) -> ServerStatus {
    let mut status = ServerStatus {
        command,
        ..ServerStatus::default()
    };
    // The info object is normally the first additional argument; some servers put it in the
    // command object instead.
    let info = args
        .into_iter()
        .chain(std::iter::once(object))
        .find_map(|v| match v {
            Amf0Value::Object(props) if props.contains_key("code") => Some(props),
            _ => None,
        });
    if let Some(mut props) = info {
        status.level = take_string(&mut props, "level");
        status.code = take_string(&mut props, "code");
        status.description = take_string(&mut props, "description");
    }
    status
}

fn take_string(props: &mut HashMap<String, Amf0Value>, key: &str) -> String {
    match props.remove(key) {
        Some(Amf0Value::Utf8String(s)) => s,
        _ => String::new(),
    }
}
