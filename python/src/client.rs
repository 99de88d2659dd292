//! `MpegClient`: a live RTSP or RTMP stream pulled and decoded in the background; the newest
//! frames as numpy arrays.

use std::time::Duration;

use mpegcoder::{Client, ClientOptions, ClientStatus, PullOptions, StreamParams, Transport};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{
    frame_rate, frames_to_array, mpeg_error, non_negative, pick, positive, serde_to_py, text,
    tls_options,
};
use crate::MpegError;

/// Pulls a live H.264 stream (RTSP or RTMP), decodes it on a thread of its own and keeps the
/// newest cacheSize frames; ExtractFrame hands out the newest readSize of them, oldest first.
#[pyclass(module = "mpegcoder", name = "MpegClient", subclass)]
pub struct PyClient {
    address: Option<String>,
    /// Frames per second kept (decimation), and as the caller gave it.
    dst_fps: Option<(f64, (u32, u32))>,
    read_size: usize,
    cache_size: usize,
    width_dst: Option<u32>,
    height_dst: Option<u32>,
    threads: usize,
    pull: PullOptions,
    /// How long FFmpegSetup waits for the stream's parameters.
    timeout: Duration,
    client: Option<Client>,
    params: Option<StreamParams>,
    frame_count: usize,
    error: Option<String>,
}

impl std::fmt::Debug for PyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::convert::debug_redacted(f, "PyClient", "address", self.address.as_deref())
    }
}

impl PyClient {
    fn options(&self) -> ClientOptions {
        let mut o = ClientOptions::default()
            .with_pull(self.pull.clone())
            .with_cache_size(self.cache_size)
            .with_decoder_threads(self.threads);
        if let Some((fps, _)) = self.dst_fps {
            o = o.with_target_fps(fps);
        }
        if let Some(w) = self.width_dst {
            o = o.with_width(w);
        }
        if let Some(h) = self.height_dst {
            o = o.with_height(h);
        }
        o
    }

    /// A new session: connect and start the pipeline (not waiting for it).
    fn connect(&mut self, py: Python<'_>) -> Result<(), String> {
        let address = self
            .address
            .clone()
            .ok_or("no address: call FFmpegSetup(videoAddress)")?;
        let options = self.options();
        let mut client =
            Client::new(&address, options).map_err(|e| mpegcoder::types::error_chain(&e))?;
        py.detach(|| client.start())
            .map_err(|e| mpegcoder::types::error_chain(&e))?;
        self.client = Some(client);
        Ok(())
    }

    fn client(&self) -> PyResult<&Client> {
        self.client.as_ref().ok_or_else(|| {
            MpegError::new_err(match &self.error {
                Some(e) => format!("the client is not set up ({e})"),
                None => "the client is not set up: call FFmpegSetup(videoAddress) first".into(),
            })
        })
    }

    fn parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("videoAddress", self.address.clone().unwrap_or_default())?;
        d.set_item("readSize", self.read_size)?;
        d.set_item("cacheSize", self.cache_size)?;
        d.set_item("widthDst", self.width_dst.unwrap_or(0))?;
        d.set_item("heightDst", self.height_dst.unwrap_or(0))?;
        d.set_item("nthread", self.threads)?;
        d.set_item("frameCount", self.frame_count)?;
        d.set_item("dstFrameRate", self.dst_fps.map(|(_, r)| r))?;
        d.set_item("transport", self.pull.transport.to_string())?;
        d.set_item("timeout", self.timeout.as_secs_f64())?;
        let params = self
            .params
            .clone()
            .or_else(|| self.client.as_ref()?.params());
        match &params {
            Some(p) => {
                d.set_item("width", p.width)?;
                d.set_item("height", p.height)?;
                d.set_item("coderName", p.codec)?;
                d.set_item("protocol", p.protocol)?;
                d.set_item("srcFrameRate", p.fps)?;
                d.set_item("audioCodec", p.audio.as_ref().map(|a| a.codec))?;
            }
            None => {
                d.set_item("width", 0)?;
                d.set_item("height", 0)?;
                d.set_item("coderName", "")?;
                d.set_item("protocol", "")?;
                d.set_item("srcFrameRate", 0.0)?;
                d.set_item("audioCodec", py.None())?;
            }
        }
        match &self.client {
            Some(c) => {
                let counters = c.counters();
                d.set_item("duration", counters.stream_duration_s)?;
                d.set_item("estFrameNum", counters.frames_delivered)?;
                d.set_item("status", status_name(&c.status()))?;
                d.set_item("counters", serde_to_py(py, &counters)?)?;
            }
            None => {
                d.set_item("duration", 0.0)?;
                d.set_item("estFrameNum", 0)?;
                d.set_item("status", "not set up")?;
                d.set_item("counters", py.None())?;
            }
        }
        Ok(d)
    }
}

fn status_name(status: &ClientStatus) -> &'static str {
    match status {
        ClientStatus::NotStarted => "not started",
        ClientStatus::Connecting => "connecting",
        ClientStatus::Running => "running",
        ClientStatus::Ended => "ended",
        ClientStatus::Stopped => "stopped",
        ClientStatus::Failed(_) => "failed",
        _ => "unknown",
    }
}

#[pymethods]
impl PyClient {
    #[new]
    fn new() -> Self {
        PyClient {
            address: None,
            dst_fps: None,
            read_size: 1,
            cache_size: ClientOptions::default().cache_size(),
            width_dst: None,
            height_dst: None,
            threads: 0,
            pull: PullOptions::default(),
            timeout: Duration::from_secs(10),
            client: None,
            params: None,
            frame_count: 0,
            error: None,
        }
    }

    /// Sets what the next FFmpegSetup / start uses (only the keywords given change):
    /// dstFrameRate ((num, den) or fps: frames are dropped to reach it), readSize (frames
    /// ExtractFrame returns by default), cacheSize (frames kept; at least readSize),
    /// widthDst / heightDst (scaling; one alone keeps the aspect ratio), nthread (decoder
    /// threads; 0 = automatic).
    ///
    /// Beyond mpegCoder: transport ('tcp', 'udp', 'auto'; RTSP), timeout (seconds for every
    /// network step, and for FFmpegSetup to see the stream), caFile / insecure (certificate
    /// checks of rtmps).
    #[pyo3(signature = (*, dstFrameRate=None, readSize=None, cacheSize=None, widthDst=None,
        heightDst=None, nthread=None, transport=None, timeout=None, caFile=None, insecure=None))]
    #[allow(clippy::too_many_arguments)]
    fn setParameter(
        &mut self,
        dstFrameRate: Option<&Bound<'_, PyAny>>,
        readSize: Option<i64>,
        cacheSize: Option<i64>,
        widthDst: Option<i64>,
        heightDst: Option<i64>,
        nthread: Option<i64>,
        transport: Option<&str>,
        timeout: Option<f64>,
        caFile: Option<&Bound<'_, PyAny>>,
        insecure: Option<bool>,
    ) -> PyResult<()> {
        let dst = dstFrameRate
            .map(|r| frame_rate("dstFrameRate", r).map(|q| (q.as_f64(), (q.num, q.den))))
            .transpose()?;
        let read_size = readSize.map(|n| positive("readSize", n)).transpose()?;
        let cache_size = cacheSize.map(|n| positive("cacheSize", n)).transpose()?;
        let (r, c) = (
            read_size.map_or(self.read_size, |n| n as usize),
            cache_size.map_or(self.cache_size, |n| n as usize),
        );
        if r > c {
            return Err(PyValueError::new_err(format!(
                "readSize {r} is larger than cacheSize {c}: the cache keeps the frames read"
            )));
        }
        let width = widthDst.map(|w| non_negative("widthDst", w)).transpose()?;
        let height = heightDst
            .map(|h| non_negative("heightDst", h))
            .transpose()?;
        let threads = nthread.map(|n| non_negative("nthread", n)).transpose()?;
        let transport = transport
            .map(|t| {
                t.parse::<Transport>()
                    .map_err(|e| PyValueError::new_err(format!("transport: {e}")))
            })
            .transpose()?;
        let timeout = timeout
            .map(|t| {
                if t.is_finite() && t > 0.0 {
                    Ok(Duration::from_secs_f64(t))
                } else {
                    Err(PyValueError::new_err(format!(
                        "timeout must be a positive number of seconds, not {t}"
                    )))
                }
            })
            .transpose()?;
        let tls = tls_options(self.pull.tls.clone(), caFile, insecure)?;

        if dst.is_some() {
            self.dst_fps = dst;
        }
        self.read_size = r;
        self.cache_size = c;
        if let Some(w) = width {
            self.width_dst = Some(w).filter(|w| *w > 0);
        }
        if let Some(h) = height {
            self.height_dst = Some(h).filter(|h| *h > 0);
        }
        self.threads = threads.map_or(self.threads, |n| n as usize);
        let mut pull = self.pull.clone().with_tls(tls);
        if let Some(t) = transport {
            pull = pull.with_transport(t);
        }
        if let Some(t) = timeout {
            pull = pull.with_connect_timeout(t).with_setup_timeout(t);
            self.timeout = t;
        }
        self.pull = pull;
        Ok(())
    }

    /// Connects to the stream (or the last one without an argument), starts receiving and
    /// decoding, and waits (up to the timeout) until its parameters are known. Returns False
    /// when that fails; str(client) then says why. Frames are cached from here on.
    #[pyo3(signature = (videoAddress=None))]
    fn FFmpegSetup(
        &mut self,
        py: Python<'_>,
        videoAddress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if let Some(a) = videoAddress {
            self.address = Some(text("videoAddress", a)?);
        }
        self.stop(py);
        self.params = None;
        self.frame_count = 0;
        let timeout = self.timeout;
        let ready = self.connect(py).and_then(|()| {
            let client = self.client.as_ref().ok_or("the client did not start")?;
            py.detach(|| client.wait_ready(timeout))
                .map_err(|e| mpegcoder::types::error_chain(&e))
        });
        match ready {
            Ok(params) => {
                self.params = Some(params);
                self.error = None;
                Ok(true)
            }
            Err(e) => {
                self.stop(py);
                self.error = Some(e);
                Ok(false)
            }
        }
    }

    /// Receives in the background (FFmpegSetup already started it: then nothing to do).
    /// After terminate(), connects again.
    fn start(&mut self, py: Python<'_>) -> PyResult<()> {
        let running = self.client.as_ref().is_some_and(|c| {
            matches!(c.status(), ClientStatus::Connecting | ClientStatus::Running)
        });
        if running {
            return Ok(());
        }
        if self.address.is_none() {
            return Err(MpegError::new_err(
                "the client is not set up: call FFmpegSetup(videoAddress) first",
            ));
        }
        self.stop(py);
        self.connect(py).map_err(MpegError::new_err)
    }

    /// The newest readSize frames (the default of setParameter without an argument), oldest
    /// first, as one (N, H, W, 3) array; None when no frame has arrived yet. Raises
    /// MpegError when the stream failed and every frame received before was taken.
    #[pyo3(signature = (readSize=None))]
    fn ExtractFrame<'py>(
        &mut self,
        py: Python<'py>,
        readSize: Option<i64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let n = match readSize {
            Some(n) => positive("readSize", n)? as usize,
            None => self.read_size,
        };
        let client = self.client()?;
        let frames = client.extract_frames(n);
        if frames.is_empty() {
            if let ClientStatus::Failed(e) = client.status() {
                return Err(mpeg_error(&e));
            }
        }
        self.frame_count = frames.len();
        frames_to_array(py, &frames)
    }

    /// The parameters as a plain, picklable dict, or the one named: videoAddress, width,
    /// height, coderName, protocol, srcFrameRate, audioCodec, dstFrameRate, readSize,
    /// cacheSize, widthDst, heightDst, nthread, transport, timeout, frameCount (frames the
    /// last ExtractFrame returned), duration (seconds of stream received), estFrameNum
    /// (frames decoded and kept so far), status, counters.
    #[pyo3(signature = (paramName=None))]
    fn getParameter<'py>(
        &self,
        py: Python<'py>,
        paramName: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        pick(self.parameters(py)?, paramName)
    }

    /// Stops receiving and ends the session politely; start() connects again.
    fn terminate(&mut self, py: Python<'_>) {
        self.stop(py);
    }

    /// terminate(), and forgets the stream's parameters (the address stays).
    fn clear(&mut self, py: Python<'_>) {
        self.stop(py);
        self.params = None;
        self.frame_count = 0;
        self.error = None;
    }

    fn __str__(&self) -> String {
        let address = self
            .address
            .as_deref()
            .map(mpegcoder::types::redact_url)
            .unwrap_or_default();
        match (&self.client, &self.error) {
            (Some(c), _) => {
                let counters = c.counters();
                let size = self.params.as_ref().map_or_else(String::new, |p| {
                    format!(" {} {}x{} at {:.3} fps,", p.codec, p.width, p.height, p.fps)
                });
                let why = match c.status() {
                    ClientStatus::Failed(e) => format!(": {}", mpegcoder::types::error_chain(&e)),
                    _ => String::new(),
                };
                format!(
                    "MpegClient({address:?}:{size} {}{why}; {} frames decoded, {} kept)",
                    status_name(&c.status()),
                    counters.frames_decoded,
                    counters.frames_delivered
                )
            }
            (None, Some(e)) => format!("MpegClient({address:?}: not set up: {e})"),
            (None, None) => format!("MpegClient({address:?}: not set up)"),
        }
    }

    fn __repr__(&self) -> String {
        self.__str__()
    }
}

impl PyClient {
    fn stop(&mut self, py: Python<'_>) {
        if let Some(mut client) = self.client.take() {
            py.detach(|| {
                client.terminate();
                drop(client);
            });
        }
    }
}
