//! `MpegDecoder`: frames of a video file (or stream) as numpy arrays.

use std::path::Path;

use mpegcoder::codec::{CodecError, Decoder, DecoderOptions, Frame, Position};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{frames_to_array, mpeg_error, non_negative, pick, text, type_name, Exclusive};
use crate::MpegError;

/// Decodes a video with FFmpeg into RGB frames: numpy uint8 arrays of shape (N, H, W, 3).
///
/// Call setParameter() (optional) and FFmpegSetup(path), then ExtractGOP() in a loop, or
/// ExtractFrame(framePos, frameNum) anywhere. getParameter() gives a plain dict that
/// MpegServer.setParameter(configDict=...) inherits from.
#[pyclass(module = "mpegcoder", name = "MpegDecoder", subclass)]
pub struct PyDecoder {
    path: Option<String>,
    width_dst: Option<u32>,
    height_dst: Option<u32>,
    threads: usize,
    decoder: Exclusive<Option<Decoder>>,
    /// Frames returned by the last Extract* call (mpegCoder's `frameCount`).
    frame_count: usize,
    /// Why the last FFmpegSetup failed.
    error: Option<String>,
}

impl std::fmt::Debug for PyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::convert::debug_redacted(f, "PyDecoder", "path", self.path.as_deref())
    }
}

impl PyDecoder {
    fn open(&mut self) -> Result<(), String> {
        let path = self
            .path
            .clone()
            .ok_or("no video to open: call FFmpegSetup(videoPath)")?;
        let options = DecoderOptions::default()
            .with_width_dst(self.width_dst)
            .with_height_dst(self.height_dst)
            .with_threads(self.threads);
        let mut decoder =
            Decoder::open(&path, options).map_err(|e| mpegcoder::types::error_chain(&e))?;
        // A local file is indexed (demuxing only): the frame count becomes exact and the
        // GOP size and B-frames are measured, for an encoder that inherits them.
        if Path::new(&path).is_file() {
            decoder
                .build_index()
                .map_err(|e| mpegcoder::types::error_chain(&e))?;
        }
        *self.decoder.get() = Some(decoder);
        Ok(())
    }

    fn decoder(&mut self) -> PyResult<&mut Decoder> {
        let error = self.error.clone();
        self.decoder.get().as_mut().ok_or_else(|| {
            MpegError::new_err(match error {
                Some(e) => format!("the decoder is not set up ({e})"),
                None => "the decoder is not set up: call FFmpegSetup(videoPath) first".into(),
            })
        })
    }

    /// Runs `extract` on the decoder with the GIL released; frames out as one array.
    fn extract<'py>(
        &mut self,
        py: Python<'py>,
        extract: impl FnOnce(&mut Decoder) -> Result<Option<Vec<Frame>>, CodecError> + Send,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let decoder = self.decoder()?;
        let frames = match py.detach(|| extract(decoder)) {
            Ok(frames) => frames,
            // A position past the end gives no frames (mpegCoder's None), not an error.
            Err(CodecError::FrameOutOfRange { .. } | CodecError::TimeOutOfRange { .. }) => None,
            Err(e) => return Err(mpeg_error(&e)),
        };
        let frames = frames.unwrap_or_default();
        self.frame_count = frames.len();
        frames_to_array(py, &frames)
    }

    /// The parameters as a plain dict (see `getParameter`).
    pub fn parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("videoPath", self.path.clone().unwrap_or_default())?;
        d.set_item("widthDst", self.width_dst.unwrap_or(0))?;
        d.set_item("heightDst", self.height_dst.unwrap_or(0))?;
        d.set_item("nthread", self.threads)?;
        d.set_item("frameCount", self.frame_count)?;
        self.decoder.with(|dec| -> PyResult<()> {
            match dec {
                Some(dec) => {
                    let p = dec.params();
                    let (w, h) = dec.output_size();
                    let rate = p.best_frame_rate();
                    d.set_item("width", w)?;
                    d.set_item("height", h)?;
                    d.set_item("widthSrc", p.width)?;
                    d.set_item("heightSrc", p.height)?;
                    d.set_item("coderName", p.codec.clone())?;
                    d.set_item("pixelFormat", p.pixel_format.clone())?;
                    d.set_item("duration", p.duration_s.unwrap_or(0.0))?;
                    d.set_item("estFrameNum", p.frame_count)?;
                    let avg = if p.avg_frame_rate.is_valid() && p.avg_frame_rate.num > 0 {
                        p.avg_frame_rate
                    } else {
                        rate
                    };
                    d.set_item("avgFrameRate", avg.as_f64())?;
                    d.set_item("frameRate", (rate.num, rate.den))?;
                    d.set_item("bitRate", p.bit_rate.map_or(0.0, |b| b as f64 / 1000.0))?;
                    d.set_item("GOPSize", p.gop_size.unwrap_or(0))?;
                    d.set_item("maxBframe", p.max_b_frames.unwrap_or(0))?;
                    d.set_item("position", dec.position())?;
                }
                None => {
                    for key in ["width", "height", "widthSrc", "heightSrc", "estFrameNum"] {
                        d.set_item(key, 0)?;
                    }
                    for key in ["GOPSize", "maxBframe", "position"] {
                        d.set_item(key, 0)?;
                    }
                    d.set_item("coderName", "")?;
                    d.set_item("pixelFormat", "")?;
                    d.set_item("duration", 0.0)?;
                    d.set_item("avgFrameRate", 0.0)?;
                    d.set_item("frameRate", (0, 1))?;
                    d.set_item("bitRate", 0.0)?;
                }
            }
            Ok(())
        })?;
        Ok(d)
    }
}

#[pymethods]
impl PyDecoder {
    #[new]
    #[pyo3(signature = (videoPath=None))]
    fn new(py: Python<'_>, videoPath: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut d = PyDecoder {
            path: None,
            width_dst: None,
            height_dst: None,
            threads: 0,
            decoder: Exclusive::new(None),
            frame_count: 0,
            error: None,
        };
        if let Some(path) = videoPath {
            d.FFmpegSetup(py, Some(path))?;
        }
        Ok(d)
    }

    /// Opens the video (or re-opens the last one without an argument). Returns False when
    /// it cannot be opened; str(decoder) then says why.
    #[pyo3(signature = (videoPath=None))]
    fn FFmpegSetup(
        &mut self,
        py: Python<'_>,
        videoPath: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if let Some(path) = videoPath {
            self.path = Some(text("videoPath", path)?);
        }
        *self.decoder.get() = None;
        self.frame_count = 0;
        let result = py.detach(|| self.open());
        self.error = result.err();
        Ok(self.error.is_none())
    }

    /// Output size and decoder threads, used by the next FFmpegSetup: widthDst / heightDst
    /// scale the frames (one of them alone keeps the aspect ratio; 0 = the source's),
    /// nthread is the number of decoder threads (0 = one per core).
    #[pyo3(signature = (*, widthDst=None, heightDst=None, nthread=None))]
    fn setParameter(
        &mut self,
        widthDst: Option<i64>,
        heightDst: Option<i64>,
        nthread: Option<i64>,
    ) -> PyResult<()> {
        if let Some(w) = widthDst {
            self.width_dst = Some(non_negative("widthDst", w)?).filter(|w| *w > 0);
        }
        if let Some(h) = heightDst {
            self.height_dst = Some(non_negative("heightDst", h)?).filter(|h| *h > 0);
        }
        if let Some(n) = nthread {
            self.threads = non_negative("nthread", n)? as usize;
        }
        Ok(())
    }

    /// The parameters as a plain, picklable dict, or the one named: videoPath, width /
    /// height (of the frames handed out), widthSrc / heightSrc, widthDst / heightDst,
    /// frameCount (frames returned by the last Extract call), coderName, pixelFormat,
    /// nthread, duration (s), estFrameNum, avgFrameRate, frameRate (num, den), bitRate
    /// (kb/s), GOPSize, maxBframe, position (the next frame's number).
    #[pyo3(signature = (paramName=None))]
    fn getParameter<'py>(
        &self,
        py: Python<'py>,
        paramName: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        pick(self.parameters(py)?, paramName)
    }

    /// Up to frameNum frames from frame framePos on (exact: as a sequential decode gives
    /// them); None when framePos is past the end (so are the other Extract calls).
    #[pyo3(signature = (framePos=0, frameNum=1))]
    fn ExtractFrame<'py>(
        &mut self,
        py: Python<'py>,
        framePos: i64,
        frameNum: i64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let pos = u64::from(non_negative("framePos", framePos)?);
        let n = non_negative("frameNum", frameNum)? as usize;
        self.extract(py, |d| d.extract_frame(pos, n).map(Some))
    }

    /// Up to frameNum frames from the one shown at timePos seconds on.
    #[pyo3(signature = (timePos=0.0, frameNum=1))]
    fn ExtractFrame_Time<'py>(
        &mut self,
        py: Python<'py>,
        timePos: f64,
        frameNum: i64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let n = non_negative("frameNum", frameNum)? as usize;
        let t = seconds("timePos", timePos)?;
        self.extract(py, |d| d.extract_frame_by_time(t, n).map(Some))
    }

    /// The same as ExtractFrame_Time.
    #[pyo3(signature = (timePos=0.0, frameNum=1))]
    fn ExtractFrameByTime<'py>(
        &mut self,
        py: Python<'py>,
        timePos: f64,
        frameNum: i64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.ExtractFrame_Time(py, timePos, frameNum)
    }

    /// The next group of pictures (a key frame and the frames up to the next one), None
    /// after the last. Successive calls give every frame once. With framePos: the GOP
    /// containing that frame.
    #[pyo3(signature = (framePos=None))]
    fn ExtractGOP<'py>(
        &mut self,
        py: Python<'py>,
        framePos: Option<i64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let at = framePos
            .map(|p| non_negative("framePos", p).map(|p| Position::Frame(u64::from(p))))
            .transpose()?;
        self.gop(py, at)
    }

    /// The GOP containing the frame shown at timePos seconds (the next GOP without it).
    #[pyo3(signature = (timePos=None))]
    fn ExtractGOP_Time<'py>(
        &mut self,
        py: Python<'py>,
        timePos: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let at = timePos
            .map(|t| seconds("timePos", t).map(Position::Seconds))
            .transpose()?;
        self.gop(py, at)
    }

    /// The same as ExtractGOP_Time.
    #[pyo3(signature = (timePos=None))]
    fn ExtractGOPByTime<'py>(
        &mut self,
        py: Python<'py>,
        timePos: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.ExtractGOP_Time(py, timePos)
    }

    /// Makes the next ExtractGOP return the GOP containing frame framePos (or the frame
    /// shown at timePos seconds); without either, the first GOP.
    #[pyo3(signature = (framePos=None, timePos=None))]
    fn ResetGOPPosition(
        &mut self,
        py: Python<'_>,
        framePos: Option<i64>,
        timePos: Option<f64>,
    ) -> PyResult<()> {
        let at = match (framePos, timePos) {
            (Some(p), _) => Position::Frame(u64::from(non_negative("framePos", p)?)),
            (None, Some(t)) => Position::Seconds(seconds("timePos", t)?),
            (None, None) => Position::Frame(0),
        };
        self.seek_gop(py, at)
    }

    /// ResetGOPPosition by one value: an int is a frame number, a float seconds.
    fn setGOPPosition(&mut self, py: Python<'_>, pos: &Bound<'_, PyAny>) -> PyResult<()> {
        let at = if let Ok(p) = pos.extract::<i64>() {
            Position::Frame(u64::from(non_negative("pos", p)?))
        } else if let Ok(t) = pos.extract::<f64>() {
            Position::Seconds(seconds("pos", t)?)
        } else {
            return Err(PyTypeError::new_err(format!(
                "pos must be a frame number (int) or seconds (float), not {}",
                type_name(pos)
            )));
        };
        self.seek_gop(py, at)
    }

    /// Closes the video; the path and the parameters stay (FFmpegSetup() opens it again).
    fn clear(&mut self) {
        *self.decoder.get() = None;
        self.frame_count = 0;
        self.error = None;
    }

    fn __str__(&self) -> String {
        let path = self.path.as_deref().unwrap_or("");
        self.decoder.with(|decoder| match (decoder, &self.error) {
            (Some(d), _) => {
                let p = d.params();
                let (w, h) = d.output_size();
                format!(
                    "MpegDecoder({path:?}: {} {}x{} (frames {w}x{h}) at {} fps, {} frames, {:.3} s; \
                     next frame {}, last extract gave {})",
                    p.codec,
                    p.width,
                    p.height,
                    p.best_frame_rate(),
                    p.frame_count,
                    p.duration_s.unwrap_or(0.0),
                    d.position(),
                    self.frame_count
                )
            }
            (None, Some(e)) => format!("MpegDecoder({path:?}: not set up: {e})"),
            (None, None) if path.is_empty() => "MpegDecoder(not set up)".into(),
            (None, None) => format!("MpegDecoder({path:?}: not set up)"),
        })
    }

    fn __repr__(&self) -> String {
        self.__str__()
    }
}

impl PyDecoder {
    fn gop<'py>(
        &mut self,
        py: Python<'py>,
        at: Option<Position>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.extract(py, move |d| {
            if let Some(at) = at {
                d.reset_gop_position(at)?;
            }
            d.extract_gop()
        })
    }

    fn seek_gop(&mut self, py: Python<'_>, at: Position) -> PyResult<()> {
        let decoder = self.decoder()?;
        py.detach(|| decoder.reset_gop_position(at))
            .map_err(|e| mpeg_error(&e))
    }
}

fn seconds(name: &str, t: f64) -> PyResult<f64> {
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{name} must be a time in seconds, 0 or more, not {t}"
        )))
    }
}
