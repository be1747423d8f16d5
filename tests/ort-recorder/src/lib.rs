//! A recording ONNX Runtime: a shared library that stands in for `libonnxruntime`, forwards
//! every call to the real one and writes each session run's input and output tensors as `.npy`
//! files.
//!
//! Why: parity tests compare, tensor by tensor, what facesync feeds a model with what a
//! reference pipeline feeds it, through the real product path (`facesync run --model …`) and
//! with no test-only code in the product. facesync opens ONNX Runtime at run time (`ort`'s
//! `load-dynamic`), so pointing `ORT_DYLIB_PATH` at this library puts the recorder between
//! facesync and the runtime.
//!
//! Use (see the README):
//! - `ORT_DYLIB_PATH=<this libfacesync_ort_recorder.so>`: facesync loads the recorder;
//! - `FACESYNC_RECORD_ORT=<the real libonnxruntime.so…>` (required): what the recorder loads;
//! - `FACESYNC_RECORD_DIR=<folder>` (required, created if missing): where the files go, named
//!   `{stem}-{seq:06}-{in|out}-{tensor}.npy`: `stem` is the model file's stem (`mem` for a
//!   session made from memory), `seq` counts that stem's runs from 0 in the order they started.
//!
//! How: `OrtGetApiBase` returns this library's `OrtApiBase`, whose `GetApi` hands out a copy of
//! the real `OrtApi` table with the session entries that `ort` calls replaced: `CreateSession`,
//! `CreateSessionFromArray` and their prepacked-weights forms (to name sessions),
//! `ReleaseSession` (to forget them) and `Run` (to record). Files are written to a hidden
//! temporary name and renamed, so a reader never sees half a file.
//!
//! The `unsafe` code is a C ABI shim and cannot be avoided; this crate is test tooling, never
//! part of the product.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort_sys::{
    ONNXTensorElementDataType, ORT_API_VERSION, OrtApi, OrtApiBase, OrtEnv, OrtMemoryInfo,
    OrtMemoryInfoDeviceType, OrtPrepackedWeightsContainer, OrtRunOptions, OrtSession,
    OrtSessionOptions, OrtStatusPtr, OrtTensorTypeAndShapeInfo, OrtValue, os_char,
};

/// The real library to forward to.
const REAL_LIBRARY: &str = "FACESYNC_RECORD_ORT";
/// Where the `.npy` files go.
const RECORD_DIR: &str = "FACESYNC_RECORD_DIR";

/// One line on stderr: the recorder's only channel (it runs inside someone else's process).
#[allow(clippy::print_stderr)]
fn note(message: &str) {
    eprintln!("facesync-ort-recorder: {message}");
}

/// The loaded real library and what the recorder remembers.
struct Recorder {
    /// Kept open for the life of the process (the tables point into it).
    _library: libloading::Library,
    real_base: &'static OrtApiBase,
    real: &'static OrtApi,
    /// The real table with the recording entries.
    wrapped: OrtApi,
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Session pointer → model stem.
    stems: HashMap<usize, String>,
    /// Model stem → the next run's sequence number.
    next: HashMap<String, u64>,
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

static BASE: OrtApiBase = OrtApiBase {
    GetApi: get_api,
    GetVersionString: get_version_string,
};

/// The entry point `ort` looks up: this library's `OrtApiBase`, or null (after a line on stderr
/// saying why) when the real library cannot be loaded.
#[allow(non_snake_case)]
// SAFETY: the one symbol of this name in the library: the entry point ONNX Runtime exports.
#[unsafe(no_mangle)]
pub extern "C" fn OrtGetApiBase() -> *const OrtApiBase {
    match RECORDER.get_or_init(|| Recorder::load().map_err(|e| note(&e)).ok()) {
        Some(_) => &BASE,
        None => std::ptr::null(),
    }
}

/// The recorder; only called from the entries of the table it built, so it exists.
fn recorder() -> &'static Recorder {
    match RECORDER.get() {
        Some(Some(r)) => r,
        _ => unreachable!("a recording entry ran before the recorder was loaded"),
    }
}

// SAFETY (callers): `OrtApiBase::GetApi`, any version number.
unsafe extern "system" fn get_api(version: u32) -> *const OrtApi {
    let r = recorder();
    if version > ORT_API_VERSION {
        // The copy holds the entries of API ORT_API_VERSION only: hand out the real table.
        note(&format!(
            "API version {version} asked for, the recorder knows {ORT_API_VERSION}: \
             forwarding without recording"
        ));
        // SAFETY: the real library's own entry point, called as its C API documents.
        return unsafe { (r.real_base.GetApi)(version) };
    }
    &r.wrapped
}

// SAFETY (callers): `OrtApiBase::GetVersionString`, no arguments.
unsafe extern "system" fn get_version_string() -> *const c_char {
    // SAFETY: the real library's own entry point; it returns a static string.
    unsafe { (recorder().real_base.GetVersionString)() }
}

impl Recorder {
    fn load() -> Result<Recorder, String> {
        let path = std::env::var_os(REAL_LIBRARY)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!("{REAL_LIBRARY} is not set: it must name the real ONNX Runtime library")
            })?;
        let dir = std::env::var_os(RECORD_DIR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| format!("{RECORD_DIR} is not set: it must name the output folder"))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {RECORD_DIR} {}: {e}", dir.display()))?;
        let shown = Path::new(&path).display().to_string();
        // SAFETY: loading ONNX Runtime runs its initialisers, which have no preconditions.
        let library = unsafe { libloading::Library::new(&path) }
            .map_err(|e| format!("cannot load {REAL_LIBRARY} {shown}: {e}"))?;
        // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime.
        let get_base = unsafe {
            library.get::<unsafe extern "C" fn() -> *const OrtApiBase>(b"OrtGetApiBase\0")
        }
        .map_err(|e| format!("{shown} is not ONNX Runtime: {e}"))?;
        if *get_base as usize == OrtGetApiBase as *const () as usize {
            return Err(format!(
                "{REAL_LIBRARY} {shown} is the recorder itself, not ONNX Runtime"
            ));
        }
        // SAFETY: the real entry point; its result, when not null, lives as long as the
        // library, which this recorder keeps open for the life of the process.
        let real_base = unsafe { get_base().as_ref() }
            .ok_or_else(|| format!("{shown}: OrtGetApiBase returned null"))?;
        // SAFETY: as above; a non-null table has at least the entries of the version asked.
        let real = unsafe { (real_base.GetApi)(ORT_API_VERSION).as_ref() }.ok_or_else(|| {
            format!("{shown} does not offer C API version {ORT_API_VERSION} (ONNX Runtime 1.17+)")
        })?;
        let mut wrapped = real.clone();
        wrapped.CreateSession = create_session;
        wrapped.CreateSessionFromArray = create_session_from_array;
        wrapped.CreateSessionWithPrepackedWeightsContainer = create_session_prepacked;
        wrapped.CreateSessionFromArrayWithPrepackedWeightsContainer =
            create_session_from_array_prepacked;
        wrapped.ReleaseSession = release_session;
        wrapped.Run = run;
        Ok(Recorder {
            _library: library,
            real_base,
            real,
            wrapped,
            dir,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names the session `out` points to after a successful creation.
    fn created(&self, status: OrtStatusPtr, out: *mut *mut OrtSession, stem: String) {
        if status.0.is_null() && !out.is_null() {
            // SAFETY: ONNX Runtime wrote the new session to `out` (the call succeeded).
            let session = unsafe { *out } as usize;
            self.state().stems.insert(session, stem);
        }
    }

    /// The message of a failed call (the status is released), or `Ok`.
    fn check(&self, status: OrtStatusPtr, what: &str) -> Result<(), String> {
        if status.0.is_null() {
            return Ok(());
        }
        // SAFETY: a non-null status from the real library: read its message, then free it.
        let message = unsafe {
            let m = CStr::from_ptr((self.real.GetErrorMessage)(status.0))
                .to_string_lossy()
                .into_owned();
            (self.real.ReleaseStatus)(status.0);
            m
        };
        Err(format!("{what}: {message}"))
    }

    /// Writes one tensor, or says on stderr why not.
    ///
    /// # Safety
    /// `value` is a live `OrtValue` of the real library.
    unsafe fn save(&self, stem: &str, seq: u64, side: &str, name: &str, value: *const OrtValue) {
        let file = format!("{stem}-{seq:06}-{side}-{}.npy", clean(name));
        // SAFETY: the caller's contract.
        let result = unsafe { self.tensor(value) }.and_then(|t| match t {
            Some(t) => write_npy(&self.dir.join(&file), &t).map_err(|e| e.to_string()),
            None => Ok(()),
        });
        if let Err(e) = result {
            note(&format!("{file} not written: {e}"));
        }
    }

    /// The dtype, shape and bytes of a CPU tensor; `None` (after a note) for what `.npy` cannot
    /// take here.
    ///
    /// # Safety
    /// `value` is a live `OrtValue` of the real library; the bytes are borrowed from it.
    unsafe fn tensor(&self, value: *const OrtValue) -> Result<Option<Npy<'_>>, String> {
        let api = self.real;
        let mut info: *mut OrtTensorTypeAndShapeInfo = std::ptr::null_mut();
        // SAFETY: `value` is live; `info` receives an object we release below.
        self.check(
            unsafe { (api.GetTensorTypeAndShape)(value, &mut info) },
            "not a tensor",
        )?;
        // SAFETY: `info` is the live object just returned; it is released once, here.
        let described = unsafe { self.describe(info) };
        // SAFETY: as above.
        unsafe { (api.ReleaseTensorTypeAndShapeInfo)(info) };
        let (element, dims) = described?;
        let Some((descr, size)) = dtype(element) else {
            note(&format!(
                "element type {element} has no .npy form here: skipped"
            ));
            return Ok(None);
        };
        let mut memory: *const OrtMemoryInfo = std::ptr::null();
        // SAFETY: `value` is live; the memory info belongs to it (not released).
        self.check(
            unsafe { (api.GetTensorMemoryInfo)(value, &mut memory) },
            "memory info",
        )?;
        let mut device = OrtMemoryInfoDeviceType::OrtMemoryInfoDeviceType_CPU as c_int;
        // SAFETY: `memory` is live; the runtime writes one C enum (an int) to `device`.
        unsafe { (api.MemoryInfoGetDeviceType)(memory, (&raw mut device).cast()) };
        if device != OrtMemoryInfoDeviceType::OrtMemoryInfoDeviceType_CPU as c_int {
            note("a tensor in device memory: skipped");
            return Ok(None);
        }
        let count = dims.iter().try_fold(1usize, |n, &d| {
            usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
        });
        let bytes = count
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| format!("bad shape {dims:?}"))?;
        if bytes == 0 {
            return Ok(Some(Npy {
                descr,
                dims,
                data: &[],
            }));
        }
        let mut data: *mut c_void = std::ptr::null_mut();
        // SAFETY: `value` is a live CPU tensor; the runtime only reads it here.
        self.check(
            unsafe { (api.GetTensorMutableData)(value.cast_mut(), &mut data) },
            "tensor data",
        )?;
        if data.is_null() {
            return Err("null tensor data".into());
        }
        // SAFETY: a CPU tensor of `bytes` bytes (its element count times the element size),
        // alive as long as `value`, which outlives this borrow (the caller's contract).
        let data = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), bytes) };
        Ok(Some(Npy { descr, dims, data }))
    }

    /// The element type (as a raw C enum value) and dimensions.
    ///
    /// # Safety
    /// `info` is a live `OrtTensorTypeAndShapeInfo` of the real library.
    unsafe fn describe(
        &self,
        info: *const OrtTensorTypeAndShapeInfo,
    ) -> Result<(i32, Vec<i64>), String> {
        let api = self.real;
        // A raw int: a newer runtime may report a type this binding's Rust enum lacks.
        let mut element: i32 = 0;
        let mut rank = 0usize;
        // SAFETY: `info` is live; the runtime writes one C enum (an int) to `element`.
        self.check(
            unsafe {
                (api.GetTensorElementType)(
                    info,
                    (&raw mut element).cast::<ONNXTensorElementDataType>(),
                )
            },
            "element type",
        )?;
        // SAFETY: as above.
        self.check(unsafe { (api.GetDimensionsCount)(info, &mut rank) }, "rank")?;
        let mut dims = vec![0i64; rank];
        // SAFETY: `dims` has room for the `rank` values written.
        self.check(
            unsafe { (api.GetDimensions)(info, dims.as_mut_ptr(), rank) },
            "dimensions",
        )?;
        Ok((element, dims))
    }
}

/// The `.npy` type and element size of an ONNX element type (`ONNXTensorElementDataType`).
fn dtype(element: i32) -> Option<(&'static str, usize)> {
    use ONNXTensorElementDataType as T;
    #[cfg(target_endian = "little")]
    const TABLE: &[(T, &str, usize)] = &[
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "<f4", 4),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, "<f2", 2),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE, "<f8", 8),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, "<i8", 8),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "<i4", 4),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16, "<i2", 2),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "|i1", 1),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64, "<u8", 8),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32, "<u4", 4),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16, "<u2", 2),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "|u1", 1),
        (T::ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, "|b1", 1),
    ];
    #[cfg(target_endian = "big")]
    const TABLE: &[(T, &str, usize)] = &[];
    TABLE
        .iter()
        .find(|(t, _, _)| *t as i32 == element)
        .map(|&(_, d, s)| (d, s))
}

/// A file-name-safe form of a model stem or tensor name.
fn clean(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

/// The `.npy` (format 1.0) header of a C-order array.
fn npy_header(descr: &str, dims: &[i64]) -> Vec<u8> {
    let shape = match dims {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + dict + '\n', padded to a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// A tensor as `.npy` wants it: its type, C-order shape and bytes (borrowed from the runtime).
struct Npy<'a> {
    descr: &'static str,
    dims: Vec<i64>,
    data: &'a [u8],
}

/// Writes `path` through a hidden temporary file in the same folder, renamed at the end.
fn write_npy(path: &Path, t: &Npy<'_>) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&npy_header(t.descr, &t.dims))?;
        f.write_all(t.data)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_data()
    })();
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The stem of a model path given to `CreateSession`.
///
/// # Safety
/// `path` is null or a NUL-terminated path string.
unsafe fn path_stem(path: *const os_char) -> String {
    if path.is_null() {
        return "session".into();
    }
    #[cfg(unix)]
    let path = {
        use std::os::unix::ffi::OsStrExt as _;
        // SAFETY: the caller's contract.
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    };
    #[cfg(not(unix))]
    let path = {
        // SAFETY: the caller's contract: a NUL-terminated wide string.
        let len = (0..).take_while(|&i| unsafe { *path.add(i) } != 0).count();
        // SAFETY: `len` units precede the NUL.
        PathBuf::from(String::from_utf16_lossy(unsafe {
            std::slice::from_raw_parts(path.cast::<u16>(), len)
        }))
    };
    path.file_stem()
        .map_or_else(|| "session".into(), |s| clean(&s.to_string_lossy()))
}

// SAFETY (callers): the C API contract of `CreateSession`, which this entry replaces.
unsafe extern "system" fn create_session(
    env: *const OrtEnv,
    model_path: *const os_char,
    options: *const OrtSessionOptions,
    out: *mut *mut OrtSession,
) -> OrtStatusPtr {
    let r = recorder();
    // SAFETY: forwarded as received, to the entry it replaces.
    let status = unsafe { (r.real.CreateSession)(env, model_path, options, out) };
    // SAFETY: the C API's `model_path` is a NUL-terminated path.
    r.created(status, out, unsafe { path_stem(model_path) });
    status
}

// SAFETY (callers): the C API contract of `CreateSessionWithPrepackedWeightsContainer`.
unsafe extern "system" fn create_session_prepacked(
    env: *const OrtEnv,
    model_path: *const os_char,
    options: *const OrtSessionOptions,
    container: *mut OrtPrepackedWeightsContainer,
    out: *mut *mut OrtSession,
) -> OrtStatusPtr {
    let r = recorder();
    // SAFETY: forwarded as received, to the entry it replaces.
    let status = unsafe {
        (r.real.CreateSessionWithPrepackedWeightsContainer)(
            env, model_path, options, container, out,
        )
    };
    // SAFETY: the C API's `model_path` is a NUL-terminated path.
    r.created(status, out, unsafe { path_stem(model_path) });
    status
}

// SAFETY (callers): the C API contract of `CreateSessionFromArray`.
unsafe extern "system" fn create_session_from_array(
    env: *const OrtEnv,
    data: *const c_void,
    len: usize,
    options: *const OrtSessionOptions,
    out: *mut *mut OrtSession,
) -> OrtStatusPtr {
    let r = recorder();
    // SAFETY: forwarded as received, to the entry it replaces.
    let status = unsafe { (r.real.CreateSessionFromArray)(env, data, len, options, out) };
    r.created(status, out, "mem".into());
    status
}

// SAFETY (callers): the C API contract of
// `CreateSessionFromArrayWithPrepackedWeightsContainer`.
unsafe extern "system" fn create_session_from_array_prepacked(
    env: *const OrtEnv,
    data: *const c_void,
    len: usize,
    options: *const OrtSessionOptions,
    container: *mut OrtPrepackedWeightsContainer,
    out: *mut *mut OrtSession,
) -> OrtStatusPtr {
    let r = recorder();
    // SAFETY: forwarded as received, to the entry it replaces.
    let status = unsafe {
        (r.real.CreateSessionFromArrayWithPrepackedWeightsContainer)(
            env, data, len, options, container, out,
        )
    };
    r.created(status, out, "mem".into());
    status
}

// SAFETY (callers): the C API contract of `ReleaseSession` (a session of this table, or null).
unsafe extern "system" fn release_session(session: *mut OrtSession) {
    let r = recorder();
    r.state().stems.remove(&(session as usize));
    // SAFETY: forwarded as received, to the entry it replaces.
    unsafe { (r.real.ReleaseSession)(session) }
}

// SAFETY (callers): the C API contract of `Run`: `input_len` names and values, `output_len`
// names and output slots (null or preallocated values).
#[allow(clippy::too_many_arguments)]
unsafe extern "system" fn run(
    session: *mut OrtSession,
    run_options: *const OrtRunOptions,
    input_names: *const *const c_char,
    inputs: *const *const OrtValue,
    input_len: usize,
    output_names: *const *const c_char,
    output_len: usize,
    outputs: *mut *mut OrtValue,
) -> OrtStatusPtr {
    let r = recorder();
    // The sequence number is taken when the call starts.
    let (stem, seq) = {
        let mut state = r.state();
        let stem = state
            .stems
            .get(&(session as usize))
            .cloned()
            .unwrap_or_else(|| "session".into());
        let next = state.next.entry(stem.clone()).or_insert(0);
        let seq = *next;
        *next += 1;
        (stem, seq)
    };
    // SAFETY: forwarded as received, to the entry it replaces.
    let status = unsafe {
        (r.real.Run)(
            session,
            run_options,
            input_names,
            inputs,
            input_len,
            output_names,
            output_len,
            outputs,
        )
    };
    if !status.0.is_null() {
        return status;
    }
    for (side, names, values, len) in [
        ("in", input_names, inputs, input_len),
        ("out", output_names, outputs.cast_const().cast(), output_len),
    ] {
        if len == 0 || names.is_null() || values.is_null() {
            continue;
        }
        // SAFETY: `Run` succeeded: both arrays hold `len` entries, the names NUL-terminated
        // strings, the values live tensors (the outputs filled in by the runtime) that the
        // caller has not received back yet.
        unsafe {
            for i in 0..len {
                let name = CStr::from_ptr(*names.add(i)).to_string_lossy();
                r.save(&stem, seq, side, &name, *values.add(i));
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_are_64_byte_aligned_and_readable() {
        for (descr, dims, shape) in [
            ("<f4", vec![2, 1, 80, 16], "(2, 1, 80, 16)"),
            ("<i8", vec![1], "(1,)"),
            ("<f2", vec![], "()"),
        ] {
            let h = npy_header(descr, &dims);
            assert_eq!(h.len() % 64, 0, "{descr} {dims:?}");
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
            let dict = std::str::from_utf8(&h[10..]).unwrap();
            assert!(dict.ends_with('\n'));
            assert_eq!(
                dict.trim_end(),
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
            );
        }
    }

    #[test]
    fn dtypes_and_names() {
        assert_eq!(dtype(1), Some(("<f4", 4)));
        assert_eq!(dtype(10), Some(("<f2", 2)));
        assert_eq!(dtype(7), Some(("<i8", 8)));
        assert_eq!(dtype(6), Some(("<i4", 4)));
        assert_eq!(dtype(2), Some(("|u1", 1)));
        assert_eq!(dtype(8), None, "strings");
        assert_eq!(dtype(99), None);
        assert_eq!(clean("audio_sequences"), "audio_sequences");
        assert_eq!(clean("a/b:0"), "a_b_0");
        assert_eq!(clean(""), "_");
    }
}
