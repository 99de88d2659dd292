//! Conversions between Python values and the facade's types.

use std::path::PathBuf;

use mpegcoder::codec::{Frame, Rational};
use mpegcoder::TlsOptions;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::MpegError;

/// The facade's error as a Python exception: the one line the `mpegcoder` command prints
/// after `error: ` (the error and its causes joined by ": ").
pub fn mpeg_error(e: &dyn std::error::Error) -> PyErr {
    MpegError::new_err(mpegcoder::types::error_chain(e))
}

/// Frames of one size as a `(N, H, W, 3)` uint8 array; frames of another size than the
/// last one (a stream that changed its resolution) are left out. `None` for no frames.
pub fn frames_to_array<'py>(
    py: Python<'py>,
    frames: &[Frame],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(last) = frames.last() else {
        return Ok(None);
    };
    let (w, h) = (last.width as usize, last.height as usize);
    let frame_len = w * h * 3;
    let same: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.width as usize == w && f.height as usize == h && f.data.len() == frame_len)
        .collect();
    let n = same.len();
    let data = py.detach(|| {
        let mut data = Vec::with_capacity(n * frame_len);
        for f in &same {
            data.extend_from_slice(&f.data);
        }
        data
    });
    let array = PyArray1::from_vec(py, data).reshape([n, h, w, 3])?;
    Ok(Some(array.into_any()))
}

/// An RGB frame of `width` x `height` from a `(H, W, 3)` uint8 array, copied out so that it
/// can be encoded with the GIL released.
pub fn frame_from_array(frame: &Bound<'_, PyAny>, width: u32, height: u32) -> PyResult<Vec<u8>> {
    let array: PyReadonlyArrayDyn<'_, u8> = frame.extract().map_err(|_| {
        let what = match frame.getattr("dtype") {
            Ok(dtype) => format!("an array of dtype {dtype}"),
            Err(_) => format!("a {}", type_name(frame)),
        };
        PyValueError::new_err(format!(
            "a frame must be a numpy uint8 array of shape ({height}, {width}, 3) (RGB), not {what}"
        ))
    })?;
    let expected = [height as usize, width as usize, 3];
    if array.shape() != expected {
        return Err(PyValueError::new_err(format!(
            "a frame of shape {:?} where ({height}, {width}, 3) was expected (RGB, the size set \
             by widthSrc/heightSrc or inherited from the decoder)",
            array.shape()
        )));
    }
    Ok(match array.as_slice() {
        Ok(slice) => slice.to_vec(),
        // Not contiguous (a view, a transposed array): copied in logical order.
        Err(_) => array.as_array().iter().copied().collect(),
    })
}

/// The Python type name of a value, for messages.
pub fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "value".into())
}

/// A size, count or similar that must not be negative.
pub fn non_negative(name: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be between 0 and {}, not {value}",
            u32::MAX
        ))
    })
}

/// A size that must be positive.
pub fn positive(name: &str, value: i64) -> PyResult<u32> {
    match non_negative(name, value)? {
        0 => Err(PyValueError::new_err(format!(
            "{name} must be positive, not 0"
        ))),
        v => Ok(v),
    }
}

/// A frame rate given as `(num, den)` or as a number of frames per second.
pub fn frame_rate(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Rational> {
    if let Ok((num, den)) = value.extract::<(i64, i64)>() {
        let rate = u32::try_from(num)
            .ok()
            .zip(u32::try_from(den).ok())
            .and_then(|(n, d)| Rational::checked(n, d))
            .filter(|r| r.num > 0);
        return rate.ok_or_else(|| {
            PyValueError::new_err(format!(
                "{name} ({num}, {den}) is not a positive frame rate"
            ))
        });
    }
    if let Ok(fps) = value.extract::<f64>() {
        return Rational::from_f64_thousandths(fps)
            .filter(|r| r.num > 0)
            .ok_or_else(|| {
                PyValueError::new_err(format!("{name} {fps} is not a positive frame rate"))
            });
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a (num, den) tuple or a number, not {}",
        type_name(value)
    )))
}

/// One path or a list of them (`caFile`).
pub fn paths(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if let Ok(p) = value.extract::<PathBuf>() {
        return Ok(vec![p]);
    }
    value.extract::<Vec<PathBuf>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a path or a list of paths, not {}",
            type_name(value)
        ))
    })
}

/// The certificate options of `caFile` / `insecure`.
pub fn tls_options(
    base: TlsOptions,
    ca_file: Option<&Bound<'_, PyAny>>,
    insecure: Option<bool>,
) -> PyResult<TlsOptions> {
    let mut tls = base;
    if let Some(files) = ca_file {
        tls.ca_files = paths("caFile", files)?;
    }
    if let Some(insecure) = insecure {
        tls = tls.with_insecure(insecure);
    }
    Ok(tls)
}

/// A string argument that may also come as bytes (mpegCoder took both).
pub fn text(name: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    if let Ok(b) = value.extract::<Vec<u8>>() {
        if !value.is_instance_of::<PyList>() {
            return String::from_utf8(b)
                .map_err(|_| PyValueError::new_err(format!("{name} is not valid UTF-8")));
        }
    }
    if let Ok(p) = value.extract::<PathBuf>() {
        return p
            .into_os_string()
            .into_string()
            .map_err(|_| PyValueError::new_err(format!("{name} is not valid UTF-8")));
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a str, not {}",
        type_name(value)
    )))
}

/// `getParameter(name)`: the whole dict without a name, else the one value.
pub fn pick<'py>(
    dict: Bound<'py, PyDict>,
    name: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(name) = name else {
        return Ok(dict.into_any());
    };
    let key = text("paramName", name)?;
    match dict.get_item(&key)? {
        Some(v) => Ok(v),
        None => {
            let mut known: Vec<String> = dict.keys().iter().map(|k| k.to_string()).collect();
            known.sort();
            Err(PyKeyError::new_err(format!(
                "no parameter {key:?} (known: {})",
                known.join(", ")
            )))
        }
    }
}

/// A serde value (statistics, a push summary) as plain Python objects, with the keys in
/// mpegCoder's camelCase (`frames_sent` → `framesSent`).
pub fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        serde_json::Value::Null => py.None().into_bound(py),
        serde_json::Value::Bool(b) => b.into_bound_py_any(py)?,
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_bound_py_any(py)?,
            (None, Some(i)) => i.into_bound_py_any(py)?,
            _ => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?,
        },
        serde_json::Value::String(s) => s.into_bound_py_any(py)?,
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(camel_case(k), json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// `frames_sent` → `framesSent`.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Any serde value as plain Python objects (see [`json_to_py`]).
pub fn serde_to_py<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| MpegError::new_err(format!("cannot convert the statistics: {e}")))?;
    json_to_py(py, &json)
}

/// A value used only through `&mut` (a Python object's own state): the mutex makes the
/// object `Sync`, as PyO3 requires of a class, for types like FFmpeg's contexts that are
/// `Send` but not `Sync`. It is never contended: `get` takes the exclusive borrow that PyO3
/// already checked, without locking.
#[derive(Debug, Default)]
pub struct Exclusive<T>(std::sync::Mutex<T>);

impl<T> Exclusive<T> {
    pub fn new(value: T) -> Self {
        Exclusive(std::sync::Mutex::new(value))
    }

    pub fn get(&mut self) -> &mut T {
        match self.0.get_mut() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A shared look (for `__str__`, `getParameter`); waits only if another thread holds
    /// it, which PyO3's borrow checking rules out.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        match self.0.lock() {
            Ok(v) => f(&v),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

/// `Debug` of a class whose address may carry credentials: only its redacted form is shown.
pub fn debug_redacted(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    field: &str,
    address: Option<&str>,
) -> std::fmt::Result {
    f.debug_struct(name)
        .field(field, &address.map(mpegcoder::types::redact_url))
        .finish_non_exhaustive()
}
