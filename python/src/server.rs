//! `MpegServer`: frames from Python encoded with libx264, paced and published over RTSP or
//! RTMP (and whole files pushed with `ServeVideo`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mpegcoder::codec::{EncoderConfig, Rational, X264Option};
use mpegcoder::push::AudioMode;
use mpegcoder::{
    push, FrameRef, PushOptions, ReconnectPolicy, Server, ServerConfig, ServerStats, TlsOptions,
    Transport, VideoCodec,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{
    frame_from_array, frame_rate, mpeg_error, non_negative, pick, positive, serde_to_py, text,
    tls_options, type_name, Exclusive,
};
use crate::decoder::PyDecoder;
use crate::MpegError;

/// What a stream is: inherited from a decoder (`configDict` / `decoder=`) or set by the
/// caller; the caller's value wins.
#[derive(Debug, Clone, Default)]
struct Params {
    width: Option<u32>,
    height: Option<u32>,
    width_src: Option<u32>,
    height_src: Option<u32>,
    frame_rate: Option<Rational>,
    /// kb/s.
    bit_rate: Option<f64>,
    gop_size: Option<u32>,
    max_b_frames: Option<u32>,
    video_path: Option<String>,
}

impl Params {
    fn or(&self, base: &Params) -> Params {
        Params {
            width: self.width.or(base.width),
            height: self.height.or(base.height),
            width_src: self.width_src.or(base.width_src),
            height_src: self.height_src.or(base.height_src),
            frame_rate: self.frame_rate.or(base.frame_rate),
            bit_rate: self.bit_rate.or(base.bit_rate),
            gop_size: self.gop_size.or(base.gop_size),
            max_b_frames: self.max_b_frames.or(base.max_b_frames),
            video_path: self.video_path.clone().or_else(|| base.video_path.clone()),
        }
    }

    /// The parameters of a decoder's `getParameter()` dict: its frames' size is both the
    /// size of what will be served and the encoded size.
    fn from_config_dict(d: &Bound<'_, PyDict>) -> PyResult<Params> {
        let int = |key: &str| -> PyResult<Option<u32>> {
            match d.get_item(key)? {
                Some(v) if !v.is_none() => {
                    let v: i64 = v.extract().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "configDict[{key:?}] must be an int, not {}",
                            type_name(&v)
                        ))
                    })?;
                    Ok(Some(non_negative(&format!("configDict[{key:?}]"), v)?).filter(|v| *v > 0))
                }
                _ => Ok(None),
            }
        };
        let width = int("width")?;
        let height = int("height")?;
        let frame_rate = match d.get_item("frameRate")? {
            // (0, 1): the decoder did not know it.
            Some(v) if !v.is_none() => frame_rate("configDict['frameRate']", &v).ok(),
            _ => None,
        }
        .or(match d.get_item("avgFrameRate")? {
            Some(v) => v
                .extract::<f64>()
                .ok()
                .and_then(Rational::from_f64_thousandths)
                .filter(|r| r.num > 0),
            None => None,
        });
        let bit_rate = match d.get_item("bitRate")? {
            Some(v) if !v.is_none() => Some(v.extract::<f64>().map_err(|_| {
                PyTypeError::new_err("configDict['bitRate'] must be a number (kb/s)")
            })?)
            .filter(|b| *b > 0.0),
            _ => None,
        };
        let video_path = match d.get_item("videoPath")? {
            Some(v) if !v.is_none() => {
                Some(text("configDict['videoPath']", &v)?).filter(|p| !p.is_empty())
            }
            _ => None,
        };
        Ok(Params {
            width,
            height,
            width_src: width,
            height_src: height,
            frame_rate,
            bit_rate,
            gop_size: int("GOPSize")?,
            max_b_frames: match d.get_item("maxBframe")? {
                Some(v) if !v.is_none() => {
                    Some(non_negative("configDict['maxBframe']", v.extract()?)?)
                }
                _ => None,
            },
            video_path,
        })
    }
}

/// Encodes RGB frames with libx264, paces them by their timestamps and publishes them to an
/// RTSP (ANNOUNCE/RECORD) or RTMP (publish) server.
///
/// Bit rates are in kb/s (1 kb/s = 1000 bit/s) in setParameter and getParameter.
#[pyclass(module = "mpegcoder", name = "MpegServer", subclass)]
pub struct PyServer {
    inherited: Params,
    set: Params,
    address: Option<String>,
    codec: VideoCodec,
    threads: usize,
    frame_ahead: Option<u32>,
    transport: Transport,
    extra_addresses: Vec<String>,
    reconnect: Option<ReconnectPolicy>,
    tls: TlsOptions,
    audio: AudioMode,
    preset: Option<String>,
    tune: Option<String>,
    profile: Option<String>,
    pace: bool,
    rate: f64,
    server: Exclusive<Option<Server>>,
    frames_served: u64,
    stats: Option<ServerStats>,
    error: Option<String>,
}

impl std::fmt::Debug for PyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::convert::debug_redacted(f, "PyServer", "address", self.address.as_deref())
    }
}

impl PyServer {
    fn params(&self) -> Params {
        self.set.or(&self.inherited)
    }

    /// The size of the frames given to ServeFrame.
    fn source_size(p: &Params) -> Option<(u32, u32)> {
        Some((p.width_src.or(p.width)?, p.height_src.or(p.height)?))
    }

    fn encoder_config(&self) -> Result<EncoderConfig, String> {
        let p = self.params();
        let (sw, sh) = Self::source_size(&p)
            .ok_or("no frame size: set width and height (or configDict=decoder.getParameter())")?;
        let (w, h) = (p.width.unwrap_or(sw), p.height.unwrap_or(sh));
        let rate = p
            .frame_rate
            .ok_or("no frame rate: set frameRate (or configDict=decoder.getParameter())")?;
        let mut c = EncoderConfig::new(w, h, rate).with_source_size(sw, sh);
        c.bit_rate = p.bit_rate.map_or(0, kbps_to_bps);
        if let Some(g) = p.gop_size {
            c.gop_size = g;
        }
        c.max_b_frames = p.max_b_frames.unwrap_or(0).min(16);
        if let Some(preset) = &self.preset {
            c.preset = preset.clone();
        }
        c.tune = self.tune.clone();
        c.profile = self.profile.clone();
        c.threads = self.threads;
        Ok(c)
    }

    fn server_config(&self) -> Result<ServerConfig, String> {
        let address = self
            .address
            .clone()
            .ok_or("no address: setParameter(videoAddress='rtsp://…' or 'rtmp://…')")?;
        if self.codec == VideoCodec::Copy {
            return Err(
                "codecName='copy' passes a file's own H.264 through: call ServeVideo() \
                        (ServeFrame encodes frames with libx264)"
                    .into(),
            );
        }
        let encoder = self.encoder_config()?;
        let fps = encoder.frame_rate.as_f64();
        let mut config = ServerConfig::encode(encoder, address)
            .with_transport(self.transport)
            .with_pace(self.pace)
            .with_rate(self.rate)
            .with_extra_addresses(self.extra_addresses.clone())
            .with_reconnect(self.reconnect)
            .with_tls(self.tls.clone());
        if let Some(n) = self.frame_ahead {
            config = config.with_max_lead(Duration::from_secs_f64(f64::from(n) / fps));
        }
        Ok(config)
    }

    fn push_options(&self, input: String) -> Result<PushOptions, String> {
        let address = self
            .address
            .clone()
            .ok_or("no address: setParameter(videoAddress='rtsp://…' or 'rtmp://…')")?;
        let mut o = PushOptions::new(input, address)
            .with_codec(self.codec)
            .with_transport(self.transport)
            .with_reconnect(self.reconnect)
            .with_tls(self.tls.clone());
        o.extra_addresses = self.extra_addresses.clone();
        // What the caller set; the rest the push reads from the file itself.
        let s = &self.set;
        o.bit_rate = s.bit_rate.map(kbps_to_bps);
        o.gop_size = s.gop_size;
        o.max_b_frames = s.max_b_frames;
        o.size = s.width.zip(s.height);
        o.frame_rate = s.frame_rate;
        o.preset = self.preset.clone();
        o.tune = self.tune.clone();
        o.profile = self.profile.clone();
        o.pace = self.pace;
        o.rate = self.rate;
        o.audio = self.audio;
        o.decoder_threads = self.threads;
        Ok(o)
    }

    fn server(&mut self) -> PyResult<&mut Server> {
        let error = self.error.clone();
        self.server.get().as_mut().ok_or_else(|| {
            MpegError::new_err(match error {
                Some(e) => format!("the server is not set up ({e})"),
                None => "the server is not set up: call FFmpegSetup() first".into(),
            })
        })
    }

    fn serve(&mut self, py: Python<'_>, frame: &Bound<'_, PyAny>, block: bool) -> PyResult<bool> {
        let p = self.params();
        let server = self.server()?;
        let (w, h) = Self::source_size(&p).unwrap_or((0, 0));
        let data = frame_from_array(frame, w, h)?;
        py.detach(|| {
            let frame = FrameRef::Rgb24(&data);
            if block {
                server.serve_frame_block(frame)
            } else {
                server.serve_frame(frame)
            }
        })
        .map_err(|e| mpeg_error(&e))?;
        self.frames_served += 1;
        Ok(true)
    }

    fn parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.params();
        let d = PyDict::new(py);
        let (sw, sh) = Self::source_size(&p).unwrap_or((0, 0));
        let rate = p.frame_rate.unwrap_or(Rational::new(0, 1));
        d.set_item("videoAddress", self.address.clone().unwrap_or_default())?;
        d.set_item("codecName", codec_name(self.codec))?;
        let format = match self.address.as_deref() {
            Some(a) if a.starts_with("rtmp") => "flv",
            Some(a) if a.starts_with("rtsp") => "rtsp",
            _ => "",
        };
        d.set_item("formatName", format)?;
        d.set_item("nthread", self.threads)?;
        d.set_item("bitRate", p.bit_rate.unwrap_or(0.0))?;
        d.set_item("width", p.width.unwrap_or(sw))?;
        d.set_item("height", p.height.unwrap_or(sh))?;
        d.set_item("widthSrc", sw)?;
        d.set_item("heightSrc", sh)?;
        d.set_item("GOPSize", p.gop_size.unwrap_or(0))?;
        d.set_item("maxBframe", p.max_b_frames.unwrap_or(0))?;
        d.set_item("frameRate", (rate.num, rate.den))?;
        d.set_item("frameAhead", self.frame_ahead.unwrap_or(0))?;
        d.set_item("videoPath", p.video_path.clone().unwrap_or_default())?;
        d.set_item("transport", self.transport.to_string())?;
        d.set_item("frameCount", self.frames_served)?;
        let wait = self
            .server
            .with(|s| s.as_ref().map_or(0.0, |s| s.wait_ref().as_secs_f64()));
        d.set_item("waitRef", wait)?;
        // The lead (twice waitRef) in ticks of the frame rate's time base (1 / fps).
        d.set_item("ptsAhead", (2.0 * wait * rate.as_f64()).round() as i64)?;
        let stats = self.server.with(|s| match s {
            Some(s) => Some(s.stats()),
            None => self.stats.clone(),
        });
        match stats {
            Some(s) => d.set_item("stats", serde_to_py(py, &s)?)?,
            None => d.set_item("stats", py.None())?,
        }
        Ok(d)
    }
}

fn kbps_to_bps(kbps: f64) -> u64 {
    (kbps * 1000.0).round() as u64
}

fn codec_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Libx264 => "libx264",
        VideoCodec::Copy => "copy",
    }
}

#[pymethods]
impl PyServer {
    #[new]
    fn new() -> Self {
        PyServer {
            inherited: Params::default(),
            set: Params::default(),
            address: None,
            codec: VideoCodec::Libx264,
            threads: 0,
            frame_ahead: None,
            transport: Transport::Tcp,
            extra_addresses: Vec::new(),
            reconnect: None,
            tls: TlsOptions::default(),
            audio: AudioMode::Auto,
            preset: None,
            tune: None,
            profile: None,
            pace: true,
            rate: 1.0,
            server: Exclusive::new(None),
            frames_served: 0,
            stats: None,
            error: None,
        }
    }

    /// Sets what FFmpegSetup opens (only the keywords given change):
    ///
    /// configDict / decoder: inherit size, frame rate, bit rate, GOP size, max B-frames and
    /// the video path from MpegDecoder.getParameter() (or the decoder itself). videoAddress:
    /// rtsp[s]://host[:port]/path or rtmp[s]://host[:port]/app/key. codecName: libx264, or
    /// copy (ServeVideo only). bitRate in kb/s; width / height: encoded size; widthSrc /
    /// heightSrc: size of the frames served (scaled to width x height); frameRate: (num, den)
    /// or fps; frameAhead: how many frames ServeFrameBlock lets the stream lead the clock.
    ///
    /// Beyond mpegCoder: transport ('tcp', 'udp', 'auto'), extraAddresses (more destinations
    /// fed by the same encode), reconnect (True: forever; n: attempts per outage), caFile /
    /// insecure (certificate checks of rtsps/rtmps), audio ('auto', 'copy', 'none' or a
    /// bool: ServeVideo), preset / tune / profile (libx264), pace, rate (playback speed),
    /// videoPath (the file ServeVideo pushes).
    #[pyo3(signature = (*, decoder=None, configDict=None, videoAddress=None, codecName=None,
        nthread=None, bitRate=None, GOPSize=None, maxBframe=None, frameRate=None, width=None,
        height=None, widthSrc=None, heightSrc=None, frameAhead=None, videoPath=None,
        transport=None, extraAddresses=None, reconnect=None, caFile=None, insecure=None,
        audio=None, preset=None, tune=None, profile=None, pace=None, rate=None))]
    #[allow(clippy::too_many_arguments)]
    fn setParameter(
        &mut self,
        py: Python<'_>,
        decoder: Option<PyRef<'_, PyDecoder>>,
        configDict: Option<&Bound<'_, PyAny>>,
        videoAddress: Option<&Bound<'_, PyAny>>,
        codecName: Option<&Bound<'_, PyAny>>,
        nthread: Option<i64>,
        bitRate: Option<f64>,
        GOPSize: Option<i64>,
        maxBframe: Option<i64>,
        frameRate: Option<&Bound<'_, PyAny>>,
        width: Option<i64>,
        height: Option<i64>,
        widthSrc: Option<i64>,
        heightSrc: Option<i64>,
        frameAhead: Option<i64>,
        videoPath: Option<&Bound<'_, PyAny>>,
        transport: Option<&str>,
        extraAddresses: Option<Vec<String>>,
        reconnect: Option<&Bound<'_, PyAny>>,
        caFile: Option<&Bound<'_, PyAny>>,
        insecure: Option<bool>,
        audio: Option<&Bound<'_, PyAny>>,
        preset: Option<&str>,
        tune: Option<&str>,
        profile: Option<&str>,
        pace: Option<bool>,
        rate: Option<f64>,
    ) -> PyResult<()> {
        // Everything is checked before anything changes.
        let inherited = match (&decoder, configDict) {
            (Some(d), _) => Some(Params::from_config_dict(&d.parameters(py)?)?),
            (None, Some(c)) => {
                let dict = c.cast::<PyDict>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "configDict must be a dict (from MpegDecoder.getParameter()), not {}",
                        type_name(c)
                    ))
                })?;
                Some(Params::from_config_dict(dict)?)
            }
            (None, None) => None,
        };
        let address = videoAddress.map(|a| text("videoAddress", a)).transpose()?;
        let codec = codecName
            .map(|c| {
                text("codecName", c)?
                    .parse::<VideoCodec>()
                    .map_err(|e| PyValueError::new_err(format!("codecName: {e}")))
            })
            .transpose()?;
        let transport = transport
            .map(|t| {
                t.parse::<Transport>()
                    .map_err(|e| PyValueError::new_err(format!("transport: {e}")))
            })
            .transpose()?;
        let reconnect = reconnect.map(reconnect_policy).transpose()?;
        let audio = audio.map(audio_mode).transpose()?;
        for (option, value) in [
            (X264Option::Preset, preset),
            (X264Option::Tune, tune),
            (X264Option::Profile, profile),
        ] {
            if let Some(v) = value {
                option.check(v).map_err(|why| {
                    PyValueError::new_err(format!("invalid {} {v:?}: {why}", option.name()))
                })?;
            }
        }
        if let Some(b) = bitRate {
            if !(b.is_finite() && b >= 0.0) {
                return Err(PyValueError::new_err(format!(
                    "bitRate must be kb/s, 0 or more, not {b}"
                )));
            }
        }
        if let Some(r) = rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(PyValueError::new_err(format!(
                    "rate must be a positive speed (1.0 = real time), not {r}"
                )));
            }
        }
        let frame_rate = frameRate.map(|r| frame_rate("frameRate", r)).transpose()?;
        let size = |name: &str, v: Option<i64>| v.map(|v| positive(name, v)).transpose();
        let (width, height) = (size("width", width)?, size("height", height)?);
        let (width_src, height_src) = (size("widthSrc", widthSrc)?, size("heightSrc", heightSrc)?);
        let gop = GOPSize.map(|g| positive("GOPSize", g)).transpose()?;
        let max_b = maxBframe
            .map(|b| non_negative("maxBframe", b))
            .transpose()?;
        let threads = nthread.map(|n| non_negative("nthread", n)).transpose()?;
        let frame_ahead = frameAhead.map(|n| positive("frameAhead", n)).transpose()?;
        let video_path = videoPath.map(|p| text("videoPath", p)).transpose()?;
        let tls = tls_options(self.tls.clone(), caFile, insecure)?;

        if let Some(p) = inherited {
            self.inherited = p;
        }
        let s = &mut self.set;
        s.width = width.or(s.width);
        s.height = height.or(s.height);
        s.width_src = width_src.or(s.width_src);
        s.height_src = height_src.or(s.height_src);
        s.frame_rate = frame_rate.or(s.frame_rate);
        s.bit_rate = bitRate.or(s.bit_rate);
        s.gop_size = gop.or(s.gop_size);
        s.max_b_frames = max_b.or(s.max_b_frames);
        s.video_path = video_path.or(s.video_path.take());
        self.address = address.or(self.address.take());
        self.codec = codec.unwrap_or(self.codec);
        self.threads = threads.map_or(self.threads, |t| t as usize);
        self.frame_ahead = frame_ahead.or(self.frame_ahead);
        self.transport = transport.unwrap_or(self.transport);
        if let Some(extra) = extraAddresses {
            self.extra_addresses = extra;
        }
        if let Some(r) = reconnect {
            self.reconnect = r;
        }
        self.tls = tls;
        self.audio = audio.unwrap_or(self.audio);
        if preset.is_some() {
            self.preset = preset.map(str::to_owned);
        }
        if tune.is_some() {
            self.tune = tune.map(str::to_owned);
        }
        if profile.is_some() {
            self.profile = profile.map(str::to_owned);
        }
        self.pace = pace.unwrap_or(self.pace);
        self.rate = rate.unwrap_or(self.rate);
        Ok(())
    }

    /// The parameters as a plain, picklable dict, or the one named: videoAddress,
    /// codecName, formatName, nthread, bitRate (kb/s), width, height, widthSrc, heightSrc,
    /// GOPSize, maxBframe, frameRate, frameAhead, videoPath, transport, frameCount (frames
    /// served), waitRef (seconds a caller of ServeFrame should sleep: half the lead over the
    /// playing time), ptsAhead (the lead in frames), stats (what was sent and what the
    /// server reported; None before FFmpegSetup).
    #[pyo3(signature = (paramName=None))]
    fn getParameter<'py>(
        &self,
        py: Python<'py>,
        paramName: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        pick(self.parameters(py)?, paramName)
    }

    /// Starts the encoder, connects and announces (RTSP) or publishes (RTMP); the start
    /// time is marked at the first frame sent. Returns False when that fails; str(server)
    /// then says why.
    fn FFmpegSetup(&mut self, py: Python<'_>) -> PyResult<bool> {
        *self.server.get() = None;
        self.frames_served = 0;
        self.stats = None;
        let opened = self.server_config().and_then(|config| {
            py.detach(|| Server::open(config))
                .map_err(|e| mpegcoder::types::error_chain(&e))
        });
        match opened {
            Ok(server) => {
                *self.server.get() = Some(server);
                self.error = None;
                Ok(true)
            }
            Err(e) => {
                self.error = Some(e);
                Ok(false)
            }
        }
    }

    /// Encodes an RGB frame (H, W, 3) and sends what the encoder outputs at once, however far
    /// ahead of the playing time it is; sleep getParameter('waitRef') now and then.
    fn ServeFrame(&mut self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.serve(py, frame, false)
    }

    /// Encodes an RGB frame (H, W, 3) and sends what the encoder outputs when it is due
    /// (waits, with the GIL released, while the stream is ahead of the playing time).
    fn ServeFrameBlock(&mut self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.serve(py, frame, true)
    }

    /// Pushes a whole file (videoPath, or the configDict's) with these settings, paced,
    /// like `mpegcoder push`: libx264 or codec copy, its audio passed through, every
    /// destination. Returns the summary as a dict. Ctrl-C stops it cleanly (the stream is
    /// ended, then KeyboardInterrupt is raised).
    #[pyo3(signature = (videoPath=None))]
    fn ServeVideo<'py>(
        &mut self,
        py: Python<'py>,
        videoPath: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = match videoPath {
            Some(p) => text("videoPath", p)?,
            None => self.params().video_path.ok_or_else(|| {
                MpegError::new_err("no video to serve: ServeVideo(videoPath), or setParameter(videoPath=…) or configDict from a decoder")
            })?,
        };
        let options = self.push_options(input).map_err(MpegError::new_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        // Behind a mutex so that the wait below can run with the GIL released.
        let rx = std::sync::Mutex::new(rx);
        let worker = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("mpegcoder-push".into())
                .spawn(move || {
                    let _ = tx.send(push(&options, &stop, |_| {}));
                })
                .map_err(|e| MpegError::new_err(format!("cannot start the push thread: {e}")))?
        };
        let mut interrupted = None;
        let result = loop {
            match py.detach(|| match rx.lock() {
                Ok(rx) => rx.recv_timeout(Duration::from_millis(100)),
                Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
            }) {
                Ok(result) => break result,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if interrupted.is_none() {
                        if let Err(e) = py.check_signals() {
                            stop.store(true, Ordering::Relaxed);
                            interrupted = Some(e);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(mpegcoder::PushError::Reader(Arc::new(
                        std::io::Error::other("the push thread ended without a result"),
                    )));
                }
            }
        };
        let _ = py.detach(|| worker.join());
        if let Some(e) = interrupted {
            return Err(e);
        }
        match result {
            Ok(summary) => {
                self.stats = Some(summary.stats.clone());
                self.frames_served = summary.stats.frames_sent;
                serde_to_py(py, &summary)
            }
            Err(e) => {
                if let Some(s) = e.summary() {
                    self.stats = Some(s.stats.clone());
                }
                Err(mpeg_error(&e))
            }
        }
    }

    /// Flushes the frames libx264 still holds (paced like the others), ends the stream
    /// (TEARDOWN / unpublish) and waits for the server to confirm. Nothing to do before
    /// FFmpegSetup.
    fn FFmpegClose(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(server) = self.server.get().take() else {
            return Ok(());
        };
        let stats = py.detach(|| server.close()).map_err(|e| mpeg_error(&e))?;
        self.stats = Some(stats);
        Ok(())
    }

    /// Drops the session (without flushing) and forgets every parameter.
    fn clear(&mut self) {
        *self = PyServer::new();
    }

    fn __str__(&self) -> String {
        let address = self
            .address
            .as_deref()
            .map(mpegcoder::types::redact_url)
            .unwrap_or_default();
        let p = self.params();
        let (sw, sh) = Self::source_size(&p).unwrap_or((0, 0));
        let rate = p.frame_rate.map_or_else(|| "?".into(), |r| r.to_string());
        let what = format!(
            "{} {}x{} at {rate} fps to {address:?}",
            codec_name(self.codec),
            p.width.unwrap_or(sw),
            p.height.unwrap_or(sh)
        );
        self.server.with(|server| match (server, &self.error) {
            (Some(s), _) => {
                let st = s.stats();
                format!(
                    "MpegServer({what}: serving, {} frames served, {} sent, waitRef {:.3} s)",
                    self.frames_served,
                    st.frames_sent,
                    s.wait_ref().as_secs_f64()
                )
            }
            (None, Some(e)) => format!("MpegServer({what}: not set up: {e})"),
            (None, None) => match &self.stats {
                Some(st) => format!("MpegServer({what}: closed, {} frames sent)", st.frames_sent),
                None => format!("MpegServer({what}: not set up)"),
            },
        })
    }

    fn __repr__(&self) -> String {
        self.__str__()
    }
}

fn reconnect_policy(value: &Bound<'_, PyAny>) -> PyResult<Option<ReconnectPolicy>> {
    if let Ok(b) = value.extract::<bool>() {
        return Ok(b.then(ReconnectPolicy::forever));
    }
    if let Ok(n) = value.extract::<i64>() {
        return Ok(match non_negative("reconnect", n)? {
            0 => None,
            n => Some(ReconnectPolicy::attempts(n)),
        });
    }
    Err(PyTypeError::new_err(format!(
        "reconnect must be True/False or a number of attempts, not {}",
        type_name(value)
    )))
}

fn audio_mode(value: &Bound<'_, PyAny>) -> PyResult<AudioMode> {
    if let Ok(b) = value.extract::<bool>() {
        return Ok(if b { AudioMode::Copy } else { AudioMode::None });
    }
    match text("audio", value)?.to_ascii_lowercase().as_str() {
        "auto" => Ok(AudioMode::Auto),
        "copy" => Ok(AudioMode::Copy),
        "none" | "off" => Ok(AudioMode::None),
        other => Err(PyValueError::new_err(format!(
            "audio {other:?}: expected 'auto', 'copy', 'none' or a bool"
        ))),
    }
}
