//! A second reader of the server's byte stream for what rml_rtmp's `ClientSession` does not
//! report in full: status replies with their level and description, `_result`s (to know that
//! `createStream` succeeded and `play` went out), and the Stream EOF user control event.
//!
//! rml_rtmp 0.8.0 reduces an `onStatus` it does not know to its code, an `_error` to
//! `createStream` to a bare error, and drops user control events other than pings. The RTMP
//! spec gives the reply an information object with `level`, `code` and `description`
//! (§7.2.1.1, §7.2.2), and defines Stream EOF (§7.1.7, event 1: "the playback of data is over
//! as requested on this stream"). Media messages are de-chunked but never decoded here.
//!
//! If this reader ever fails to parse, it switches itself off; the session goes on without the
//! extra detail (the publisher's `rtmp::session` has the same reader for its own use).

use std::collections::HashMap;
use std::fmt;

use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;

use crate::rtmp::ServerStatus;

/// What the tap saw.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TapEvent {
    /// An `onStatus` or `_error` reply.
    Status(ServerStatus),
    /// A `_result` to the command with this transaction id.
    Result { transaction_id: f64 },
    /// User control Stream EOF for this message stream id.
    StreamEof { stream_id: Option<u32> },
}

/// The shadow reader.
pub(super) struct StatusReader {
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
    pub(super) fn new() -> Self {
        StatusReader {
            deserializer: Some(ChunkDeserializer::new()),
        }
    }

    /// Feeds bytes received after the handshake; returns what they completed.
    pub(super) fn feed(&mut self, data: &[u8]) -> Vec<TapEvent> {
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
                    // 1 Set Chunk Size, 4 user control, 20 AMF0 command (RTMP spec §5.4, §7.1).
                    if !matches!(payload.type_id, 1 | 4 | 20) {
                        continue;
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
                            "_result" => out.push(TapEvent::Result { transaction_id }),
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
